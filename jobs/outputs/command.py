"""``iomt-ad notify``: deliver the queued incident updates (the ``outbox`` table) to the outputs
``alerts.outputs`` configures, on its own, beside a streaming job run with ``alerts.notify.in_stream:
false`` (or to catch up once with ``--once``)."""
from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True, help="YAML configuration (its alerts.outputs and stream.tables_dir)")
    parser.add_argument("--once", action="store_true",
                        help="deliver what is queued now (retrying with backoff), then stop: exit 1 if some "
                             "output still has updates left after --timeout")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="with --once: how long to keep retrying (default 300)")
    parser.epilog = ("Delivery is at least once: each update has a stable id (<incident_id>:<batch_id>; CEF "
                     "externalId, OCSF metadata.uid, the Idempotency-Key header) by which receivers drop "
                     "duplicates. Run one notifier per tables directory: in the stream, or this command.")


def run(args: argparse.Namespace) -> int:
    from jobs.config import ConfigError, load_config
    from jobs.outputs.notifier import notifier_for

    config = load_config(args.conf)
    notifier = notifier_for(config)
    if notifier is None:
        raise ConfigError(f"{args.conf}: alerts.outputs enables no output: nothing to deliver to")
    if args.once:
        done = notifier.drain(args.timeout)
        for output in notifier.outputs:
            output.close()
        return 0 if done else 1
    notifier.start()
    try:
        notifier.wait()
    except KeyboardInterrupt:
        log.info("stopping the notifier (what is not delivered stays queued)")
    finally:
        notifier.stop()
    return 0
