"""Spark on the real standalone cluster writes and reads a Delta table at ``s3a://`` on the real object
store: the S3A jars travel with ``--jars`` (conf/jars/pom.xml), the settings with ``--conf``
(``ObjectStore.spark_conf()``), and the executors, in the workers' own processes, take the
credentials from the environment the workers were started with (tests/conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.session import spark_jars

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

# Executors write the data files (two tasks, one per worker core), the driver commits, and a read
# runs on the executors again, all through s3a.
SCRIPT = """
import sys
from pyspark.sql import SparkSession

path = sys.argv[1]
spark = (SparkSession.builder.appName("s3a-on-the-cluster")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
         .getOrCreate())
spark.range(0, 1000, numPartitions=2).write.format("delta").save(path)
print("ROWS", spark.read.format("delta").load(path).count())
spark.stop()
"""


def test_spark_on_the_cluster_writes_and_reads_delta_on_s3a(spark_cluster, object_store, tmp_path: Path) -> None:
    from deltalake import DeltaTable

    script = tmp_path / "s3a_job.py"
    script.write_text(SCRIPT)
    conf = {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2",
            "spark.driver.memory": "512m", "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
            **object_store.spark_conf()}
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", spark_cluster.url,
               "--deploy-mode", "client", "--jars", ",".join(str(p) for p in spark_jars(None)),
               *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
               str(script), object_store.uri("cluster-table", scheme="s3a")]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "ROWS 1000" in result.stdout

    table = DeltaTable(object_store.uri("cluster-table"), storage_options=object_store.storage_options())
    assert table.version() == 0
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == list(range(1000))
    assert len([key for key in object_store.keys("cluster-table/") if key.endswith(".parquet")]) == 2  # one a task
