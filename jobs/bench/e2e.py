"""End-to-end measurements: a real Kafka broker -> Spark local[2] -> Delta (+ InfluxDB when built).

- capacity: a backlog is produced first, then the job drains it in micro-batches; the sustained
  rate is the records of every batch after the first (warm-up) over their wall time; the CPU time
  each process (and the broker and InfluxDB) spent over those batches, per record, says where the
  time goes and what rate the machine's cores allow at that cost;
- latency at fixed input rates: after a warm-up (2,000 records, so that the Python workers have
  loaded the models), the replayer sends at R records/s while the job runs with a 0 s trigger; the
  first 10 s of that replay settle the job and only records stamped after them count; a record's
  latency is the commit time of the batch that wrote it (its ``batch_log`` row, written after all
  of the batch's tables) minus the event time the producer stamped;
- baseline: the seed's consumer, i.e. collect a micro-batch to the driver and call Keras
  ``predict`` once per record.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.config import AppConfig, KafkaSourceConfig, SparkConfig, StreamConfig

if TYPE_CHECKING:
    import psutil

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


LOAD_GENERATOR = "replayer"
MEASUREMENT_TOOL = "measurement_tool"  # jstat and jcmd, run by the benchmark itself: never part of the job
MEASUREMENT_TOOLS = frozenset({"jstat", "jcmd"})
# latency climbing by more than 0.1 s per second of input (6 s a minute) means a growing backlog
BACKLOG_SLOPE = 0.1


def process_kind(is_root: bool, name: str, cmdline: str) -> str:
    """Which part of the run a process is: the driver (this process), the Spark JVM, Spark's Python
    workers, the replayer that feeds the job (reported apart), or ``other:<name>``."""
    if is_root:
        return "driver_python"
    if name in MEASUREMENT_TOOLS or "jobs.bench.resource_sampler" in cmdline:
        return MEASUREMENT_TOOL
    if "java" in name:
        return "spark_jvm"
    if "jobs.cli" in cmdline and " replay " in f"{cmdline} ":
        return LOAD_GENERATOR
    if "python" in name or "pyspark" in cmdline:
        return "python_workers"
    return f"other:{name}"


class ResourceSampler:
    """Peak resident memory of this process tree (driver Python, the JVM, Python workers) and CPU,
    sampled by a process of its own (:mod:`jobs.bench.resource_sampler`: in a thread here, its
    reads of the other processes' memory counted as the driver's CPU). ``exclude`` names processes
    that are not IoMT-AD (the test broker, InfluxDB): they and their children are left out. Two
    totals: the sum of RSS (pages shared by Spark's forked Python workers counted once per process)
    and the sum of PSS (each shared page split among its sharers: what the processes hold together)."""

    def __init__(self, interval_s: float = 0.5, exclude: set[int] | None = None) -> None:
        self.interval_s = interval_s
        self.exclude = set(exclude or ())
        self._process: subprocess.Popen | None = None
        self._last: dict[str, Any] | None = None

    def __enter__(self) -> "ResourceSampler":
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jobs.bench.resource_sampler", "--root", str(os.getpid()),
             "--interval", str(self.interval_s), "--exclude", *map(str, sorted(self.exclude))],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the resource sampler did not start")
        return self

    def summary(self) -> dict[str, Any]:
        """The peaks so far (the last ones once the sampler has stopped)."""
        if self._process is not None and self._process.poll() is None:
            import json

            self._process.stdin.write("summary\n")
            self._process.stdin.flush()
            self._last = json.loads(self._process.stdout.readline())
        if self._last is None:
            raise RuntimeError("the resource sampler never ran")
        return self._last

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        try:
            self.summary()
        finally:
            self._process.stdin.close()
            self._process.wait(timeout=30)


def process_kinds(services: dict[str, int]) -> list[tuple["psutil.Process", str, bool]]:
    """This process tree with each process's kind (:func:`process_kind`; a service named in
    ``services``, name -> pid, with its children, is that name) and whether its reaped children
    count with it (Spark's Python daemon reaps the workers it forks; this process's own reaped
    children, the replayers it has waited for, are not part of the job)."""
    import psutil

    root = psutil.Process()
    found: list[tuple[psutil.Process, str, bool]] = []
    seen: set[int] = set()
    for name, pid in services.items():
        try:
            service = psutil.Process(pid)
            members = [service, *service.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in members:
            seen.add(proc.pid)
            found.append((proc, name, True))
    for proc in [root, *root.children(recursive=True)]:
        if proc.pid in seen:
            continue
        try:
            kind = process_kind(proc is root, proc.name(), " ".join(proc.cmdline()))
        except psutil.Error:
            continue
        found.append((proc, kind, proc is not root))
    return found


def cpu_seconds_by_kind(services: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process tree, by kind (:func:`process_kinds`)."""
    import psutil

    totals: dict[str, float] = {}
    for proc, kind, with_reaped in process_kinds(services):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seconds = times.user + times.system
        if with_reaped:
            seconds += times.children_user + times.children_system
        totals[kind] = totals.get(kind, 0.0) + seconds
    return totals


