"""``iomt-ad dashboard``: the operator dashboard (Streamlit, Plotly) over the job's Delta tables.

Reads ``flows_scored``, ``alerts``, ``traffic_1m``, ``batch_log`` and ``incidents`` with the ``deltalake``
package (no JVM) and the ensemble threshold from the model bundle's manifest; re-reads every few seconds.
Analysts' actions on incidents are appended to ``incident_actions`` and ``mutes`` (``jobs.incidents``)
as the signed-in user (``local`` without sign-in).
The page is ``jobs/dashboard/app.py``; the command replaces itself with ``streamlit run`` on it.

Sign-in (:mod:`jobs.dashboard.auth`): users from ``--users-file`` or one password from the
environment; without either the dashboard serves only a loopback address. ``--tls-cert`` and
``--tls-key`` serve it over https.
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


ENV_TLS_CERT = "IOMT_AD_DASHBOARD_TLS_CERT"
ENV_TLS_KEY = "IOMT_AD_DASHBOARD_TLS_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", default=None,
                        help="the job's tables: a path or s3://bucket/prefix (default: stream.tables_dir of --conf, "
                             "else var/delta)")
    parser.add_argument("--conf", type=Path, default=None,
                        help="the job's configuration: its stream.tables_dir and, for an object store, "
                             "stream.storage (credentials from the environment or files it names)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE,
                        help=f"model bundle whose threshold is drawn (default {DEFAULT_BUNDLE})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1); any other needs sign-in configured")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--window-minutes", type=int, default=60, help="minutes of data shown (default 60)")
    parser.add_argument("--refresh-seconds", type=int, default=5, help="auto-refresh period (default 5)")
    parser.add_argument("--users-file", type=Path, default=os.environ.get("IOMT_AD_DASHBOARD_USERS_FILE") or None,
                        help="who may sign in: name:hash lines (default $IOMT_AD_DASHBOARD_USERS_FILE); or set "
                             "IOMT_AD_DASHBOARD_PASSWORD (user IOMT_AD_DASHBOARD_USER, default operator)")
    parser.add_argument("--add-user", metavar="NAME",
                        help="add NAME to --users-file (or change its password) and exit; the password is read "
                             "from the terminal, or from the first line of standard input")
    parser.add_argument("--tls-cert", type=Path, default=os.environ.get(ENV_TLS_CERT) or None,
                        help=f"serve https with this PEM certificate (chain) (default ${ENV_TLS_CERT})")
    parser.add_argument("--tls-key", type=Path, default=os.environ.get(ENV_TLS_KEY) or None,
                        help=f"... and this PEM private key (default ${ENV_TLS_KEY})")
    parser.epilog = ("Without --users-file or IOMT_AD_DASHBOARD_PASSWORD the dashboard has no sign-in and "
                     "serves only a loopback address. Passwords cross the network in clear without "
                     "--tls-cert/--tls-key (or a TLS proxy in front).")


def streamlit_command(host: str, port: int, tls: tuple[Path, Path] | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--global.developmentMode", "false",
               "--client.toolbarMode", "viewer", "--server.enableXsrfProtection", "true"]
    if tls:
        command += ["--server.sslCertFile", str(tls[0]), "--server.sslKeyFile", str(tls[1])]
    return command


def _tls_files(args: argparse.Namespace) -> tuple[Path, Path] | None:
    from jobs.dashboard.auth import AuthConfigError

    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise AuthConfigError("give both --tls-cert and --tls-key (PEM files), or neither")
    for path in (args.tls_cert, args.tls_key):
        if not path.is_file():
            raise AuthConfigError(f"{path}: no such TLS file")
    return args.tls_cert.resolve(), args.tls_key.resolve()


def _add_user(args: argparse.Namespace) -> int:
    import getpass

    from jobs.dashboard.auth import AuthConfigError, add_user

    if args.users_file is None:
        raise AuthConfigError("--add-user needs --users-file FILE (created if missing)")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.add_user}: ")
        if getpass.getpass("again: ") != password:
            raise AuthConfigError("the two passwords differ; nothing written")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    add_user(args.users_file, args.add_user, password)
    log.info("%s: %s can sign in", args.users_file, args.add_user)
    return 0


def server_environment(args: argparse.Namespace, settings, base: dict[str, str]) -> dict[str, str]:
    """The Streamlit server's environment: the page's settings and the users' hashes; a password
    given in the environment is hashed here and not passed on. Refuses a non-loopback address
    without sign-in."""
    from jobs.dashboard import auth

    users = auth.credentials_from(args.users_file, base)
    if users is None and not auth.is_loopback(args.host):
        raise auth.AuthConfigError(
            f"--host {args.host} would serve the dashboard to the network without sign-in: create a users file "
            "(`iomt-ad dashboard --add-user NAME --users-file FILE`) and pass --users-file, or set "
            "IOMT_AD_DASHBOARD_PASSWORD; or serve 127.0.0.1 only")
    env = {k: v for k, v in base.items() if k not in (auth.ENV_PASSWORD, auth.ENV_CREDENTIALS)}
    env.update(settings.to_env())
    if users is not None:
        env[auth.ENV_CREDENTIALS] = auth.encode_credentials(users)
    else:
        log.warning("the dashboard has no sign-in: anyone who can reach %s on this machine sees it "
                    "(--users-file or IOMT_AD_DASHBOARD_PASSWORD add one)", args.host)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


def run(args: argparse.Namespace) -> int:
    from jobs.dashboard.data import DashboardSettings

    if args.add_user:
        return _add_user(args)
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
    tls = _tls_files(args)
    env = server_environment(args, settings, dict(os.environ))
    log.info("operator dashboard on %s://%s:%d over %s (%s)", "https" if tls else "http", args.host, args.port,
             settings.tables_dir, "sign-in required" if "IOMT_AD_DASHBOARD_CREDENTIALS" in env else "no sign-in")
    command = streamlit_command(args.host, args.port, tls)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # this process becomes the Streamlit server, so that a stop signal (SIGTERM from `docker stop`,
    # systemd or a test) reaches the server itself: a parent left to wait on it would die on SIGTERM
    # and leave the server running
    os.execve(command[0], command, env)
    return 0  # not reached
