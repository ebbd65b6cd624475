"""Where the streaming driver's time goes in each micro-batch, measured inside a real local run
(Kafka broker on loopback -> Spark ``local[2]`` -> the job's foreachBatch sink -> Delta).

``python -m jobs.bench.driver_profile [--records N] [--batch N] [--serial-commits]`` produces a
backlog, drains it (a 0 s trigger) and wraps each step of :class:`jobs.stream.sink.ForeachBatchSink`
with a timer that reads this process's CPU time (``time.process_time``: every thread of the driver's
Python, delta-rs's Rust threads included) and the wall clock. It prints, per step, CPU microseconds
per batch and per record, over the batches after the first (the first loads the models), beside
the whole driver process's CPU over the same batches (what ``e2e.driver_us_per_record`` measures)
and the Spark jobs each micro-batch ran. ``--serial-commits`` commits the tables one after the
other, so that each table's commit is timed on its own (the job commits them side by side).

A profiling tool: it needs the test services (``tests.services``) and the sample data beside the
checkout; its figures are for this machine and go to the console, not into a report.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from jobs.bench import jvm_threads
from jobs.bench.e2e import REPO, bench_config, cpu_seconds_by_kind, replay_to_kafka, spark_jvm_pids

log = logging.getLogger(__name__)


class StepTimer:
    """CPU (this process, all threads) and wall seconds per named step, per batch."""

    def __init__(self) -> None:
        self.batches: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
        self.current = threading.local()
        self._lock = threading.Lock()

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    step = self.batches[getattr(self.current, "batch", -1)][name]
                    step[0] += time.process_time() - cpu
                    step[1] += time.perf_counter() - wall
        return timed


def instrument(sink, timer: StepTimer, serial_commits: bool) -> None:
    """Wrap the sink's steps (instance attributes shadow the methods; the sink's code is unchanged)."""
    import pyspark.sql

    from jobs.stream import sink as sink_module

    delta = sink.delta
    for name in ("committed", "commit_files", "merge_devices", "append", "last_batch", "rows"):
        setattr(delta, name, timer.wrap(f"delta.{name}", getattr(delta, name)))
    for name in ("_commit", "_log_batch", "_influx_token", "query_id"):
        setattr(sink, name, timer.wrap(f"sink.{name}", getattr(sink, name)))
    if serial_commits:
        def serial(summary, batch_id):  # the same work as _commit, one table after the other
            import pyarrow as pa

            from jobs.stream import table_rows
            from jobs.stream.executor import WRITTEN_TABLES, from_text
            from schemas.tables import DEVICES

            devices = timer.wrap("devices.combine", lambda: (
                table_rows.combine_devices(pa.concat_tables([from_text(t) for t in summary.devices]))
                if summary.devices else table_rows.empty(DEVICES)))()
            for name in WRITTEN_TABLES:
                timer.wrap(f"commit.{name}", delta.commit_files)(name, summary.files.get(name, []), batch_id)
            timer.wrap("commit.devices", delta.merge_devices)(DEVICES, devices, batch_id)
        sink._commit = timer.wrap("sink._commit", serial)
    original_of = sink_module.BatchReports.of.__func__
    sink_module.BatchReports.of = classmethod(timer.wrap("reports.of", original_of))
    original_collect = pyspark.sql.DataFrame.collect
    pyspark.sql.DataFrame.collect = timer.wrap("spark.collect (executors' job)", original_collect)


def timed_sink(config, timer: StepTimer, serial_commits: bool):
    """The job's sink, its steps timed (special methods are looked up on the type: a subclass)."""
    from jobs.stream.sink import ForeachBatchSink

    class TimedSink(ForeachBatchSink):
        def __call__(self, batch, batch_id: int) -> None:
            timer.current.batch = batch_id
            timer.wrap("sink.__call__ (whole batch)", super().__call__)(batch, batch_id)

    sink = TimedSink(config)
    instrument(sink, timer, serial_commits)
    return sink