def spark_jvm_pids(services: dict[str, int]) -> list[int]:
    """The Spark JVM(s) among this process's children (services such as the broker left out)."""
    import psutil

    excluded = set(services.values())
    pids = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid not in excluded and process_kind(False, proc.name(), "") == "spark_jvm":
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def jit_seconds(pids: list[int]) -> float | None:
    """Time the JVMs have spent compiling code (HotSpot's counter, read with the JDK's ``jstat
    -compiler``); None when jstat is missing or fails."""
    import shutil

    jstat = shutil.which("jstat")
    if not jstat or not pids:
        return None
    total = 0.0
    for pid in pids:
        try:
            out = subprocess.run([jstat, "-compiler", str(pid)], capture_output=True, text=True, timeout=30).stdout
            header, values = out.strip().splitlines()[:2]
            total += float(values.split()[header.split().index("Time")])
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None
    return total


def cpu_per_record(before: dict[str, float], after: dict[str, float], records: int,
                   cores: int) -> dict[str, Any]:
    """CPU microseconds per record, by process kind, between two :func:`cpu_seconds_by_kind`
    readings, and the throughput the machine's cores would allow at that cost if every core were
    busy all the time (``cpu_bound_rps``): no run can drain faster."""
    used = {kind: max(after.get(kind, 0.0) - before.get(kind, 0.0), 0.0) for kind in after}
    per_record = {kind: round(seconds * 1e6 / records, 1) for kind, seconds in sorted(used.items())
                  if seconds > 0 and kind not in (LOAD_GENERATOR, MEASUREMENT_TOOL)}
    total = sum(per_record.values())
    return {"cpu_us_per_record": {**per_record, "total": round(total, 1)},
            "cpu_bound_rps": round(cores * 1e6 / total, 1) if total else None}


def replay_to_kafka(bootstrap: str, topic: str, rate: float, limit: int, data: Path,
                    wire_format: str = "json") -> subprocess.Popen:
    """The product's replayer in its own process (it must not share the job's cores' Python GIL)."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "--log-level", "WARNING", "replay", "--data", str(data),
         "--bootstrap", bootstrap, "--topic", topic, "--rate", str(rate), "--limit", str(limit),
         "--loop", "--shuffle", "--no-progress", "--wire-format", wire_format],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def bench_config(tables_dir: Path, bootstrap: str, topic: str, bundle: Path, trigger: str,
                 max_offsets: int, influx: Any = None, wire_format: str = "json") -> AppConfig:
    """The streaming job's configuration for one bench run; ``influx`` (a running server with
    ``url``, and optionally ``bucket``, default ``iomt``) or None for a Delta-only run;
    ``wire_format`` the messages' (``json``, the default, or ``avro``: stream.kafka.wire_format)."""
    from jobs.config import InfluxConfig

    influx_config = InfluxConfig(enabled=influx is not None, url=getattr(influx, "url", "http://127.0.0.1:1"),
                                 org="iomt", bucket=getattr(influx, "bucket", "iomt"),
                                 token_env="IOMT_AD_BENCH_INFLUX_TOKEN")
    return AppConfig(
        spark=SparkConfig(master="local[2]"),
        stream=StreamConfig(source="kafka", kafka=KafkaSourceConfig(
            bootstrap_servers=bootstrap, topic=topic, starting_offsets="earliest",
            max_offsets_per_trigger=max_offsets, wire_format=wire_format), tables_dir=tables_dir, trigger=trigger,
            model_dir=bundle, app_id=f"bench-{topic}"),
        influxdb=influx_config)


