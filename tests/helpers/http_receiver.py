"""A real HTTP server for the webhook outputs' tests (``http.server`` in a thread on a loopback
port): it keeps every POST (headers and JSON body); it can be stopped and started again on the same
port (an outage), answer with an error, or hang (a slow receiver) until released."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.services.ports import free_port


class HttpReceiver:
    def __init__(self, port: int | None = None, hang_limit_s: float = 600) -> None:
        self.port = port or free_port()
        self.hang_limit_s = hang_limit_s  # a hanging request answers after this at the latest
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.hang = threading.Event()   # set: every request waits until release()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "HttpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hang.is_set():
                    receiver._released.wait(receiver.hang_limit_s)
                with receiver._lock:
                    if receiver.status < 300:
                        receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                                  "json": json.loads(body)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def release(self) -> None:
        self.hang.clear()
        self._released.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.received()) >= count:
                return self.received()
            time.sleep(0.1)
        raise TimeoutError(f"the receiver got {len(self.received())} of {count} requests in {timeout_s:.0f} s")
