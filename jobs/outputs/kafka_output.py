"""The Kafka output: each update as an OCSF Detection Finding (JSON) to ``alerts.outputs.kafka.topic``,
keyed by incident id (an incident's updates stay in order on one partition), with the update id in
the ``update_id`` header and in ``metadata.uid``. A send waits for the broker's acknowledgement
(``acks=all``, idempotent producer) at most ``timeout_seconds``; one not acknowledged is retried."""
from __future__ import annotations

import json
import logging
from typing import Any

from jobs.config import KafkaSourceConfig
from jobs.outputs.base import OutputError
from jobs.outputs.config import KafkaOutputConfig
from jobs.outputs.ocsf import detection_finding

log = logging.getLogger(__name__)


class KafkaOutput:
    name = "kafka"

    def __init__(self, config: KafkaOutputConfig, stream_kafka: KafkaSourceConfig, version: str) -> None:
        from confluent_kafka import Producer

        security: dict[str, str] = {}
        if config.security_from_stream:
            from jobs.kafka_security import librdkafka_security

            security = librdkafka_security(stream_kafka)
        timeout_ms = int(config.timeout_seconds * 1000)
        self.config = config
        self.version = version
        self._producer = Producer({"bootstrap.servers": config.bootstrap_servers, "acks": "all",
                                   "enable.idempotence": True, "message.timeout.ms": timeout_ms,
                                   "log_level": 3, **security, **dict(config.options)})

    def send(self, update: dict[str, Any]) -> None:
        errors: list[str] = []

        def delivered(error, _message) -> None:
            if error is not None:
                errors.append(str(error))

        value = json.dumps(detection_finding(update, self.version), default=str).encode("utf-8")
        try:
            self._producer.produce(self.config.topic, key=update["incident_id"].encode(), value=value,
                                   headers=[("update_id", update["update_id"].encode())], on_delivery=delivered)
        except Exception as exc:  # KafkaException (unknown topic...), BufferError (queue full)
            raise OutputError(f"kafka {self.config.topic}: {exc}") from exc
        left = self._producer.flush(self.config.timeout_seconds + 5)
        if left or errors:
            raise OutputError(f"kafka {self.config.topic}: not acknowledged "
                              f"({errors[0] if errors else 'timed out'})")

    def close(self) -> None:
        self._producer.flush(5)
