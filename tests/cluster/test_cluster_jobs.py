"""The streaming job (Kafka -> Delta) and the re-scoring job submitted in client mode to a real
Spark standalone cluster (one master, two workers, executors in their own processes) with the
``make dist`` artifacts: ``--py-files dist/iomt_ad.zip``, ``--archives dist/bundle-v3.zip#model``
and ``--jars``. Executors import the project from the zip and load the model from the archive
unpacked in their working directory; the job's configuration names the bundle ``model``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from pyspark.sql import functions as F

from jobs.ops.dist import build
from jobs.session import spark_jars
from tests.helpers.streaming import BUNDLE, BUNDLE_VERSION, bad_messages, good_messages, produce

pytestmark = [pytest.mark.cluster, pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

N_GOOD = 600
SUBMIT_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory):
    return build(tmp_path_factory.mktemp("dist"), BUNDLE)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster-jobs")


def cluster_conf(path: Path, tables_dir: Path, bootstrap: str, topic: str, max_offsets: int = 250) -> Path:
    """A cluster configuration: no master (spark-submit decides), the bundle by its archive name."""
    path.write_text(
        "spark:\n  conf:\n    spark.ui.enabled: false\n    spark.ui.showConsoleProgress: false\n"
        "    spark.sql.shuffle.partitions: 2\n    spark.sql.session.timeZone: UTC\n"
        "    spark.sql.execution.arrow.maxRecordsPerBatch: 200\n"
        "    spark.databricks.delta.snapshotPartitions: 2\n"
        f"stream:\n  source: kafka\n  kafka:\n    bootstrap_servers: {bootstrap}\n    topic: {topic}\n"
        f"    starting_offsets: earliest\n    max_offsets_per_trigger: {max_offsets}\n"
        f"  tables_dir: {tables_dir}\n  trigger: availableNow\n  model_dir: model\n"
        "influxdb:\n  enabled: false\n")
    return path


def spark_submit(cluster, dist, entry: str, args: list[str], cwd: Path, log: Path,
                 extra_conf: dict[str, str] | None = None) -> int:
    """Run ``entry`` on the cluster in client mode; the peak RSS (bytes) of its Python driver (the
    process the spark-submit JVM starts), sampled every 0.1 s."""
    import time

    import psutil

    command = [
        str(Path(sys.executable).parent / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
        "--conf", "spark.executor.memory=640m", "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
        "--conf", "spark.driver.memory=1g", "--conf", "spark.ui.enabled=false",
        *[arg for key, value in (extra_conf or {}).items() for arg in ("--conf", f"{key}={value}")],
        "--jars", ",".join(str(p) for p in spark_jars(None)),
        "--py-files", str(dist.py_files), "--archives", f"{dist.bundle}#model",
        str(dist.out_dir / entry), *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the project comes from --py-files
    env.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    peak = 0
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SUBMIT_TIMEOUT_S
        try:
            root = psutil.Process(process.pid)
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    drivers = [p for p in root.children(recursive=True) if p.name().startswith("python")]
                    peak = max([peak, *(p.memory_info().rss for p in drivers if p.is_running())])
                except psutil.Error:
                    pass  # a process of the tree ended between the listing and the reading
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.kill()
        result = process.wait(timeout=30)
    assert result == 0, log.read_text(errors="replace")[-4000:]
    return peak


def executor_dirs(cluster) -> list[Path]:
    return [d for i in range(cluster.workers) for d in cluster.worker_dir(i).glob("app-*/*") if d.is_dir()]


@pytest.fixture(scope="module")
def streamed(spark_cluster, kafka_broker, sample_dir, dist, workspace):
    topic = "flows-cluster"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, N_GOOD, seed=21)
    bad = bad_messages(good[0][1])
    produce(kafka_broker.bootstrap, topic, good, bad)
    conf = cluster_conf(workspace / "cluster.yaml", workspace / "delta", kafka_broker.bootstrap, topic)
    driver_dir = workspace / "stream-driver"
    driver_dir.mkdir()
    # Nothing is unpacked by hand: the driver finds its copy of the --archives bundle in SparkFiles.
    spark_submit(spark_cluster, dist, "score_stream.py", ["--conf", str(conf), "--available-now"],
                 driver_dir, workspace / "stream.log")
    return good, bad, conf


def _table(spark, workspace: Path, name: str):
    return spark.read.format("delta").load(str(workspace / "delta" / name))


def test_cluster_has_two_workers(spark_cluster) -> None:
    state = spark_cluster.state()
    assert state["aliveworkers"] == 2 and state["cores"] == 2


def test_streaming_job_on_the_cluster(spark, spark_cluster, streamed, workspace) -> None:
    good, bad, _ = streamed
    scored = _table(spark, workspace, "flows_scored")
    assert scored.count() == N_GOOD
    assert {r["record_id"] for r in scored.select("record_id").collect()} == {m["record_id"] for _, m in good}
    assert {r["model_version"] for r in scored.select("model_version").distinct().collect()} == {BUNDLE_VERSION}
    assert _table(spark, workspace, "alerts").count() == scored.filter("is_anomaly").count()
    reasons = sorted(r["reason"] for r in _table(spark, workspace, "quarantine").collect())
    assert reasons == sorted(reason for _, reason in bad)
    assert _table(spark, workspace, "traffic_1m").agg(F.sum("records")).first()[0] == N_GOOD
    assert _table(spark, workspace, "batch_log").count() >= 2  # max_offsets_per_trigger: several batches
    # the committed data files were written by the executors' Python workers, never by the driver
    driver_pid = re.search(r"started by driver pid (\d+)", (workspace / "stream.log").read_text()).group(1)
    files = _table(spark, workspace, "flows_scored").inputFiles()
    writers = {re.search(r"part-\d+-[^/]+\.(\d+)-[0-9a-f]+\.snappy\.parquet$", name).group(1) for name in files}
    assert writers and driver_pid not in writers and len(writers) >= 2, (driver_pid, writers)
    # executors ran in the workers' processes, with the shipped code and the unpacked bundle
    shipped = executor_dirs(spark_cluster)
    assert len({d.parent.parent for d in shipped}) == 2, "both workers ran executors"
    assert all((d / "iomt_ad.zip").is_file() and (d / "model" / "manifest.json").is_file() for d in shipped)


def test_rescore_job_on_the_cluster(spark, spark_cluster, streamed, dist, workspace) -> None:
    _, _, conf = streamed
    driver_dir = workspace / "rescore-driver"  # no bundle here: the driver reads the archive Spark unpacked
    driver_dir.mkdir()
    args = ["--conf", str(conf), "--model", "model", "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z"]
    spark_submit(spark_cluster, dist, "rescore_batch.py", args, driver_dir, workspace / "rescore.log")
    rescored = _table(spark, workspace, "flows_rescored")
    assert rescored.count() == N_GOOD
    assert rescored.filter("is_anomaly != stream_is_anomaly").count() == 0  # same bundle, same decisions
    runs = _table(spark, workspace, "scoring_runs").collect()
    assert [(r["status"], r["model_version"], r["rows_written"]) for r in runs] == [("succeeded", BUNDLE_VERSION, N_GOOD)]


def _result_bytes(event_dir: Path) -> int:
    """Bytes the driver received as task results (``Result Size`` of every task in the event log)."""
    import json

    total = 0
    for path in (p for p in event_dir.rglob("*") if p.is_file()):  # Spark 4 rolls logs into a directory
        for line in path.read_text(errors="replace").splitlines():
            if '"SparkListenerTaskEnd"' in line:
                total += json.loads(line).get("Task Metrics", {}).get("Result Size", 0)
    return total


class DriverMemory(NamedTuple):
    python_rss: int  # peak RSS of the Python driver
    jvm_live_heap: int  # the most the driver JVM's heap held just after a collection

    def __str__(self) -> str:
        return f"Python {self.python_rss / 2**20:.0f} MiB + JVM live heap {self.jvm_live_heap / 2**20:.0f} MiB"


def _live_heap_peak(gc_log: Path) -> int:
    """The largest heap left after a collection in a JVM's ``-Xlog:gc`` file: what the JVM holds. Its
    RSS is not: G1 grows and keeps the heap it commits as it sees fit (145 to 385 MiB for one batch
    of either size, measured), whatever is live."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    after = [int(size) * units[unit] for size, unit in re.findall(r"->(\d+)([KMG])\(", gc_log.read_text())]
    assert after, f"no collection in {gc_log}: the GC log's format changed?"
    return max(after)


def _one_batch(cluster, dist, kafka_broker, sample_dir, workspace: Path, records: int) -> tuple[DriverMemory, int]:
    """Stream ``records`` records as one micro-batch on the cluster: (the driver's memory, the
    bytes its tasks sent it)."""
    from jobs.ops.replay import ReplayOptions, iter_messages
    from models.training.datasets import load_flows_pandas

    topic, run = f"flows-driver-{records}", workspace / f"driver-{records}"
    (run / "events").mkdir(parents=True)
    kafka_broker.create_topic(topic, partitions=2)
    flows = load_flows_pandas([sample_dir])
    produce(kafka_broker.bootstrap, topic, list(iter_messages(flows, ReplayOptions(rate=0, limit=records, loop=True))), [])
    conf = cluster_conf(run / "cluster.yaml", run / "delta", kafka_broker.bootstrap, topic, max_offsets=records)
    gc_log = run / "driver-gc.log"
    peak = spark_submit(cluster, dist, "score_stream.py", ["--conf", str(conf), "--available-now"], run,
                        run / "stream.log", {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(run / "events"),
                         "spark.eventLog.compress": "false", "spark.driver.extraJavaOptions": f"-Xlog:gc:file={gc_log}"})
    import deltalake

    log_rows = deltalake.DeltaTable(str(run / "delta" / "batch_log")).to_pyarrow_table().to_pylist()
    assert [(r["batch_id"], r["records"]) for r in log_rows] == [(0, records)]
    return DriverMemory(peak, _live_heap_peak(gc_log)), _result_bytes(run / "events")


def test_the_driver_stays_flat_while_the_batch_grows_tenfold(spark_cluster, kafka_broker, sample_dir, dist,
                                                            workspace) -> None:
    """Records are written where they are scored: a batch ten times larger costs the driver neither
    memory nor received bytes (it gets a few rows per data file, never the records)."""
    small_peak, small_bytes = _one_batch(spark_cluster, dist, kafka_broker, sample_dir, workspace, 4_000)
    large_peak, large_bytes = _one_batch(spark_cluster, dist, kafka_broker, sample_dir, workspace, 40_000)
    figures = (f"driver {small_peak} -> {large_peak}, task results "
               f"{small_bytes / 1024:.0f} -> {large_bytes / 1024:.0f} KiB for 4,000 -> 40,000 records")
    print(figures)  # pytest -s shows the measured figures
    # 36,000 more records are ~30 MB as Arrow and more as Python objects: collected, they would show
    assert large_bytes < 2 * small_bytes + 256 * 1024, figures
    assert small_bytes > 0, "no task results in the event log: its format changed?"
    assert large_peak.python_rss < small_peak.python_rss + 80 * 2**20, figures
    assert large_peak.jvm_live_heap < small_peak.jvm_live_heap + 80 * 2**20, figures
