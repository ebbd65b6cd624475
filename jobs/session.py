"""build_spark: the one place a SparkSession is made, from configuration (never a hard-coded master)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from jobs.errors import UserError
from jobs.config import AppConfig, cache_dir

log = logging.getLogger(__name__)

DELTA_SETTINGS: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Defaults the configuration may override.
# - Constraint propagation is off: the validation expression of parse_flows (one check per
#   feature) makes Catalyst's constraint inference take minutes per micro-batch, and the job gains
#   nothing from the inferred filters.
# - Spark's status store keeps the last 1,000 SQL executions (with their plans and metrics), jobs
#   and stages even with the UI off (SQLAppStatusListener is created regardless until SPARK-55353).
#   A stream runs an execution or more per micro-batch, ~3,600 an hour at a 1-second trigger, so
#   the driver's heap grows for its first 20-30 minutes with records nobody reads; 100 is plenty
#   for a UI that is on.
DEFAULT_SETTINGS: dict[str, str] = {
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.sql.ui.retainedExecutions": "100",
    "spark.ui.retainedJobs": "100",
    "spark.ui.retainedStages": "100",
    "spark.ui.retainedTasks": "10000",
}


# Defaults for local mode only (the configuration may override each; a cluster keeps Spark's):
# - Delta rebuilds a table's state in 50 partitions by default, which on a laptop's 2-8 cores turns
#   every commit into seconds of task overhead (measured: an empty append took 3-4 s with 50,
#   1-1.5 s with 1);
# - the driver JVM with the serial collector and a smaller code cache, and glibc held to 2 malloc
#   arenas (LOCAL_ENV): measured on the 2-core machine, the JVM's peak RSS fell from 1.28 GB to
#   0.88 GB with the same micro-batch times.
LOCAL_SETTINGS: dict[str, str] = {
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:ReservedCodeCacheSize=96m",
}
LOCAL_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "2"}  # inherited by the JVM and Python workers


class MissingJarsError(UserError, RuntimeError):
    """The Kafka/Delta jars are not where the configuration says."""


def spark_jars(jars_dir: Path | None) -> list[Path]:
    """The jars Spark needs beside pyspark's own (Kafka source, Delta, spark-avro), fetched by ``make setup``."""
    directory = jars_dir or cache_dir() / "jars" / "spark"
    jars = sorted(directory.glob("*.jar"))
    if not jars:
        raise MissingJarsError(
            f"no jars in {directory}: run `make setup` (or conf/jars/fetch_jars.sh) to fetch the "
            "Kafka, Delta and Avro jars from Maven Central, or set spark.jars_dir in the configuration"
        )
    return jars


def _jars_from_spark_submit() -> bool:
    """True under spark-submit when ``--jars`` was given: those jars are already on the classpath."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return False
    from pyspark import SparkConf

    return bool(SparkConf().get("spark.jars", ""))


def build_spark(config: AppConfig, app_name: str):
    """A SparkSession with Delta Lake and the Kafka source.

    ``spark.master`` comes from the configuration only when set there (local runs); under
    ``spark-submit`` the command line decides. Jars are added from ``spark.jars_dir`` unless the
    configuration already sets ``spark.jars`` (a cluster that ships its own).
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if (config.spark.master or "").startswith("local") and "spark.pyspark.python" not in config.spark.conf:
        # local mode: Python workers use this interpreter (the venv with pyarrow, TensorFlow...)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if config.spark.master:
        builder = builder.master(config.spark.master)
    settings = {**DEFAULT_SETTINGS, **DELTA_SETTINGS, **config.stream.tables.spark_conf(with_credentials=True)}
    if (config.spark.master or "").startswith("local"):
        settings.update(LOCAL_SETTINGS)
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
    if config.stream.sequence.enabled:  # the device context's stateful operator (jobs.stream.device_context)
        from jobs.stream.device_context import SESSION_SETTINGS

        settings.update(SESSION_SETTINGS)
    if "spark.jars" not in config.spark.conf and not _jars_from_spark_submit():
        settings["spark.jars"] = ",".join(str(p) for p in spark_jars(config.spark.jars_dir))
    settings.update(config.spark.conf)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    log.info("SparkSession %s on %s (Spark %s)", app_name, spark.sparkContext.master, spark.version)
    return spark
