"""A JSON-lines file of OCSF Detection Findings, one line per incident update, as IDS sensors write
their event logs (Suricata's ``eve.json``): a log shipper (Filebeat, Fluent Bit, Vector, a SIEM's
own agent) tails it. The file is opened, appended, flushed to disk and closed for every update, so a
``logrotate`` that moves it away needs no signal (the next update creates a new file), and an
update is on disk before the notifier records it delivered. Created readable by its owner and
group only (0640): it names devices and what they did."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from jobs.outputs.base import OutputError
from jobs.outputs.config import FileOutputConfig

log = logging.getLogger(__name__)


class FileOutput:
    name = "file"

    def __init__(self, config: FileOutputConfig, version: str) -> None:
        self.path = Path(config.path)
        self.version = version

    def line(self, update: dict[str, Any]) -> bytes:
        from jobs.outputs.ocsf import detection_finding

        return (json.dumps(detection_finding(update, self.version), default=str, separators=(",", ":"))
                + "\n").encode("utf-8")

    def send(self, update: dict[str, Any]) -> None:
        data = self.line(update)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                written = os.write(descriptor, data)  # one write of one line: lines never interleave
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise OutputError(f"file: cannot append to {self.path}: {exc}") from exc
        if written != len(data):
            raise OutputError(f"file: {self.path}: only {written} of {len(data)} bytes written (disk full?)")

    def close(self) -> None:
        pass
