"""``iomt-ad baseline``: learn a site's normal traffic into a new bundle version (the base bundle's
unsupervised detectors and every threshold refitted on the site's benign traffic; its attack
classifier kept): ``models.training.baseline``.

    iomt-ad baseline --pcap ward3-normal.pcapng [--window 10] --out models/v3-ward3
    iomt-ad baseline --from 2026-11-01T00:00Z --to 2026-11-08T00:00Z [--conf conf/kafka.yaml] --out models/v3-ward3
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from jobs.errors import UserError
from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pcap", nargs="+", type=Path, metavar="FILE",
                        help="captures of the site's normal traffic (windows as the sensor makes them)")
    source.add_argument("--from", dest="start", metavar="T1",
                        help="start of a time range of flows_scored known to be normal (with --to)")
    parser.add_argument("--to", dest="end", metavar="T2", help="end of the range (exclusive)")
    parser.add_argument("--conf", default="conf/local.yaml", help="configuration naming stream.tables_dir (with --from)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help=f"the base bundle (default {DEFAULT_BUNDLE})")
    parser.add_argument("--out", type=Path, required=True, help="the new bundle's directory, e.g. models/v3-ward3")
    parser.add_argument("--version", help="its model version (default: the --out directory's name)")
    parser.add_argument("--window", type=int, default=10, help="packets per window, as the site's sensor runs (default 10)")
    parser.add_argument("--home-net", nargs="+", metavar="CIDR", help="the sensor's --home-net (default: private ranges)")
    parser.add_argument("--target-fpr", type=float, default=0.01,
                        help="false-positive rate on the site's validation windows (default 0.01)")
    parser.add_argument("--timesteps", type=int, metavar="K",
                        help="the autoencoder reads each device's last K windows (K > 1; the stream then needs "
                             "stream.sequence.context_windows >= K-1); default: the base bundle's (1)")
    parser.add_argument("--max-gap", type=float, default=600.0, metavar="SECONDS",
                        help="with --timesteps: windows of a device further apart start a new sequence (default 600)")


def site_records_from_tables(conf: str, start: str, end: str):
    """``flows_scored`` rows with ``start <= event_time < end``, as wire records (dataset feature names)."""
    from datetime import datetime

    import pyarrow.dataset as ds

    from jobs.config import load_config
    from schemas.flow_record import DEVICE_ID, EVENT_TIME, FEATURE_COLUMNS, FEATURES, RECORD_ID

    config = load_config(conf)
    try:
        low, high = datetime.fromisoformat(start.replace("Z", "+00:00")), datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"--from/--to must be ISO-8601 times: {exc}") from exc
    tables = config.stream.tables
    table = tables.delta_table("flows_scored").to_pyarrow_dataset()
    rows = table.to_table(columns=[RECORD_ID, EVENT_TIME, DEVICE_ID, *FEATURE_COLUMNS],
                          filter=(ds.field("event_time") >= low) & (ds.field("event_time") < high)).to_pandas()
    return rows.rename(columns=dict(zip(FEATURE_COLUMNS, FEATURES))), {
        "flows_scored": tables.uri("flows_scored"), "from": start, "to": end}


def run(args: argparse.Namespace) -> int:
    from jobs.sensor.command import capture_records
    from models.bundle import sha256_of
    from models.training.baseline import fit_site_baseline

    if args.pcap:
        site, capture = capture_records(args.pcap, window=args.window, home_nets=args.home_net)
        if capture.damage:
            log.warning("%s", capture.damage)
        provenance = {"captures": [{"name": p.name, "sha256": sha256_of(p)} for p in args.pcap],
                      "packets": capture.packets, "window_packets": args.window}
    else:
        if not args.end:
            raise UserError("--from needs --to")
        site, provenance = site_records_from_tables(args.conf, args.start, args.end)
    if args.timesteps is not None and args.timesteps < 1:
        raise UserError(f"--timesteps {args.timesteps}: give 1 or more")
    fit = fit_site_baseline(args.model, site, args.out, args.version or args.out.name, provenance,
                            target_fpr=args.target_fpr, timesteps=args.timesteps, max_gap_s=args.max_gap)
    log.info("site bundle written to %s: %s", args.out, fit["site_rows"])
    return 0
