"""A real rsyslogd (Debian's, tests/services/install_rsyslog.sh) for the syslog output's tests: its
own generated configuration, listening with ``imtcp`` on a free loopback port, plain or TLS (the
``gtls`` driver, client certificates required), and writing every message it receives to a file as
one JSON line of the fields rsyslog parsed (RFC 5424 header, structured data, message).

Stop and start it again to take the receiver away and bring it back on the same port.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.tls import Pki
from tests.services.ports import free_port, wait_for_port
from tests.services.processes import log_tail, stop_service

# the fields rsyslog parsed from each message, as a JSON object (the `json` option escapes them)
_FIELDS = ("pri", "protocol-version", "timereported:::date-rfc3339", "hostname", "app-name", "procid", "msgid",
           "structured-data", "msg")


def rsyslogd_binary() -> str | None:
    for candidate in (shutil.which("rsyslogd"), "/usr/sbin/rsyslogd"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _template() -> str:
    parts = []
    for field in _FIELDS:
        name = field.split(":", 1)[0]
        options = field.split(":::", 1)[1] + ",json" if ":::" in field else "json"
        parts.append(f'\\"{name}\\":\\"%{name}:::{options}%\\"')
    return "{" + ",".join(parts) + "}\\n"


class RsyslogServer:
    """rsyslogd on 127.0.0.1:``port``; TLS with ``pki`` (the server's certificate, the CA that must
    have signed the client's)."""

    def __init__(self, pki: Pki | None = None) -> None:
        self.pki = pki
        self.port = free_port()
        self.work = Path(tempfile.mkdtemp(prefix="iomt-rsyslog-"))
        self.output = self.work / "received.jsonl"
        self._process: subprocess.Popen | None = None

    def _config(self) -> str:
        lines = [f'global(workDirectory="{self.work}" maxMessageSize="64k"']
        if self.pki is not None:
            lines[0] += (f' defaultNetstreamDriverCAFile="{self.pki.ca_cert}"'
                         f' defaultNetstreamDriverCertFile="{self.pki.server_cert}"'
                         f' defaultNetstreamDriverKeyFile="{self.pki.server_key}"')
        lines[0] += ")"
        if self.pki is not None:
            lines.append('module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" '
                         'streamDriver.authMode="x509/certvalid")')
        else:
            lines.append('module(load="imtcp")')
        lines += [f'input(type="imtcp" address="127.0.0.1" port="{self.port}")',
                  f'template(name="fields" type="string" string="{_template()}")',
                  f'action(type="omfile" file="{self.output}" template="fields" flushOnTXEnd="on" asyncWriting="off")']
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 30) -> None:
        binary = rsyslogd_binary()
        if binary is None:
            raise FileNotFoundError("rsyslogd is missing: run tests/services/install_rsyslog.sh")
        config = self.work / "rsyslog.conf"
        config.write_text(self._config())
        log = (self.work / "rsyslogd.log").open("ab")
        self._process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(self.work / "rsyslogd.pid")],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        try:
            wait_for_port(self.port, timeout_s)
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"rsyslogd did not listen on {self.port}: {log_tail(self.work / 'rsyslogd.log')}") \
                from exc

    def stop(self) -> None:
        """Stop the daemon (what it wrote stays, for :meth:`received`)."""
        stop_service(self._process, timeout_s=20)
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def received(self) -> list[dict[str, str]]:
        """What rsyslog parsed of each message so far, ours only (not rsyslogd's own)."""
        if not self.output.exists():
            return []
        rows = [json.loads(line) for line in self.output.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [row for row in rows if row.get("app-name") != "rsyslogd"]

    def wait_for(self, count: int, timeout_s: float = 30) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = self.received()
            if len(rows) >= count:
                return rows
            time.sleep(0.2)
        raise TimeoutError(f"rsyslog received {len(self.received())} of {count} messages in {timeout_s:.0f} s; "
                           f"its log: {log_tail(self.work / 'rsyslogd.log')}")
