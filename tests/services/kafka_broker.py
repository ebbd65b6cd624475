"""A real Apache Kafka broker (KRaft, combined broker+controller, no ZooKeeper) on loopback.

The jars come from ``make setup`` (conf/jars/pom.xml, profile ``broker``). Used by the tests, and
usable by hand: ``python -m tests.services.kafka_broker`` starts one and prints its address.
"""
from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobs.config import cache_dir
from tests.services.ports import free_port, wait_for_port
from tests.services.processes import log_tail, stop_service

log = logging.getLogger(__name__)


def broker_jars_dir() -> Path:
    cache = cache_dir()
    directory = cache / "jars" / "broker"
    if not any(directory.glob("kafka_*.jar")):
        raise FileNotFoundError(f"no Kafka broker jars in {directory}: run `make setup`")
    return directory


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS: its key and certificate (PKCS#12) and the CA its clients' certificates must
    chain to (PEM)."""

    keystore: Path
    keystore_password: str
    ca_file: Path


class KafkaBroker:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, work_dir: Path | None = None, heap: str = "512m", tls: "BrokerTls | None" = None) -> None:
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="iomt-kafka-"))
        self._owns_work_dir = work_dir is None  # a temporary directory of its own: removed on stop
        self.heap = heap
        self.port = free_port()
        self.controller_port = free_port()
        self.tls = tls
        # with tls: SASL_SSL (SCRAM-SHA-512 users: add_scram_user) and SSL (a client certificate required)
        self.sasl_ssl_port = free_port() if tls else None
        self.ssl_port = free_port() if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def _listeners(self) -> list[str]:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        lines = []
        if self.tls:
            listeners += [f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port}", f"SSL://127.0.0.1:{self.ssl_port}"]
            protocols += ["SASL_SSL:SASL_SSL", "SSL:SSL"]
            lines = ["sasl.enabled.mechanisms=SCRAM-SHA-512",
                     "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                     "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                     "ssl.keystore.type=PKCS12", f"ssl.keystore.location={self.tls.keystore}",
                     f"ssl.keystore.password={self.tls.keystore_password}",
                     "ssl.truststore.type=PEM", f"ssl.truststore.location={self.tls.ca_file}",
                     "listener.name.ssl.ssl.client.auth=required"]
        return [f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners={','.join(listeners)}",
                f"listener.security.protocol.map={','.join(protocols)}", *lines]

    def _write_config(self) -> tuple[Path, Path]:
        logs = self.work_dir / "data"
        props = self.work_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    *self._listeners(),
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={logs}",
                    "num.partitions=2",
                    "auto.create.topics.enable=true",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=24",
                ]
            )
            + "\n"
        )
        log4j = self.work_dir / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={self.work_dir / 'broker.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\n"
        )
        return props, log4j

    def _java(self, main_class: str, *args: str, log4j: Path) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java, f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp", str(broker_jars_dir() / "*"), main_class, *args,
        ]

    def start(self, timeout_s: float = 90) -> "KafkaBroker":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        props, log4j = self._write_config()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the tool would read a leading "-" as an option (as Kafka's Uuid avoids)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), log4j=log4j),
            check=True, capture_output=True, timeout=120,
        )
        out = (self.work_dir / "stdout.log").open("wb")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(props), log4j=log4j), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_s)
            self._wait_ready(timeout_s)
        except Exception:
            # its log goes with a directory of its own on stop: show the end of it first
            stdout_log = self.work_dir / "stdout.log"
            log.error("Kafka broker did not start; end of %s:\n%s", stdout_log, log_tail(stdout_log))
            self.stop()
            raise
        log.info("Kafka broker up at %s (work dir %s)", self.bootstrap, self.work_dir)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Kafka broker exited early; see {self.work_dir}/stdout.log")
            try:
                metadata = admin.list_topics(timeout=5)
                if metadata.brokers:
                    return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Kafka broker not ready: {exc}") from exc
            time.sleep(0.5)

    def create_topic(self, name: str, partitions: int = 2) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        futures[name].result(timeout=30)

    def add_scram_user(self, name: str, password: str) -> None:
        """A SCRAM-SHA-512 user of the SASL_SSL listener (set through the plaintext listener)."""
        from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialUpsertion)

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        upsertion = UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                                 password.encode("utf-8"))
        for future in admin.alter_user_scram_credentials([upsertion]).values():
            future.result(timeout=30)

    def stop(self) -> None:
        stop_service(self.process, 30, self.work_dir if self._owns_work_dir else None)
        self.process = None

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    with KafkaBroker() as broker:
        log.info("bootstrap %s; Ctrl-C to stop", broker.bootstrap)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
