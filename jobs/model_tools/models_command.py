"""``iomt-ad models``: the model registry (:mod:`jobs.model_registry`) — register a bundle,
list the versions with their metrics and roles, set or clear the ``challenger``, ``promote`` a
version to ``champion``, ``rollback`` to the previous champion, show the history. A stream run with
``stream.model_role: champion`` picks a change up at its next micro-batch, without a restart; each
batch is scored by one version (the one its driver resolved when the batch began).

The registry is the ``model_registry`` table under the job's tables: ``--tables`` (a path or
``s3://bucket/prefix``), else ``stream.tables_dir`` of ``--conf``, else ``var/delta``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from jobs.incidents.command import add_table_arguments, tables_of
from jobs.model_registry import CHALLENGER, CHAMPION, ROLES, ModelRegistry

log = logging.getLogger(__name__)


def _common(parser: argparse.ArgumentParser, who: bool = False) -> None:
    add_table_arguments(parser, who=who)
    if who:
        parser.add_argument("--reason", default=None, help="why, recorded with the change")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="registered versions: roles, metrics, where the bundle is")
    _common(listing)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    register = actions.add_parser("register", help="register a bundle (checked and pinned by its manifest's sha256)")
    register.add_argument("bundle", type=Path, help="the bundle directory (e.g. models/v3)")
    register.add_argument("--bundle-uri", default=None,
                          help="where the Spark workers find the bundle, when not at the same path (a shared path "
                               "or the name of a --archives bundle)")
    register.add_argument("--as", dest="role", choices=ROLES, default=None,
                          help="also make it the champion or the challenger")
    _common(register, who=True)
    challenger = actions.add_parser("challenger", help="score VERSION in shadow beside the champion (--clear: stop)")
    group = challenger.add_mutually_exclusive_group(required=True)
    group.add_argument("version", nargs="?", help="a registered version")
    group.add_argument("--clear", action="store_true", help="no challenger")
    _common(challenger, who=True)
    promote = actions.add_parser("promote", help="make VERSION the champion (the stream switches at its next batch)")
    promote.add_argument("version", help="a registered version")
    _common(promote, who=True)
    rollback = actions.add_parser("rollback", help="make the previous champion the champion again")
    _common(rollback, who=True)
    history = actions.add_parser("history", help="every registration and role change, oldest first")
    _common(history)
    compare = actions.add_parser("compare", help="champion vs challenger on the records scored in shadow: agreement, "
                                                 "alerts, detection per class on labelled records")
    _common(compare)
    compare.add_argument("--since", default=None, help="only records from this time on (ISO 8601, UTC if no zone)")
    compare.add_argument("--format", choices=("table", "json"), default="table")


def _list(registry: ModelRegistry, output_format: str) -> int:
    versions = registry.versions()
    roles: dict[str, list[str]] = {}
    for role, version in registry.aliases().items():
        roles.setdefault(version, []).append(role)
    rows = [{"version": v.version, "roles": roles.get(v.version, []), "bundle": v.bundle,
             "manifest_sha256": v.manifest_sha256, "registered_at": v.registered_at.isoformat(),
             "registered_by": v.registered_by, "metrics": v.metrics} for v in versions.values()]
    if output_format == "json":
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return 0
    if not rows:
        sys.stdout.write("no model registered: `iomt-ad models register BUNDLE_DIR --as champion`\n")
        return 0
    for row in rows:
        metrics = row["metrics"]
        figures = ", ".join(f"{k.replace('held_out_', '')} {v:.4g}" for k, v in metrics.items()
                            if k.startswith("held_out_") and isinstance(v, (int, float)))
        sys.stdout.write(f"{row['version']:<12} {','.join(row['roles']) or '-':<20} {row['bundle']}  "
                         f"sha256 {row['manifest_sha256'][:12]}  {figures or 'no held-out evaluation'}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    registry = ModelRegistry(tables_of(args))
    command = args.models_command
    if command == "list":
        return _list(registry, args.format)
    if command == "compare":
        from jobs.model_tools.compare import compare, markdown, read_shadow

        since = None
        if args.since:
            from jobs.incidents.command import parse_time

            since = parse_time(args.since, "--since", datetime.now(timezone.utc))
        summaries = compare(read_shadow(registry.tables, since))
        sys.stdout.write(json.dumps(summaries, indent=2, default=str) + "\n" if args.format == "json"
                         else markdown(summaries))
        return 0
    if command == "history":
        for row in registry.rows():
            what = (f"register {row['version']} ({row['bundle']})" if row["action"] == "register"
                    else f"{row['role']} -> {row['version'] or '(none)'}")
            sys.stdout.write(f"{row['at']:%Y-%m-%d %H:%M:%S} {row['who']}: {what}"
                             + (f" — {row['reason']}" if row["reason"] else "") + "\n")
        return 0
    if command == "register":
        model = registry.register(args.bundle, args.who, args.reason, args.bundle_uri)
        if args.role == CHAMPION and registry.aliases().get(CHAMPION) != model.version:
            registry.promote(model.version, args.who, args.reason)
        elif args.role == CHALLENGER:
            registry.set_alias(CHALLENGER, model.version, args.who, args.reason)
        sys.stdout.write(f"registered {model.version} (manifest sha256 {model.manifest_sha256})"
                         + (f" as {args.role}" if args.role else "") + "\n")
        return 0
    if command == "challenger":
        registry.set_alias(CHALLENGER, None if args.clear else args.version, args.who, args.reason)
        sys.stdout.write("no challenger\n" if args.clear else f"challenger: {args.version}\n")
        return 0
    if command == "promote":
        registry.promote(args.version, args.who, args.reason)
        sys.stdout.write(f"champion: {args.version}\n")
        return 0
    version = registry.rollback(args.who, args.reason)
    sys.stdout.write(f"champion: {version} (rolled back)\n")
    return 0
