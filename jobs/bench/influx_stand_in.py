"""A stand-in for an InfluxDB server on another host, for the benchmark: it answers InfluxDB 2's write
endpoint (``POST /api/v2/write`` -> 204), counts the points it received and discards them.

On the 2-core bench machine a real InfluxDB server shares the job's cores; writing to this sink
instead measures what the job itself needs when InfluxDB runs elsewhere (the job still encodes and
sends every point over HTTP; only the server's parsing and storage are taken off the machine).
It runs in its own process so that its CPU is not the driver's and can be reported on its own.

``python -m jobs.bench.influx_stand_in --port N`` serves on 127.0.0.1 until killed; ``GET /count`` returns
``{"points": n, "requests": n, "measurements": {name: n}}``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WRITE_PATH = "/api/v2/write"


def points_in(body: bytes) -> int:
    """Line-protocol points in a request body: its non-empty lines."""
    return sum(1 for line in body.split(b"\n") if line.strip())


def measurements_in(body: bytes) -> dict[str, int]:
    """Points per measurement in a request body (a line's name up to its first unescaped comma or space)."""
    import re

    counts: dict[str, int] = {}
    for line in body.split(b"\n"):
        if line.strip():
            name = re.split(rb"(?<!\\)[, ]", line.strip(), maxsplit=1)[0].decode("utf-8", "replace")
            counts[name] = counts.get(name, 0) + 1
    return counts


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.points = 0
        self.requests = 0
        self.measurements: dict[str, int] = {}


def make_handler(counter: _Counter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server: no connection set-up per request

        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - the http.server interface
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.startswith(WRITE_PATH):
                self._reply(404)
                return
            with counter.lock:
                counter.points += points_in(body)
                counter.requests += 1
                for name, count in measurements_in(body).items():
                    counter.measurements[name] = counter.measurements.get(name, 0) + count
            self._reply(204)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/count"):
                with counter.lock:
                    payload = {"points": counter.points, "requests": counter.requests,
                               "measurements": dict(counter.measurements)}
                self._reply(200, json.dumps(payload).encode())
            elif self.path.startswith(("/health", "/ping")):
                self._reply(200, b'{"status": "pass"}')
            else:
                self._reply(404)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

    return Handler


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(_Counter()))
    server.daemon_threads = True
    server.serve_forever()


class DiscardingInfluxSink:
    """The sink in a child process: ``url``, ``process`` and ``bucket`` as the bench's InfluxDB
    server has them, so a drain takes either; ``service_name`` labels its CPU in the figures."""

    service_name = "influxdb_sink"
    bucket = "iomt"

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "DiscardingInfluxSink":
        self.process = subprocess.Popen([sys.executable, "-m", "jobs.bench.influx_stand_in", "--port", str(self.port)],
                                        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the InfluxDB stand-in exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the InfluxDB stand-in did not answer on {self.url} within {timeout_s:.0f} s")

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/count", timeout=10) as response:
            return json.loads(response.read())

    def points(self) -> int:
        return int(self.counts()["points"])

    def points_of(self, measurement: str) -> int:
        return int(self.counts()["measurements"].get(measurement, 0))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "DiscardingInfluxSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench.influx_stand_in", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args(argv).port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
