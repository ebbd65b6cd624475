"""Where producers of flow records (the replayer, the sensor) send them: a Kafka topic, keyed (the
device, or the replayed file and row), or a directory of JSON-lines files for the streaming job's
file source (the embedded default)."""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from jobs.errors import UserError

log = logging.getLogger(__name__)


class BrokerUnreachableError(UserError, ConnectionError):
    """The Kafka broker did not answer; the message names the address tried."""



class Sink(Protocol):
    def send(self, key: str, value: bytes) -> None: ...
    def close(self) -> None: ...



class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, extra: dict[str, str] | None = None) -> None:
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient

        settings = {"bootstrap.servers": bootstrap, **(extra or {})}
        try:
            AdminClient({**settings, "log_level": 0}).list_topics(timeout=10)  # quiet: we report it
        except KafkaException as exc:
            raise BrokerUnreachableError(
                f"cannot reach the Kafka broker at {bootstrap} (10 s): {exc.args[0] if exc.args else exc}. "
                "Is it running, and is --bootstrap right?") from exc
        self.topic = topic
        self.failed = 0
        self.producer = Producer({**settings, "linger.ms": 20, "enable.idempotence": True})

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.failed += 1
            log.error("delivery failed: %s", err)

    def send(self, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let deliveries drain
        self.producer.poll(0)

    def close(self) -> None:
        remaining = self.producer.flush(60)
        if remaining or self.failed:
            raise RuntimeError(f"{remaining} messages not delivered, {self.failed} delivery failures")



class DirectorySink:
    """JSON-lines files, each written under a temporary name and renamed when complete, so Spark's
    file source never reads half a file."""

    def __init__(self, directory: str | Path, records_per_file: int = 1000) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.records_per_file = records_per_file
        self.lines: list[bytes] = []
        self.last_flush = time.monotonic()

    def send(self, key: str, value: bytes) -> None:
        self.lines.append(value)
        if len(self.lines) >= self.records_per_file or time.monotonic() - self.last_flush > 1.0:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        name = f"flows-{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(b"\n".join(self.lines) + b"\n")
        os.replace(tmp, self.directory / name)
        self.lines = []
        self.last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
