"""Where producers of flow records (the replayer, the sensor) send them: a Kafka topic, keyed (the
device, or the replayed file and row), or a directory of JSON-lines files for the streaming job's
file source (the embedded default); and in which wire format (JSON, or Avro to Kafka: :mod:`jobs.wire`)."""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from jobs.errors import UserError

if TYPE_CHECKING:
    from jobs.wire import Encoder

log = logging.getLogger(__name__)


class BrokerUnreachableError(UserError, ConnectionError):
    """The Kafka broker did not answer; the message names the address tried."""



def add_kafka_security_argument(parser) -> None:
    """``--conf``: the job's configuration, whose ``stream.kafka`` TLS and SASL keys a producer uses."""
    parser.add_argument("--conf", metavar="FILE",
                        help="a configuration (conf/*.yaml) whose stream.kafka TLS and SASL keys the producer uses "
                             "(security_protocol, sasl_*, ssl_*); default: plaintext, no authentication")


def add_wire_format_arguments(parser) -> None:
    """``--wire-format`` and ``--schema-id``: how records are encoded (:mod:`jobs.wire`)."""
    from jobs.wire import WIRE_FORMATS

    parser.add_argument("--wire-format", choices=WIRE_FORMATS, default=None,
                        help="message encoding on Kafka: json, or avro (Confluent wire format, the schema of "
                             "schemas/flow_record_avro.py); default: --conf's stream.kafka.wire_format, else json")
    parser.add_argument("--schema-id", type=int, default=None, metavar="N",
                        help="the Avro schema id the messages carry (pinned: no registry); default: --conf's "
                             "stream.kafka.avro_schema_id, else 1")


def wire_choice(args) -> tuple[str, int]:
    """(wire format, Avro schema id) as ``--wire-format``/``--schema-id`` ask, else as ``--conf``'s
    ``stream.kafka`` keys say, else JSON and id 1. Avro goes to Kafka only: the job's file source
    reads JSON lines."""
    from jobs.wire import DEFAULT_SCHEMA_ID, MAX_SCHEMA_ID

    kafka = None
    if getattr(args, "conf", None):
        from jobs.config import load_config

        kafka = load_config(args.conf).stream.kafka
    wire_format = args.wire_format or (kafka.wire_format if kafka else "json")
    schema_id = args.schema_id if args.schema_id is not None else (kafka.avro_schema_id if kafka else DEFAULT_SCHEMA_ID)
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise UserError(f"--schema-id must be from 0 to {MAX_SCHEMA_ID}, not {schema_id}")
    if wire_format != "json" and getattr(args, "to_dir", None):
        raise UserError(f"--to-dir writes JSON-lines files (what the job's file source reads): "
                        f"--wire-format {wire_format} needs --bootstrap")
    return wire_format, schema_id


def message_encoder_for(args) -> "Encoder":
    """The encoder :func:`wire_choice` picks."""
    from jobs.wire import message_encoder

    return message_encoder(*wire_choice(args))


def kafka_sink(bootstrap: str, topic: str, conf: str | None = None) -> "KafkaSink":
    """A producer to ``bootstrap``, secured as ``conf``'s ``stream.kafka`` says (when given)."""
    extra: dict[str, str] = {}
    if conf:
        from jobs.config import load_config
        from jobs.kafka_security import librdkafka_security

        extra = librdkafka_security(load_config(conf).stream.kafka)
    return KafkaSink(bootstrap, topic, extra)


class Sink(Protocol):
    def send(self, key: str, value: bytes) -> None: ...
    def close(self) -> None: ...



class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, extra: dict[str, str] | None = None) -> None:
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient

        settings = {"bootstrap.servers": bootstrap, **(extra or {})}
        seen: list[str] = []  # what librdkafka reported meanwhile: a TLS or SASL failure says why

        def on_error(error) -> None:
            text = error.str() if hasattr(error, "str") else str(error)
            if not any(noise in text for noise in ("transport failure", "brokers are down")):
                seen.append(text)

        admin = AdminClient({**settings, "log_level": 0, "error_cb": on_error})  # quiet: we report it
        try:
            admin.list_topics(timeout=10)
        except KafkaException as exc:
            admin.poll(1)  # serves the error callbacks
            causes = seen[0] if seen else ""
            hint = ("Check the TLS and SASL settings of --conf" if causes and extra
                    else "Is it running, and is --bootstrap right?")
            raise BrokerUnreachableError(
                f"cannot reach the Kafka broker at {bootstrap} (10 s): {exc.args[0] if exc.args else exc}"
                f"{f' ({causes})' if causes else ''}. {hint}") from exc
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
