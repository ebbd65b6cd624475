"""``iomt-ad dashboard``: the operator dashboard (Streamlit, Plotly) over the job's Delta tables.

Reads ``flows_scored``, ``alerts``, ``traffic_1m`` and ``batch_log`` with the ``deltalake`` package (no
JVM) and the ensemble threshold from the model bundle's manifest; re-reads every few seconds.
The page is ``jobs/dashboard/app.py``; the command replaces itself with ``streamlit run`` on it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parent / "app.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", default=None,
                        help="the job's tables: a path or s3://bucket/prefix (default: stream.tables_dir of --conf, "
                             "else var/delta)")
    parser.add_argument("--conf", type=Path, default=None,
                        help="the job's configuration: its stream.tables_dir and, for an object store, "
                             "stream.storage (credentials from the environment or files it names)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE,
                        help=f"model bundle whose threshold is drawn (default {DEFAULT_BUNDLE})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--window-minutes", type=int, default=60, help="minutes of data shown (default 60)")
    parser.add_argument("--refresh-seconds", type=int, default=5, help="auto-refresh period (default 5)")


def streamlit_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer"]


def run(args: argparse.Namespace) -> int:
    from jobs.dashboard.data import DashboardSettings

    tables = args.tables
    if tables is None:
        from jobs.config import load_config

        tables = load_config(args.conf).stream.tables_dir if args.conf else "var/delta"
    if "://" not in str(tables):
        tables = Path(tables).resolve()
    settings = DashboardSettings(tables_dir=tables, model_dir=args.model.resolve(),
                                 window_minutes=args.window_minutes, refresh_seconds=args.refresh_seconds,
                                 conf_path=args.conf.resolve() if args.conf else None)
    if not (settings.model_dir / "manifest.json").is_file():
        log.error("no model bundle at %s (manifest.json missing)", settings.model_dir)
        return 2
    log.info("operator dashboard on http://%s:%d over %s", args.host, args.port, settings.tables_dir)
    env = dict(os.environ, **settings.to_env())
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    command = streamlit_command(args.host, args.port)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # this process becomes the Streamlit server, so that a stop signal (SIGTERM from `docker stop`,
    # systemd or a test) reaches the server itself: a parent left to wait on it would die on SIGTERM
    # and leave the server running
    os.execve(command[0], command, env)
    return 0  # not reached
