"""A real InfluxDB 2.x server (``influxd`` built by build_influxd.sh) on a free loopback port,
set up with an org, a bucket and an all-access token, in a temporary directory."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from jobs.config import cache_dir
from tests.services.ports import free_port
from tests.services.processes import log_tail, stop_service

log = logging.getLogger(__name__)

ORG = "iomt"
BUCKET = "iomt"
TOKEN = "iomt-ad-test-token"  # a throwaway token of a throwaway server on loopback


def influxd_binary() -> Path:
    cache = cache_dir()
    found = sorted((cache / "influxd").glob("*/influxd"))
    if not found:
        raise FileNotFoundError(f"no influxd under {cache / 'influxd'}: run `make setup`")
    return found[-1]


class InfluxServer:
    """``tls``: (certificate, key, CA) PEM files; the server then answers https only."""

    def __init__(self, work_dir: Path | None = None, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="iomt-influxd-"))
        self._owns_work_dir = work_dir is None  # a temporary directory of its own: removed on stop
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import ssl

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=str(self.tls[2])) if self.tls else None
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def start(self, timeout_s: float = 60) -> "InfluxServer":
        d = self.work_dir
        d.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXD_")}
        env["INFLUXD_CONFIG_PATH"] = str(d / "no-config.toml")  # never pick up a config.* from cwd
        log_path = d / "influxd.log"
        log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(influxd_binary()), "--bolt-path", str(d / "influxd.bolt"), "--engine-path", str(d / "engine"),
             "--sqlite-path", str(d / "influxd.sqlite"), "--http-bind-address", f"127.0.0.1:{self.port}",
             "--reporting-disabled", "--log-level", "error", "--storage-cache-max-memory-size", "67108864",
             *(["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])] if self.tls else [])],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=d, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"influxd exited early: {log_tail(log_path)}")
            try:
                if self._request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = log_tail(log_path)
                self.stop()
                raise TimeoutError(f"influxd not healthy after {timeout_s:.0f} s: {tail}")
            time.sleep(0.2)
        status, _ = self._request("POST", "/api/v2/setup", {
            "username": "iomt", "password": "iomt-ad-test-password", "org": ORG, "bucket": BUCKET, "token": TOKEN})
        if status != 201:
            tail = log_tail(log_path)
            self.stop()
            raise RuntimeError(f"influxd setup failed with HTTP {status}: {tail}")
        log.info("InfluxDB up at %s (work dir %s)", self.url, d)
        return self

    def stop(self) -> None:
        stop_service(self.process, 20, self.work_dir if self._owns_work_dir else None)
        self.process = None

    def __enter__(self) -> "InfluxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
