"""``iomt-ad influx-tokens``: least-privilege InfluxDB tokens for the job and for Grafana.

With an operator (all-access) token, once, it creates two authorizations scoped to the job's bucket:
one that may only *write* it (the streaming job's ``influxdb.token_file``) and one that may only
*read* it (Grafana's datasource), and writes each token to its own file (mode 0600 unless told
otherwise). Run again, it keeps a token whose file still holds an active authorization with exactly
that permission, and replaces one that was deleted, disabled or widened: idempotent, so the Compose
stack runs it on every start. ``--rotate`` replaces both and deletes the old authorizations (restart
the job and Grafana afterwards). The operator token itself is only read from the environment or a
file, and no token is ever logged.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.config import ConfigError, InfluxConfig, load_config, read_secret
from jobs.errors import UserError

log = logging.getLogger(__name__)

WRITE, READ = "write", "read"
DEFAULT_ADMIN_TOKEN_ENV = "INFLUXDB_ADMIN_TOKEN"


class InfluxTokensError(UserError):
    """InfluxDB refused or could not be reached; the message says what to check."""


@dataclass(frozen=True)
class TokenSpec:
    """One token to keep: who uses it, what it may do on the bucket, where it is written."""

    role: str          # "job" or "grafana"
    action: str        # WRITE or READ
    path: Path
    mode: int = 0o600

    def description(self, bucket: str) -> str:
        return f"iomt-ad {self.role}: {self.action} bucket {bucket}"


@dataclass(frozen=True)
class TokenOutcome:
    role: str
    path: Path
    action: str     # "kept", "created" or "rotated"


def _permission_set(authorization: Any) -> set[tuple[str, str | None, str | None]]:
    return {(p.action, p.resource.type, p.resource.id) for p in authorization.permissions or []}


def _write_token_file(path: Path, token: str, mode: int) -> None:
    """Atomically, with ``mode`` from the start (never readable by others in between); no newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(token)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_tokens(client: Any, org_name: str, bucket_name: str, specs: list[TokenSpec],
                  rotate: bool = False) -> list[TokenOutcome]:
    """Keep or create each token of ``specs`` (an ``InfluxDBClient`` with an operator token)."""
    from influxdb_client import Authorization, Permission, PermissionResource

    orgs = client.organizations_api().find_organizations(org=org_name)
    if not orgs:
        raise InfluxTokensError(f"InfluxDB has no organisation {org_name!r}: check --org (influxdb.org)")
    org = orgs[0]
    bucket = client.buckets_api().find_bucket_by_name(bucket_name)
    if bucket is None or bucket.org_id != org.id:
        raise InfluxTokensError(f"InfluxDB has no bucket {bucket_name!r} in {org_name!r}: create it "
                                f"(influx bucket create -n {bucket_name}) or check --bucket (influxdb.bucket)")
    auths = client.authorizations_api()
    by_token = {a.token: a for a in auths.find_authorizations(org_id=org.id)}
    outcomes = []
    for spec in specs:
        wanted = {(spec.action, "buckets", bucket.id)}
        current = by_token.get(spec.path.read_text(encoding="utf-8").strip()) if spec.path.is_file() else None
        if current is not None and not rotate and current.status == "active" and _permission_set(current) == wanted:
            outcomes.append(TokenOutcome(spec.role, spec.path, "kept"))
            continue
        permission = Permission(action=spec.action,
                                resource=PermissionResource(type="buckets", id=bucket.id, org_id=org.id))
        created = auths.create_authorization(authorization=Authorization(
            org_id=org.id, permissions=[permission], description=spec.description(bucket_name)))
        _write_token_file(spec.path, created.token, spec.mode)
        if current is not None:  # the token the file held: replaced, so no longer needed
            auths.delete_authorization(current)
        outcomes.append(TokenOutcome(spec.role, spec.path, "rotated" if current is not None else "created"))
    return outcomes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="take --url, --org, --bucket, --ssl-ca-file and --job-token-file from this "
                                       "configuration's influxdb section (influxdb.token_file)")
    parser.add_argument("--url", help="InfluxDB's address (default influxdb.url)")
    parser.add_argument("--org", help="the organisation (default influxdb.org)")
    parser.add_argument("--bucket", help="the job's bucket (default influxdb.bucket)")
    parser.add_argument("--ssl-ca-file", help="PEM file of the CA that signed InfluxDB's certificate")
    parser.add_argument("--admin-token-env", default=DEFAULT_ADMIN_TOKEN_ENV,
                        help=f"environment variable holding an operator (all-access) token "
                             f"(default {DEFAULT_ADMIN_TOKEN_ENV})")
    parser.add_argument("--admin-token-file", help="or a file holding it")
    parser.add_argument("--job-token-file", type=Path,
                        help="where the job's write-only token goes (default influxdb.token_file of --conf)")
    parser.add_argument("--grafana-token-file", type=Path, required=True,
                        help="where Grafana's read-only token goes")
    parser.add_argument("--grafana-token-mode", default="600",
                        help="octal mode of Grafana's token file (default 600; 644 where Grafana runs as "
                             "another user, e.g. in its own container)")
    parser.add_argument("--rotate", action="store_true",
                        help="replace both tokens and delete the old authorizations")
    parser.epilog = ("Both tokens are scoped to the one bucket: the job's may only write it, Grafana's may "
                     "only read it. Point the job at its file with influxdb.token_file and Grafana's datasource "
                     "at the other (docker/grafana/provisioning/datasources/influxdb.yaml).")


def _settings(args: argparse.Namespace) -> tuple[InfluxConfig, Path]:
    base = load_config(args.conf).influxdb if args.conf else InfluxConfig()
    config = InfluxConfig(url=args.url or base.url, org=args.org or base.org, bucket=args.bucket or base.bucket,
                          ssl_ca_file=args.ssl_ca_file or base.ssl_ca_file)
    job_file = args.job_token_file or (Path(base.token_file) if args.conf and base.token_file else None)
    if job_file is None:
        raise ConfigError("give --job-token-file (or --conf with influxdb.token_file)")
    return config, job_file


def run(args: argparse.Namespace) -> int:
    import urllib3
    from influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException

    from jobs.stream.influx_writer import influx_tls

    config, job_file = _settings(args)
    admin = read_secret(args.admin_token_env, args.admin_token_file, "InfluxDB operator token")
    if not admin:
        raise ConfigError(f"no operator token: set the environment variable {args.admin_token_env} "
                          "or give --admin-token-file")
    try:
        grafana_mode = int(args.grafana_token_mode, 8)
    except ValueError as exc:
        raise ConfigError(f"--grafana-token-mode {args.grafana_token_mode!r} is not an octal mode such as 600") from exc
    specs = [TokenSpec("job", WRITE, job_file), TokenSpec("grafana", READ, args.grafana_token_file, grafana_mode)]
    with InfluxDBClient(url=config.url, token=admin, org=config.org, timeout=30_000, **influx_tls(config)) as client:
        try:
            outcomes = ensure_tokens(client, config.org, config.bucket, specs, rotate=args.rotate)
        except ApiException as exc:
            raise InfluxTokensError(f"InfluxDB at {config.url} answered HTTP {exc.status} ({exc.reason}): the "
                                    "operator token must be an all-access token of that server") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # connection and TLS errors
            raise InfluxTokensError(f"cannot reach InfluxDB at {config.url}: {exc}") from exc
    for outcome in outcomes:
        spec = next(s for s in specs if s.role == outcome.role)
        log.info("%s token (%s bucket %s only): %s, %s", outcome.role, spec.action, config.bucket, outcome.action,
                 outcome.path)
    return 0