def profile(records: int, batch: int, serial_commits: bool, data: Path, bundle: Path, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))  # the test services live beside the tests
    from jobs.config import AppConfig, SparkConfig
    from jobs.session import build_spark
    from jobs.stream import score_stream
    from tests.services.kafka_broker import KafkaBroker

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    timer = StepTimer()
    with KafkaBroker(work / "kafka") as broker:
        topic = f"driver-profile-{int(time.time())}"
        broker.create_topic(topic, partitions=2)
        producer = replay_to_kafka(broker.bootstrap, topic, 0, records, data)
        if producer.wait() != 0:
            raise RuntimeError(producer.stderr.read().decode()[-2000:])
        spark = build_spark(AppConfig(spark=SparkConfig(master="local[2]", conf={
            "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "2", "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "10000", "spark.driver.memory": "1g"})),
            "iomt-ad-driver-profile")
        spark.sparkContext.setLogLevel("WARN")
        config = bench_config(work / topic, broker.bootstrap, topic, bundle, "0 seconds", batch)
        from jobs.stream import sink as sink_module

        sink_module.make_foreach_batch = lambda config_: timed_sink(config_, timer, serial_commits)
        query = score_stream.start_query(spark, config, available_now=False)
        while not query.recentProgress and query.isActive:
            time.sleep(0.05)
        services = {"kafka_broker": broker.process.pid}
        jvm = spark_jvm_pids(services)[0]
        before, jvm_before = cpu_seconds_by_kind(services), jvm_threads.cpu_by_role(jvm)
        # drained with a 0 s trigger, not availableNow: the driver's threads (the stream execution
        # thread above all) must still be alive when their CPU is read
        query.processAllAvailable()
        after, jvm_after = cpu_seconds_by_kind(services), jvm_threads.cpu_by_role(jvm)
        progress = query.recentProgress
        query.stop()
        tracker = spark.sparkContext.statusTracker()
        jobs = tracker.getJobIdsForGroup(str(query.runId)) or tracker.getJobIdsForGroup(None)
        steady = [p for p in progress[1:] if p["numInputRows"]]
        steady_records = sum(int(p["numInputRows"]) for p in steady)
        steady_ids = {int(p["batchId"]) for p in steady}
        steps: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for batch_id, by_step in timer.batches.items():
            if batch_id in steady_ids:
                for name, (cpu, wall) in by_step.items():
                    steps[name][0] += cpu
                    steps[name][1] += wall
        n = max(len(steady_ids), 1)
        spark.stop()
    driver = after.get("driver_python", 0.0) - before.get("driver_python", 0.0)
    roles = jvm_threads.used_between(jvm_before, jvm_after) or {}
    return {
        "records": records, "batch": batch, "steady_batches": len(steady_ids), "steady_records": steady_records,
        "serial_commits": serial_commits,
        "driver_python_us_per_record": round(driver * 1e6 / max(steady_records, 1), 2),
        "driver_python_ms_per_batch": round(driver * 1e3 / n, 1),
        "spark_jvm_us_per_record_by_thread_role": {role: round(seconds * 1e6 / max(steady_records, 1), 2)
                                                   for role, seconds in roles.items()},
        "spark_jvm_driver_threads_ms_per_batch": round(roles.get(jvm_threads.DRIVER, 0.0) * 1e3 / n, 1),
        "query_planning_ms_by_batch": [p["durationMs"].get("queryPlanning") for p in progress],
        "spark_jobs_per_batch_all_batches": round(len(jobs) / max(len(progress), 1), 2),
        "steps_ms_per_batch": {name: {"cpu": round(cpu * 1e3 / n, 1), "wall": round(wall * 1e3 / n, 1),
                                      "cpu_us_per_record": round(cpu * 1e6 / max(steady_records, 1), 2)}
                               for name, (cpu, wall) in sorted(steps.items(), key=lambda kv: -kv[1][0])},
        "durations_ms_per_batch": {key: round(sum(p["durationMs"].get(key, 0) for p in steady) / n, 1)
                                   for key in ("latestOffset", "queryPlanning", "addBatch", "walCommit",
                                               "commitOffsets", "triggerExecution")},
    }


def main(argv: list[str] | None = None) -> int:
    from models import DEFAULT_BUNDLE_PATH

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=160_000)
    parser.add_argument("--batch", type=int, default=40_000, help="records per micro-batch (maxOffsetsPerTrigger)")
    parser.add_argument("--serial-commits", action="store_true", help="commit the tables one after the other")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "ciciomt2024-sample")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="iomt-driver-profile-") as work:
        result = profile(args.records, args.batch, args.serial_commits, args.data, args.model, Path(work))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
