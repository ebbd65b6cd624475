"""``iomt-ad feedback``: analysts say whether an alert or an incident was right — ``mark`` it a true or
a false positive, with the corrected class where the model named the wrong one — and ``list`` the
verdicts or the ``records`` they label. Verdicts are appended to the ``feedback`` table with who and
when (rules: :mod:`jobs.feedback.labels`); ``iomt-ad train --feedback`` learns from them and
``iomt-ad evaluate --feedback`` reports on them.

Tables as for ``iomt-ad incidents``: ``--tables`` (a path or ``s3://bucket/prefix``), else
``stream.tables_dir`` of ``--conf``, else ``var/delta``; ``--who`` defaults to the operating-system user.
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.feedback.labels import FALSE_POSITIVE, TRUE_POSITIVE, FeedbackError
from jobs.incidents.command import FORMATS, _write_frame, add_table_arguments, tables_of

if TYPE_CHECKING:
    from jobs.feedback.store import FeedbackBook
    from models.training.feedback import FeedbackSet

log = logging.getLogger(__name__)

LIST_COLUMNS = ["feedback_id", "at", "who", "target", "id", "verdict", "corrected_class", "alerts", "predicted",
                "note", "current"]
RECORD_COLUMNS = ["record_id", "label", "verdict", "target", "predicted_class", "stream_label", "event_time",
                  "source_id", "who"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    mark = actions.add_parser("mark", help="mark an incident (its alerts so far) or alerts as true or false positives")
    target = mark.add_mutually_exclusive_group(required=True)
    target.add_argument("--incident", metavar="ID", help="an incident id, or its first characters (at least 6)")
    target.add_argument("--alert", nargs="+", metavar="RECORD_ID",
                        help="alerts by record_id (or its first 8+ characters): `iomt-ad incidents show ID` lists them")
    verdict = mark.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--true-positive", dest="verdict", action="store_const", const=TRUE_POSITIVE,
                         help="an attack (its class: --class, else the one the model predicted)")
    verdict.add_argument("--false-positive", dest="verdict", action="store_const", const=FALSE_POSITIVE,
                         help="benign traffic: training learns it as normal")
    mark.add_argument("--class", dest="corrected_class", metavar="CLASS",
                      help="the right class where the model named another (one of the 19 CICIoMT2024 classes)")
    mark.add_argument("--note", help="a note kept with the verdict")
    add_table_arguments(mark, who=True)

    listing = actions.add_parser("list", help="the verdicts that count (latest per alert and incident), newest first")
    listing.add_argument("--all", action="store_true", help="superseded verdicts too")
    listing.add_argument("--format", choices=FORMATS, default="table")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (0: all; default 100)")
    add_table_arguments(listing)

    records = actions.add_parser("records", help="the alerts' records the verdicts label, with their label "
                                                 "(what `iomt-ad train --feedback` reads)")
    records.add_argument("--format", choices=FORMATS, default="table")
    records.add_argument("--limit", type=int, default=100, help="at most this many (0: all; default 100)")
    add_table_arguments(records)
    parser.epilog = ("Rules: a false positive is benign traffic; a true positive is an attack of the corrected class, "
                     "else of the class the model predicted. A verdict on an incident covers its alerts up to when it "
                     "was marked; a verdict on an alert beats its incident's; a later verdict replaces an earlier one.")


def _mark(book: "FeedbackBook", args: argparse.Namespace, now: datetime) -> int:
    if args.incident:
        incident = book.incidents.find(args.incident)
        done = [book.mark_incident(incident, args.verdict, args.who, now, args.corrected_class, args.note)]
    else:
        alerts = book.find_alerts(args.alert)  # all found before any is recorded
        done = book.mark_alerts(alerts, args.verdict, args.who, now, args.corrected_class, args.note)
    for verdict in done:
        covered = f" ({verdict.alerts} alerts)" if verdict.target == "incident" else ""
        sys.stdout.write(f"{verdict.feedback_id}: {verdict.describe()}{covered}\n")
    return 0


def _list(book: "FeedbackBook", args: argparse.Namespace) -> int:
    every = book.verdicts()
    counting = {v.feedback_id for v in book.current()}
    shown = [v for v in every if args.all or v.feedback_id in counting]
    rows = [{"feedback_id": v.feedback_id[:12], "at": v.at, "who": v.who, "target": v.target,
             "id": v.record_id if v.target == "alert" else v.incident_id, "verdict": v.verdict,
             "corrected_class": v.corrected_class, "alerts": v.alerts, "predicted": ", ".join(v.predicted_classes),
             "note": v.note, "current": v.feedback_id in counting}
            for v in sorted(shown, key=lambda v: v.at, reverse=True)]
    if not rows and args.format == "table":
        sys.stdout.write("(no feedback)\n")
        return 0
    _write_frame(rows[:args.limit] if args.limit else rows, LIST_COLUMNS, args.format)
    return 0


def _records(book: "FeedbackBook", args: argparse.Namespace) -> int:
    frame = book.labelled_records()
    if frame.empty and args.format == "table":
        sys.stdout.write("(no labelled records)\n")
        return 0
    if args.format == "table":
        counts = frame.assign(label=frame["label"].fillna("(attack, class unknown)")).groupby(
            ["verdict", "label"]).size()
        sys.stdout.write(f"{len(frame)} labelled records:\n"
                         + "".join(f"  {v:<15} {lab:<28} {n}\n" for (v, lab), n in counts.items()) + "\n")
    rows = frame[RECORD_COLUMNS].sort_values("event_time", ascending=False).to_dict("records")
    _write_frame(rows[:args.limit] if args.limit else rows, RECORD_COLUMNS, args.format)
    return 0


def run(args: argparse.Namespace) -> int:
    from jobs.feedback.store import FeedbackBook

    book = FeedbackBook(tables_of(args))
    if args.feedback_command == "mark":
        return _mark(book, args, datetime.now(timezone.utc))
    if args.feedback_command == "list":
        return _list(book, args)
    if args.feedback_command == "records":
        return _records(book, args)
    raise FeedbackError(f"unknown action {args.feedback_command!r}")


def add_feedback_arguments(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--feedback TABLES`` (and ``--feedback-conf``) for ``train`` and ``evaluate``."""
    parser.add_argument("--feedback", default=None, metavar="TABLES", help=help_text)
    parser.add_argument("--feedback-conf", type=Path, default=None, metavar="FILE",
                        help="the job's configuration, for how to reach an object store named by --feedback "
                             "(its stream.storage)")


def feedback_of(args: argparse.Namespace) -> "FeedbackSet | None":
    """The labelled records under ``--feedback`` (None without it)."""
    if args.feedback is None:
        return None
    from jobs.feedback.store import read_feedback
    from jobs.storage import TablesLocation

    storage = None
    if args.feedback_conf is not None:
        from jobs.config import load_config

        storage = load_config(args.feedback_conf).stream.storage
    return read_feedback(TablesLocation.of(args.feedback, storage))
