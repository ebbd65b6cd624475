"""The syslog output: RFC 5424 messages over TCP with octet-counting framing (RFC 6587: ``<length> <message>``),
over TLS (RFC 5425) unless configured off, each carrying an update as CEF (:mod:`jobs.outputs.cef`).

``<PRI>1 <timestamp> <hostname> <app-name> - incident [iomt@32473 updateId="..."] CEF:0|...``: the
structured data repeats the update id (32473 is the private enterprise number RFC 5612 reserves
for examples: this product has none of its own), so a receiver can drop a duplicate without parsing CEF.
One connection is kept, and opened again after a failure or once the receiver has closed it; a
send that fails raises :class:`OutputError` and the notifier retries it later. Syslog over TCP has
no acknowledgement: a message written just as the receiver goes away can be lost in its socket
buffers (RELP, which this output does not speak, would close that gap).
"""
from __future__ import annotations

import logging
import socket
import ssl
from datetime import datetime, timezone
from typing import Any, Final

from jobs.outputs.base import OutputError
from jobs.outputs.cef import format_cef
from jobs.outputs.config import FACILITIES, SyslogOutputConfig

log = logging.getLogger(__name__)

SD_ID: Final[str] = "iomt@32473"
# the incident's max_severity as a syslog severity (RFC 5424 6.2.1)
SYSLOG_SEVERITY: Final[dict[str, int]] = {"critical": 2, "high": 3, "medium": 4, "low": 5, "none": 6}


def _header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters, or ``-``."""
    text = "".join(c for c in (value or "") if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(message: str, *, facility: int, severity: int, hostname: str, app_name: str, msgid: str,
            structured: dict[str, str], at: datetime) -> bytes:
    """One RFC 5424 message (UTF-8; the CEF text needs no BOM: RFC 5424 allows a MSG without one)."""
    stamp = at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    params = " ".join(f'{name}="{_sd_value(value)}"' for name, value in structured.items())
    sd = f"[{SD_ID} {params}]" if params else "-"
    return (f"<{facility * 8 + severity}>1 {stamp} {_header_field(hostname, 255)} {_header_field(app_name, 48)} - "
            f"{_header_field(msgid, 32)} {sd} {message}").encode("utf-8")


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: the message's length in bytes, a space, the message."""
    return str(len(message)).encode("ascii") + b" " + message


def _peer_spoke(sock: socket.socket) -> bool:
    """Whether the receiver sent anything, its end of the connection included: a syslog receiver
    never answers, so anything readable means the connection is closing or broken."""
    import select

    readable, _, broken = select.select([sock], [], [sock], 0)
    return bool(readable or broken)


class SyslogOutput:
    name = "syslog"

    def __init__(self, config: SyslogOutputConfig, version: str) -> None:
        self.config = config
        self.version = version
        self.hostname = config.hostname or socket.gethostname()
        self._socket: socket.socket | None = None

    def message(self, update: dict[str, Any]) -> bytes:
        return rfc5424(format_cef(update, self.version), facility=FACILITIES[self.config.facility],
                       severity=SYSLOG_SEVERITY.get(update.get("max_severity") or "none", 6), hostname=self.hostname,
                       app_name=self.config.app_name, msgid="incident",
                       structured={"updateId": update["update_id"], "incidentId": update["incident_id"]},
                       at=update.get("updated_at") or datetime.now(timezone.utc))

    def _connect(self) -> socket.socket:
        config = self.config
        raw = socket.create_connection((config.host, config.port), timeout=config.timeout_seconds)
        if not config.tls:
            return raw
        context = ssl.create_default_context(cafile=config.ca_file)
        if config.cert_file:
            context.load_cert_chain(config.cert_file, config.key_file)
        try:
            return context.wrap_socket(raw, server_hostname=config.host)
        except BaseException:
            raw.close()
            raise

    def send(self, update: dict[str, Any]) -> None:
        frame = octet_counted(self.message(update))
        try:
            if self._socket is not None and _peer_spoke(self._socket):
                self.close()  # the receiver closed it (restarted): a send there would be lost
            if self._socket is None:
                self._socket = self._connect()
            self._socket.sendall(frame)
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise OutputError(f"syslog {self.config.host}:{self.config.port}: {exc}") from exc

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            finally:
                self._socket = None
