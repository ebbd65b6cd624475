"""Shared fixtures: one SparkSession per test session, and real services started once per session.

Services are real processes on loopback (a KRaft Kafka broker, InfluxDB, an S3-compatible object
store); tests that need them are marked ``kafka`` / ``influxdb`` / ``objectstore`` / ``spark`` and CI
runs them all.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.object_store import credentials_env

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "data" / "ciciomt2024-sample"
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("PYSPARK_PYTHON", str(Path(os.sys.executable)))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # services and Spark stay on loopback
# S3 credentials come from the environment (as in the product): the JVMs the tests start (local Spark,
# the standalone cluster's workers and executors) inherit the throwaway object store's keys from here,
# set before any of them starts. Set, not defaulted: no test may reach a real account with a
# developer's own keys.
os.environ.update(credentials_env())


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full real data beside the repository (present on developer machines and in CI)."""
    if not (SHARED_DATA / "ciciomt2024").is_dir():
        pytest.skip(f"{SHARED_DATA} is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from jobs.config import SparkConfig, AppConfig
    from jobs.session import build_spark, spark_jars

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    jars = spark_jars(None)  # the job's jars (spark-avro among them, for the Avro wire format)
    config = AppConfig(
        spark=SparkConfig(
            master="local[2]",
            conf={
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.shuffle.partitions": "2",
                "spark.default.parallelism": "2",
                "spark.sql.session.timeZone": "UTC",
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                # small Arrow batches so the pandas UDFs see many batches even on small test data
                "spark.sql.execution.arrow.maxRecordsPerBatch": "500",
                "spark.sql.warehouse.dir": str(warehouse),
                "spark.driver.memory": "2g",
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.jars": ",".join(str(p) for p in jars),
            },
        )
    )
    session = build_spark(config, "iomt-ad-tests")
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator["KafkaBroker"]:  # noqa: F821
    from tests.services.kafka_broker import KafkaBroker

    broker = KafkaBroker()
    broker.start()
    yield broker
    broker.stop()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("py4j").setLevel(logging.WARNING)


# A test that uses one of these fixtures (directly or through another fixture) starts that part, and
# must carry its marker, so that `-m "not spark"` and the like select truthfully.
FIXTURE_MARKERS: dict[str, str] = {"spark": "spark", "kafka_broker": "kafka", "influxdb": "influxdb",
                                   "spark_cluster": "cluster", "object_store": "objectstore"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [f"{item.nodeid} uses {fixture} but is not marked {marker}"
                for item in items for fixture, marker in FIXTURE_MARKERS.items()
                if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None]
    if unmarked:
        raise pytest.UsageError("tests without the marker of what they start:\n" + "\n".join(unmarked))


@pytest.fixture(scope="session")
def influxdb() -> Iterator["InfluxServer"]:  # noqa: F821
    from tests.services.influxdb_server import InfluxServer

    server = InfluxServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def object_store() -> Iterator["ObjectStore"]:  # noqa: F821
    from tests.services.object_store import ObjectStore

    store = ObjectStore()
    store.start()
    yield store
    store.stop()
