"""Fault injection for the crash tests: stop the driver at a named point of a micro-batch so that a
test can kill it there with SIGKILL.

Set ``IOMT_AD_PAUSE_AT=<point>:<marker file>`` in the job's environment (never in production): when
the sink reaches ``<point>`` the driver writes the batch id to the marker file, logs a warning and
sleeps for :data:`PAUSE_S` seconds before going on. Points: ``before_batch_log`` (every table of the
batch committed to Delta, its InfluxDB points sent, its ``batch_log`` row not yet written).
Without the variable a point costs one dictionary lookup.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

PAUSE_ENV = "IOMT_AD_PAUSE_AT"
BEFORE_BATCH_LOG = "before_batch_log"
POINTS = frozenset({BEFORE_BATCH_LOG})
PAUSE_S = 600.0


def pause_point(point: str, batch_id: int) -> None:
    """Pause here if ``IOMT_AD_PAUSE_AT`` names ``point`` (once per marker file: a marker that
    exists already lets the job pass)."""
    setting = os.environ.get(PAUSE_ENV)
    if not setting:
        return
    name, _, marker = setting.partition(":")
    if name not in POINTS or not marker:
        raise ValueError(f"{PAUSE_ENV}={setting!r}: expected <point>:<marker file>, point one of {sorted(POINTS)}")
    if name != point or Path(marker).exists():
        return
    Path(marker).write_text(str(batch_id))
    log.warning("batch %d paused at %s for %.0f s (%s is set: a crash test)", batch_id, point, PAUSE_S, PAUSE_ENV)
    time.sleep(PAUSE_S)
