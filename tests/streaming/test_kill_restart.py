"""Kill test: the job runs as its own spark-submit process with InfluxDB on, is killed with SIGKILL
mid-stream five times (twice between a batch's Delta commits and its batch_log row), restarts from its
checkpoint each time, and in the end every record is in every table and in InfluxDB exactly once."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.session import spark_jars
from jobs.stream.failpoints import BEFORE_BATCH_LOG, PAUSE_ENV
from tests.helpers.influx import aggregate_total, count_points, new_influx_bucket
from tests.helpers.streaming import bad_messages, good_messages, produce, read_table, stream_conf
from tests.services.influxdb_server import TOKEN

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
N_GOOD = 3000


def _spark_submit(conf: Path, log: Path, env: dict[str, str], available_now: bool = False) -> subprocess.Popen:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    jars = ",".join(str(p) for p in spark_jars(None))  # as the README's spark-submit command does
    command = [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--jars", jars,
               str(REPO / "jobs" / "stream" / "score_stream.py"), "--conf", str(conf)]
    if available_now:
        command.append("--available-now")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1",
               PYTHONPATH=str(REPO), **env)
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO, env=env,
                            start_new_session=True)


def _committed_batches(tmp: Path) -> int:
    commits = tmp / "delta" / "_checkpoints" / "score_stream" / "commits"
    return len([p for p in commits.glob("[0-9]*")]) if commits.is_dir() else 0


def _delta_versions(tmp: Path) -> int:
    log_dir = tmp / "delta" / "flows_scored" / "_delta_log"
    return len(list(log_dir.glob("*.json"))) if log_dir.is_dir() else 0


def _kill_after_progress(process: subprocess.Popen, tmp: Path, min_versions: int, timeout_s: float,
                         delay_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _delta_versions(tmp) < min_versions:
        assert process.poll() is None, "the job died on its own"
        assert time.monotonic() < deadline, "no progress before the deadline"
        time.sleep(0.2)
    time.sleep(delay_s)  # land the kill somewhere inside a later batch
    _kill(process)


def _kill_at_pause(process: subprocess.Popen, marker: Path, timeout_s: float) -> None:
    """Kill the job once it has stopped between a batch's Delta commits and its batch_log row."""
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        assert process.poll() is None, "the job died on its own"
        assert time.monotonic() < deadline, "the job never reached the pause point"
        time.sleep(0.2)
    time.sleep(0.5)
    _kill(process)


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_five_kill_minus_nine_lose_and_duplicate_nothing_in_delta_or_influxdb(
        spark, kafka_broker, influxdb, sample_dir, tmp_path) -> None:
    """Five SIGKILLs of the whole job (driver, JVM, Python workers): three at random moments, two
    while the driver stands between a batch's Delta commits and its batch_log row."""
    topic = "flows-kill"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, N_GOOD, seed=7)
    bad = bad_messages(good[0][1])
    produce(kafka_broker.bootstrap, topic, good, bad)
    bucket = new_influx_bucket(influxdb, "flows-kill")
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, trigger="1 second", max_offsets=200,
                       influx_url=influxdb.url, bucket=bucket)
    log = tmp_path / "job.log"
    env = {"IOMT_AD_TEST_INFLUX_TOKEN": TOKEN}
    chance = random.Random(20261202)

    for kill in range(5):
        if kill in (1, 3):
            marker = tmp_path / f"paused-{kill}"
            job = _spark_submit(conf, log, env={**env, PAUSE_ENV: f"{BEFORE_BATCH_LOG}:{marker}"})
            _kill_at_pause(job, marker, timeout_s=300)
        else:
            job = _spark_submit(conf, log, env=env)
            _kill_after_progress(job, tmp_path, min_versions=_delta_versions(tmp_path) + 1, timeout_s=300,
                                 delay_s=chance.uniform(0.2, 3.0))
    assert read_table(spark, tmp_path, "flows_scored").count() < N_GOOD, "the job finished before the fifth kill"
    assert "paused at before_batch_log" in log.read_text()

    final = _spark_submit(conf, log, env=env, available_now=True)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]

    scored = read_table(spark, tmp_path, "flows_scored")
    assert scored.count() == N_GOOD
    assert scored.select("record_id").distinct().count() == N_GOOD
    assert {r["record_id"] for r in scored.select("record_id").collect()} == {m["record_id"] for _, m in good}
    anomalies = scored.filter("is_anomaly").count()
    alerts = read_table(spark, tmp_path, "alerts")
    assert alerts.count() == anomalies
    assert alerts.select("record_id").distinct().count() == alerts.count()
    quarantine = read_table(spark, tmp_path, "quarantine")
    assert quarantine.count() == len(bad)
    assert read_table(spark, tmp_path, "traffic_1m").agg(F.sum("records")).first()[0] == N_GOOD
    batch_ids = [r["batch_id"] for r in read_table(spark, tmp_path, "batch_log").collect()]
    assert len(batch_ids) == len(set(batch_ids))
    # InfluxDB: replayed batches overwrite their points (same series, same times), never add to them
    assert aggregate_total(influxdb, bucket) == N_GOOD
    assert aggregate_total(influxdb, bucket, "anomalies") == anomalies
    assert count_points(influxdb, bucket, "ae_error") == anomalies