def _batch_log(spark, config: AppConfig):
    return spark.read.format("delta").load(str(config.stream.tables_dir / "batch_log")).orderBy("batch_id").collect()


def capacity(spark, broker, work: Path, bundle: Path, data: Path, records: int, max_offsets: int,
             influx: Any = None, wire_format: str = "json") -> dict[str, Any]:
    """A backlog of ``records`` in ``wire_format`` produced first, then drained by the job in
    micro-batches of ``max_offsets``: the sustained rate and the CPU per record by process kind."""
    topic = f"capacity-{int(time.time() * 1000)}"
    broker.create_topic(topic, partitions=2)
    producer = replay_to_kafka(broker.bootstrap, topic, 0, records, data, wire_format)
    if producer.wait() != 0:
        raise RuntimeError(producer.stderr.read().decode()[-2000:])
    # a 0 s trigger, stopped once the backlog is in: the driver's threads (the stream execution
    # thread above all) must still be alive when their CPU is read after the last batch
    # (processAllAvailable waits for it in the JVM: no polling adds to the driver's CPU)
    config = bench_config(work / topic, broker.bootstrap, topic, bundle, "0 seconds", max_offsets, influx, wire_format)
    from jobs.stream.score_stream import start_query

    services = {"kafka_broker": broker.process.pid}
    if influx is not None and influx.process is not None:
        services[getattr(influx, "service_name", "influxdb")] = influx.process.pid
    query = start_query(spark, config, available_now=False)
    try:
        # CPU is counted from the end of the first batch (model loading) to the end, as the rate is
        while not query.recentProgress and query.isActive:
            time.sleep(0.05)
        jvms = spark_jvm_pids(services)
        cpu_before, jit_before = cpu_seconds_by_kind(services), jit_seconds(jvms)
        first = jvm_thread_reading(session_jvms(jvms))
        query.processAllAvailable()
        last = jvm_thread_reading(session_jvms(jvms))
        cpu_after, jit_after = cpu_seconds_by_kind(services), jit_seconds(jvms)
    finally:
        query.stop()
    if query.exception() is not None:
        raise RuntimeError(f"the drain failed: {query.exception()}")
    batches = _batch_log(spark, config)
    steady = batches[1:]
    if not steady:
        raise RuntimeError("the backlog fit in one batch: raise records or lower max_offsets")
    seconds = (steady[-1]["logged_at"] - batches[0]["logged_at"]).total_seconds()
    steady_records = sum(b["records"] for b in steady)
    return {"records": sum(b["records"] for b in batches), "batches": len(batches),
            "steady_records": steady_records, "steady_batches": len(steady),
            "max_offsets_per_trigger": max_offsets, "wire_format": wire_format,
            "max_records_per_partition": config.stream.kafka.max_records_per_partition,
            "sustained_rps": round(steady_records / seconds, 1),
            "batch_seconds_median": round(float(np.median([b["seconds"] for b in steady])), 2),
            **cpu_per_record(cpu_before, cpu_after, steady_records, os.cpu_count() or 1),
            "jvm_threads_us_per_record": jvm_threads_per_record([r for r in (first, last) if r is not None], batches),
            # JIT compilation within spark_jvm's CPU: high in a fresh JVM, falling run after run
            "jvm_jit_us_per_record": (round((jit_after - jit_before) * 1e6 / steady_records, 1)
                                      if jit_before is not None and jit_after is not None else None),
            "influx_points_written": sum(b["influx_written"] for b in batches),
            "influx_points_failed": sum(b["influx_failed"] for b in batches), "topic": topic}


