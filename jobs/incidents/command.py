"""``iomt-ad incidents``: list and show the incidents the stream grouped, and act on them —
acknowledge, resolve, reopen, comment, mute a device / source / class / category for a while, or
declare a maintenance window. Each action is appended to ``incident_actions`` or ``mutes`` with who
and when (rules: :mod:`jobs.incidents.lifecycle`); the stream's ``incidents`` table is only read.

Reads the tables as the other readers do: ``--tables`` (a path or ``s3://bucket/prefix``), else
``stream.tables_dir`` of ``--conf`` (whose ``stream.storage`` says how to reach an object store),
else ``var/delta``. ``--who`` defaults to the operating-system user.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.incidents.actions_store import IncidentBook, IncidentError, parse_for
from jobs.incidents.lifecycle import ACK, COMMENT, MAINTENANCE, MUTE, REOPEN, RESOLVE, SCOPES, incident_status, \
    matching_mutes
from jobs.incidents.overview import COLUMNS, overview

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

ALERT_COLUMNS = ["event_time", "severity", "ensemble_score", "predicted_class", "device_id", "source_id", "explanation",
                 "record_id"]  # record_id: what `iomt-ad feedback mark --alert` takes
LIST_COLUMNS = ["incident", "max_severity", "subject", "category", "alerts", "last_seen", "state", "status", "muted"]
FORMATS = ("table", "json", "csv")


def _default_who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown"


def add_table_arguments(parser: argparse.ArgumentParser, who: bool = False) -> None:
    """--tables and --conf (where the tables are), and --who when the command records who acted."""
    parser.add_argument("--tables", default=None,
                        help="the job's tables: a path or s3://bucket/prefix (default: stream.tables_dir of --conf, "
                             "else var/delta)")
    parser.add_argument("--conf", type=Path, default=None,
                        help="the job's configuration: its stream.tables_dir and, for an object store, stream.storage")
    if who:
        parser.add_argument("--who", default=_default_who(), help="who acts, recorded with the action "
                                                                  "(default: the operating-system user)")


def _scope(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    for scope in SCOPES:
        group.add_argument(f"--{scope}", metavar=scope.upper(), help=f"the {scope} (as the incidents name it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="incidents the stream holds open and nobody resolved, most severe first")
    add_table_arguments(listing)
    listing.add_argument("--all", action="store_true", help="closed and resolved incidents too")
    listing.add_argument("--format", choices=FORMATS, default="table")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (0: all; default 100)")

    show = actions.add_parser("show", help="one incident: its fields, status, actions, mutes and its alerts")
    show.add_argument("id", help="the incident id, or its first characters (at least 6)")
    add_table_arguments(show)
    show.add_argument("--alerts", type=int, default=20, help="show at most this many of its alerts (default 20)")
    show.add_argument("--format", choices=("table", "json"), default="table")

    for name, help_text in ((ACK, "acknowledge an incident: someone is on it"),
                            (RESOLVE, "resolve an incident (it reopens if the stream adds alerts to it)"),
                            (REOPEN, "reopen a resolved or acknowledged incident"),
                            (COMMENT, "add a note to an incident")):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("id", help="the incident id, or its first characters (at least 6)")
        add_table_arguments(sub, who=True)
        sub.add_argument("--note", required=name == COMMENT, help="a note kept with the action")

    mute = actions.add_parser("mute", help="silence the notifications of a device, source, class or category "
                                           "for a while (incidents are still recorded)")
    _scope(mute, required=True)
    mute.add_argument("--for", dest="duration", required=True, help="how long, e.g. 30m, 2h, 1d")
    mute.add_argument("--reason", required=True)
    add_table_arguments(mute, who=True)

    unmute = actions.add_parser("unmute", help="end mutes and maintenance windows early: one by id, or every "
                                               "active one of a device, source, class or category")
    unmute.add_argument("mute_id", nargs="?", help="a mute's id (or its first characters): see `mutes`")
    _scope(unmute, required=False)
    unmute.add_argument("--reason")
    add_table_arguments(unmute, who=True)

    window = actions.add_parser("maintenance", help="declare a maintenance window: notifications of a device "
                                                     "(source, class, category) are silenced between two times")
    _scope(window, required=True)
    window.add_argument("--from", dest="start", default="now", help="start: ISO 8601, UTC unless it says (default now)")
    window.add_argument("--to", dest="end", required=True, help="end: ISO 8601, UTC unless it says")
    window.add_argument("--reason", required=True)
    add_table_arguments(window, who=True)

    mutes = actions.add_parser("mutes", help="the mutes and maintenance windows active now or to come")
    mutes.add_argument("--all", action="store_true", help="expired and ended ones too")
    add_table_arguments(mutes)
    parser.epilog = ("Rules: an incident's status is the latest of its ack/resolve/reopen actions (new without "
                     "one); a resolved incident the stream adds alerts to is reopened. Muted incidents are "
                     "recorded as usual; only their notifications are skipped.")


def tables_of(args: argparse.Namespace) -> "TablesLocation":
    from jobs.storage import TablesLocation

    if args.tables is not None:
        storage = None
        if args.conf is not None:
            from jobs.config import load_config

            storage = load_config(args.conf).stream.storage
        return TablesLocation.of(args.tables, storage)
    if args.conf is not None:
        from jobs.config import load_config

        return load_config(args.conf).stream.tables
    return TablesLocation.of("var/delta")


def parse_time(text: str, option: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC unless it names its zone) or ``now``."""
    if text.strip().lower() == "now":
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise IncidentError(f"{option} {text!r}: give an ISO 8601 time such as 2026-03-01T22:00 (UTC) "
                            "or 2026-03-01T23:00+01:00") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _scope_of(args: argparse.Namespace) -> tuple[str, str] | None:
    for scope in SCOPES:
        value = getattr(args, scope, None)
        if value:
            return scope, value
    return None


