"""Kill test: the job runs as its own spark-submit process, is killed with SIGKILL mid-stream twice,
restarts from its checkpoint each time, and in the end every record is in Delta exactly once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.session import spark_jars
from tests.helpers.streaming import bad_messages, good_messages, produce, read_table, stream_conf

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
N_GOOD = 2000


def _spark_submit(conf: Path, log: Path, available_now: bool = False) -> subprocess.Popen:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    jars = ",".join(str(p) for p in spark_jars(None))  # as the README's spark-submit command does
    command = [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--jars", jars,
               str(REPO / "jobs" / "stream" / "score_stream.py"), "--conf", str(conf)]
    if available_now:
        command.append("--available-now")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1",
               PYTHONPATH=str(REPO))
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO, env=env,
                            start_new_session=True)


def _committed_batches(tmp: Path) -> int:
    commits = tmp / "delta" / "_checkpoints" / "score_stream" / "commits"
    return len([p for p in commits.glob("[0-9]*")]) if commits.is_dir() else 0


def _delta_versions(tmp: Path) -> int:
    log_dir = tmp / "delta" / "flows_scored" / "_delta_log"
    return len(list(log_dir.glob("*.json"))) if log_dir.is_dir() else 0


def _kill_after_progress(process: subprocess.Popen, tmp: Path, min_versions: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _delta_versions(tmp) < min_versions:
        assert process.poll() is None, "the job died on its own"
        assert time.monotonic() < deadline, "no progress before the deadline"
        time.sleep(0.5)
    time.sleep(1.5)  # land the kill somewhere inside a later batch
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_kill_minus_nine_twice_loses_and_duplicates_nothing(spark, kafka_broker, sample_dir, tmp_path) -> None:
    topic = "flows-kill"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, N_GOOD, seed=7)
    bad = bad_messages(good[0][1])
    produce(kafka_broker.bootstrap, topic, good, bad)
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, trigger="1 second", max_offsets=200)
    log = tmp_path / "job.log"

    _kill_after_progress(_spark_submit(conf, log), tmp_path, min_versions=1, timeout_s=300)
    first_kill = _delta_versions(tmp_path)
    _kill_after_progress(_spark_submit(conf, log), tmp_path, min_versions=first_kill + 2, timeout_s=300)
    assert _delta_versions(tmp_path) < N_GOOD // 200, "the job finished before the second kill"

    final = _spark_submit(conf, log, available_now=True)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]

    scored = read_table(spark, tmp_path, "flows_scored")
    assert scored.count() == N_GOOD
    assert scored.select("record_id").distinct().count() == N_GOOD
    assert {r["record_id"] for r in scored.select("record_id").collect()} == {m["record_id"] for _, m in good}
    alerts = read_table(spark, tmp_path, "alerts")
    assert alerts.count() == scored.filter("is_anomaly").count()
    assert alerts.select("record_id").distinct().count() == alerts.count()
    quarantine = read_table(spark, tmp_path, "quarantine")
    assert quarantine.count() == len(bad)
    assert read_table(spark, tmp_path, "traffic_1m").agg(F.sum("records")).first()[0] == N_GOOD
    batch_ids = [r["batch_id"] for r in read_table(spark, tmp_path, "batch_log").collect()]
    assert len(batch_ids) == len(set(batch_ids))