def session_jvms(pids: list[int]) -> list[int]:
    """The JVM(s) among ``pids`` that PySpark started for this session (``SparkSubmit ... pyspark-shell``):
    not a standalone master or worker that other tests of the same process started."""
    import psutil

    found = []
    for pid in pids:
        try:
            if "pyspark-shell" in " ".join(psutil.Process(pid).cmdline()):
                found.append(pid)
        except psutil.Error:
            continue
    return found or pids


def jvm_thread_reading(jvms: list[int]) -> tuple[float, dict[str, float]] | None:
    """The wall time and the CPU seconds of the JVM's threads by role (:mod:`jobs.bench.jvm_threads`);
    None unless there is one JVM and jcmd reads it. Read while the query runs: the thread that
    plans and commits its batches ends with it, taking its CPU with it."""
    from jobs.bench.jvm_threads import cpu_by_role

    reading = cpu_by_role(jvms[0]) if len(jvms) == 1 else None
    return None if reading is None else (time.time(), reading)


def jvm_thread_samples_span(samples: list[tuple[float, dict[str, float]]], batches: list) -> tuple[int, dict] | None:
    """The records committed between the first and the last sample (by ``batch_log.logged_at``)
    and the threads' CPU seconds by role over that span; None with fewer than two samples or no
    batch committed between them."""
    if len(samples) < 2:
        return None
    (start, first), (end, last) = samples[0], samples[-1]
    records = sum(b["records"] for b in batches if start < b["logged_at"].timestamp() <= end)
    if records == 0:
        return None
    return records, {role: max(last[role] - first.get(role, 0.0), 0.0) for role in last}


def jvm_threads_per_record(samples: list[tuple[float, dict[str, float]]], batches: list) -> dict[str, float] | None:
    """The JVM's CPU per record by role, microseconds: ``driver`` (the threads that plan, schedule
    and commit each batch: in local mode the driver's share of the one JVM), ``executor`` (task
    threads; a floor, as idle task threads end and take their CPU along) and ``jvm_runtime`` (GC
    and JIT, both roles')."""
    span = jvm_thread_samples_span(samples, batches)
    if span is None:
        return None
    records, used = span
    return {role: round(seconds * 1e6 / records, 2) for role, seconds in sorted(used.items())}


def _processed(query) -> int:
    """Records the query has processed, from its own progress (not a Delta read: polling must not
    add Spark jobs to the run)."""
    return sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)


