"""``iomt-ad grafana``: write (or check) the generated dashboards and alert rules under docker/grafana."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from jobs.grafana import alerts as grafana_alerts
from jobs.grafana.dashboards import DASHBOARDS, DEFAULT_MODEL, GRAFANA_DIR, model_facts, to_json
from jobs.grafana.flux import DEFAULT_INTERVAL, flux_duration
from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)


def render(bundle_dir: Path = DEFAULT_MODEL, alert_rate: float | None = None,
           alert_for: str | None = None, aggregate_interval: str | None = None) -> dict[str, str]:
    """Relative path under docker/grafana -> file text, for every generated file."""
    facts = model_facts(bundle_dir)
    interval = flux_duration(aggregate_interval) if aggregate_interval else DEFAULT_INTERVAL
    files = {f"dashboards/{name}": to_json(build(facts, interval).build()) for name, build in DASHBOARDS.items()}
    files[grafana_alerts.ALERTING_FILE] = grafana_alerts.render(
        alert_rate if alert_rate is not None else grafana_alerts.DEFAULT_RATE_PERCENT,
        alert_for or grafana_alerts.DEFAULT_FOR)
    return files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help=f"model bundle whose thresholds the dashboards draw (default {DEFAULT_BUNDLE})")
    parser.add_argument("--out", type=Path, default=GRAFANA_DIR, help="default docker/grafana")
    parser.add_argument("--alert-rate", type=float, default=None,
                        help="alert when the anomaly rate (%%) stays above this (default 20)")
    parser.add_argument("--alert-for", default=None, help="... for this long (default 5m)")
    parser.add_argument("--aggregate-interval", default=None,
                        help="the job's influxdb.aggregate_interval: no chart window is shorter "
                             f"(default {DEFAULT_INTERVAL})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a committed file differs from the generator")


def run(args: argparse.Namespace) -> int:
    files = render(args.model, args.alert_rate, args.alert_for, args.aggregate_interval)
    stale = [name for name, text in files.items()
             if not (args.out / name).is_file() or (args.out / name).read_text() != text]
    if args.check:
        for name in stale:
            log.error("%s differs from the generator: run `make grafana`", args.out / name)
        return 1 if stale else 0
    for name, text in files.items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    log.info("wrote %d files under %s (%d changed)", len(files), args.out, len(stale))
    return 0
