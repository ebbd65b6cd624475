"""The notifier's filter from the analysts' mutes and maintenance windows (``iomt-ad incidents mute``,
``maintenance``, the operator dashboard): an update of an incident they match is recorded as
suppressed with the reason, and not sent. The rules are :func:`jobs.incidents.lifecycle.notification_suppressed`'s."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

REREAD_S = 10.0  # a new mute takes effect within this many seconds


class MuteFilter:
    """Callable per update (the notifier's ``notify_filter``); reads the ``mutes`` table again at most
    every :data:`REREAD_S` seconds, shared by the output threads."""

    def __init__(self, tables: "TablesLocation", reread_s: float = REREAD_S) -> None:
        from jobs.incidents.actions_store import IncidentBook

        self.book = IncidentBook(tables)
        self.reread_s = reread_s
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._active: tuple[list, list] = ([], [])

    def _suppressions(self, at: datetime) -> tuple[list, list]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.reread_s:
                self._active = self.book.suppressions(at)
                self._read_at = time.monotonic()
            return self._active

    def __call__(self, update: dict[str, Any]) -> str | None:
        from jobs.incidents.lifecycle import notification_suppressed

        at = datetime.now(timezone.utc)
        mutes, windows = self._suppressions(at)
        return notification_suppressed(update, mutes, windows, at)