def _write_frame(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    if fmt == "json":
        sys.stdout.write(frame.to_json(orient="records", lines=True, date_format="iso").rstrip("\n") + "\n"
                         if rows else "")
    elif fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        sys.stdout.write(frame.to_string(index=False, max_colwidth=60) + "\n" if rows else "(no incidents)\n")


def _list(book: IncidentBook, args: argparse.Namespace, now: datetime) -> int:
    rows = overview(book.incidents(), book.actions(), book.mutes(), now, everything=args.all)
    _write_frame(rows[:args.limit] if args.limit else rows, list(COLUMNS) if args.format != "table" else LIST_COLUMNS,
                 args.format)
    return 0


def _show(book: IncidentBook, args: argparse.Namespace, now: datetime) -> int:
    incident = book.find(args.id)
    actions = book.actions(incident["incident_id"])
    status = incident_status(incident, actions)
    silenced = matching_mutes(incident, book.mutes(), now)
    alerts = book.alerts_of(incident, ALERT_COLUMNS, args.alerts or None).to_pylist()
    if args.format == "json":
        document = {"incident": incident, "status": vars(status), "muted": [m.describe() for m in silenced],
                    "actions": [vars(a) for a in actions], "alerts": alerts}
        sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")
        return 0
    out = [f"{name:<19} {', '.join(value) if isinstance(value, list) else value}"
           for name, value in incident.items() if value is not None]
    out.append(f"{'status':<19} {status.status}" + (f" by {status.who}" if status.who else "")
               + (f" at {status.at:%Y-%m-%d %H:%M:%S} UTC" if status.at else "")
               + (f" ({status.note})" if status.note else ""))
    out += [f"{'muted':<19} {m.describe()}" for m in silenced]
    out.append(f"\nactions ({len(actions)}):")
    out += [f"  {a.at:%Y-%m-%d %H:%M:%S} UTC  {a.action:<8} {a.who}" + (f": {a.note}" if a.note else "")
            for a in sorted(actions, key=lambda a: a.at)]
    sys.stdout.write("\n".join(out) + f"\n\nalerts (newest {len(alerts)} of {incident['alerts']}):\n")
    _write_frame(alerts, ALERT_COLUMNS, "table")
    return 0


def _mutes(book: IncidentBook, args: argparse.Namespace, now: datetime) -> int:
    mutes = [m for m in book.mutes() if args.all or (m.active(now) or (m.starts > now and m.ended is None))]
    rows = [{"mute_id": m.mute_id[:12], "kind": m.kind, "scope": m.scope, "value": m.value, "starts": m.starts,
             "ends": m.ends, "ended": m.ended, "active": m.active(now), "who": m.who, "reason": m.reason}
            for m in sorted(mutes, key=lambda m: m.starts)]
    if rows:
        _write_frame(rows, list(rows[0]), "table")
    else:
        sys.stdout.write("(no mutes)\n")
    return 0


def _unmute(book: IncidentBook, args: argparse.Namespace, now: datetime) -> int:
    scope = _scope_of(args)
    if bool(args.mute_id) == bool(scope):
        raise IncidentError("give a mute id, or one of --device/--source/--class/--category (not both)")
    candidates = [m for m in book.mutes() if m.ended is None and m.ends > now]
    if args.mute_id:
        chosen = [m for m in candidates if m.mute_id.startswith(args.mute_id.strip().lower())]
        if len(chosen) != 1:
            raise IncidentError(f"{len(chosen) or 'no'} current mutes with an id starting with {args.mute_id!r}: "
                                "see `iomt-ad incidents mutes`")
    else:
        chosen = [m for m in candidates if m.scope == scope[0] and m.value.casefold() == scope[1].casefold()]
        if not chosen:
            raise IncidentError(f"no current mute or maintenance window of {scope[0]} {scope[1]}: "
                                "see `iomt-ad incidents mutes`")
    ended = book.unmute(chosen, args.who, now, args.reason)
    log.info("ended %d mute(s) and maintenance window(s)", ended)
    return 0


def run(args: argparse.Namespace) -> int:
    book = IncidentBook(tables_of(args))
    now = datetime.now(timezone.utc)
    command = args.incidents_command
    if command == "list":
        return _list(book, args, now)
    if command == "show":
        return _show(book, args, now)
    if command == "mutes":
        return _mutes(book, args, now)
    if command in (ACK, RESOLVE, REOPEN, COMMENT):
        incident = book.find(args.id)
        book.record_action(incident, command, args.who, now, args.note)
        sys.stdout.write(f"{incident['incident_id']}: {command} by {args.who.strip()}\n")
        return 0
    if command == "unmute":
        return _unmute(book, args, now)
    scope, value = _scope_of(args)
    if command == MUTE:
        mute = book.mute(MUTE, scope, value, now, now + parse_for(args.duration), args.reason, args.who, now)
    else:
        start, end = parse_time(args.start, "--from", now), parse_time(args.end, "--to", now)
        if end <= now:
            raise IncidentError(f"--to {args.end}: the window is over already")
        mute = book.mute(MAINTENANCE, scope, value, start, end, args.reason, args.who, now)
    sys.stdout.write(f"{mute.mute_id}: {mute.describe()}\n")
    return 0