def _wait_processed(query, total: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    done = _processed(query)
    while done < total and time.monotonic() < deadline:
        time.sleep(0.5)
        done = _processed(query)
    return done


def latency(spark, broker, work: Path, bundle: Path, data: Path, rate: int, seconds: float,
            influx: Any = None, warmup_records: int = 2000, settle_s: float = 10.0) -> dict[str, Any]:
    """Event-to-Delta latency at a steady input rate. The job is warmed up first: the Python
    workers load the models on their first batch (~5-10 s here), so ``warmup_records`` are sent and
    processed before the replay at ``rate`` starts (that time is reported as ``warmup_s``). The
    replay then runs ``settle_s`` + ``seconds``; only records stamped in the last ``seconds`` count,
    so the figures are the steady state, not the catch-up after the warm-up."""
    from pyspark.sql import functions as F

    from jobs.stream.score_stream import start_query

    topic = f"latency-{rate}-{int(time.time())}"
    broker.create_topic(topic, partitions=2)
    config = bench_config(work / topic, broker.bootstrap, topic, bundle, "0 seconds", max(rate * 5, 1000), influx)
    query = start_query(spark, config)
    started = time.monotonic()
    warmup = replay_to_kafka(broker.bootstrap, topic, 0, warmup_records, data)
    if warmup.wait() != 0:
        query.stop()
        raise RuntimeError(warmup.stderr.read().decode()[-2000:])
    if _wait_processed(query, warmup_records, 300.0) < warmup_records:
        query.stop()
        raise RuntimeError("the warm-up records were not processed within 300 s")
    warmup_s = time.monotonic() - started
    total = int(rate * (settle_s + seconds))
    measured_from = time.time() + settle_s
    producer = replay_to_kafka(broker.bootstrap, topic, rate, total, data)
    if producer.wait() != 0:
        query.stop()
        raise RuntimeError(producer.stderr.read().decode()[-2000:])
    done = _wait_processed(query, warmup_records + total, max(120.0, seconds * 2)) - warmup_records
    query.processAllAvailable()
    query.stop()
    tables = config.stream.tables_dir
    flows = (spark.read.format("delta").load(str(tables / "flows_scored")).select("batch_id", "event_time")
             .filter(F.col("event_time").cast("double") >= measured_from))
    commits = spark.read.format("delta").load(str(tables / "batch_log")).select("batch_id", "logged_at")
    lat = (flows.join(commits, "batch_id")
           .select(((F.col("logged_at").cast("double") - F.col("event_time").cast("double")) * 1000).alias("ms"),
                   F.col("event_time").cast("double").alias("t"))
           .toPandas().sort_values("t"))
    ms = lat["ms"].to_numpy()
    # the job keeps up when latency stays flat over the window; a backlog makes it climb with time
    slope = float(np.polyfit(lat["t"].to_numpy() - lat["t"].min(), ms / 1000.0, 1)[0]) if len(ms) > 1 else 0.0
    return {"rate": rate, "sent": total, "processed": int(done), "measured": len(ms), "seconds": seconds,
            "warmup_records": warmup_records, "warmup_s": round(warmup_s, 1), "settle_s": settle_s,
            "p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
            "latency_slope_s_per_s": round(slope, 3), "backlog_growing": bool(slope > BACKLOG_SLOPE)}


def baseline(spark, broker, capacity_topic: str, bundle_dir: Path, records: int) -> dict[str, Any]:
    """The seed's consumer: a micro-batch collected to the driver, Keras ``predict`` once per record."""
    from jobs.stream.parse import kafka_to_raw, parse_flows
    from models.bundle import AE_FILE, load_bundle
    from models.lstm_ae import LstmAutoencoder, config_from_dict
    from schemas.flow_record import FEATURE_COLUMNS, FEATURES

    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", broker.bootstrap)
           .option("subscribe", capacity_topic).option("startingOffsets", "earliest").load().limit(records))
    bundle = load_bundle(bundle_dir)
    model = LstmAutoencoder.load(Path(bundle_dir) / AE_FILE,  # the Keras model, as the seed served it
                                 config_from_dict(bundle.manifest["lstm_ae"]["config"])).model
    started = time.perf_counter()
    batch = parse_flows(kafka_to_raw(raw)).toPandas()  # collect the micro-batch to the driver
    features = batch[list(FEATURE_COLUMNS)].set_axis(list(FEATURES), axis=1)
    for index in range(len(features)):
        x = bundle.preprocessor.transform(features.iloc[[index]])
        recon = model.predict(x.reshape(1, 1, -1), verbose=0)
        float(((recon.reshape(1, -1) - x) ** 2).mean())
    elapsed = time.perf_counter() - started
    return {"records": len(features), "seconds": round(elapsed, 2), "rps": round(len(features) / elapsed, 1)}

