"""``iomt-ad bench [--quick]``: measure scoring throughput, end-to-end throughput and latency, the
per-record baseline and peak memory; print the figures and write ``bench.json`` and ``BENCHMARKS.md``.

Figures are as measured on this machine; repeated runs are reported by their median.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models import DEFAULT_BUNDLE_PATH

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"ensemble_1core_4096_rps": 100_000, "e2e_sustained_rps": 20_000, "p95_ms_at_1000": 2000,
           "baseline_ratio": 200, "peak_rss_mb": 3072, "sensor_packets_per_s_1core": 200_000,
           "driver_us_per_record": 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a reduced run of every part (under 10 minutes)")
    parser.add_argument("--runs", type=int, default=None, help="repeats per figure (default 3, quick 1)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE_PATH)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "ciciomt2024-sample")
    parser.add_argument("--out-dir", type=Path, default=REPO, help="where bench.json and BENCHMARKS.md go")
    parser.add_argument("--skip-e2e", action="store_true", help="only the scoring core (no Spark, no Kafka)")


def machine() -> dict[str, Any]:
    import psutil

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version  # versions without importing TensorFlow into this process

    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version(), "spark": version("pyspark"),
            "tensorflow": version("tensorflow-cpu"), "scikit-learn": version("scikit-learn"),
            "ai-edge-litert": version("ai-edge-litert"), "onnxruntime": version("onnxruntime")}


def _median_dicts(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {model: {size: round(statistics.median(r[model][size] for r in runs), 1) for size in runs[0][model]}
            for model in runs[0]}


def scoring_part(args: argparse.Namespace, runs: int) -> dict[str, Any]:
    from jobs.bench.scoring import measure

    seconds = 0.5 if args.quick else 2.0
    by_threads: dict[str, Any] = {}
    for threads in (1, 2):
        results = [measure(args.model, args.data, threads, min_seconds=seconds, repeats=1) for _ in range(runs)]
        by_threads[f"{threads}core"] = _median_dicts(results)
    return {model: {cores: by_threads[cores][model] for cores in by_threads} for model in by_threads["1core"]}


def sensor_part(args: argparse.Namespace) -> dict[str, Any] | None:
    """The sensor on one core over a looped real capture (jobs.bench.sensor); records into a real
    broker unless --skip-e2e. None when the shared captures are not beside the checkout."""
    from jobs.bench.sensor import DEFAULT_CAPTURE, sensor_part as measure_sensor

    if not DEFAULT_CAPTURE.is_file():
        log.warning("no %s: the sensor is not benchmarked", DEFAULT_CAPTURE)
        return None
    packets = 300_000 if args.quick else 3_000_000
    work = Path(tempfile.mkdtemp(prefix="iomt-bench-sensor-"))
    try:
        if args.skip_e2e:
            return measure_sensor(work, packets)
        sys.path.insert(0, str(REPO))  # the test services live beside the tests
        from tests.services.kafka_broker import KafkaBroker

        broker = KafkaBroker()
        broker.start()
        try:
            return measure_sensor(work, packets, bootstrap=broker.bootstrap)
        finally:
            broker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sensor_lines(sensor: dict[str, Any] | None) -> list[str]:
    if not sensor:
        return []
    lines = ["", f"## Sensor (one core; `{sensor['capture']}`, an Ethernet capture of MQTTset, looped to "
             f"{sensor['packets']:,} packets, each loop past the idle expiry)", "",
             "| run | packets/s | records/s | windows | devices open at most | peak RSS MB |", "|---|---|---|---|---|---|"]
    names = {"windows": "capture -> closed windows", "records": "-> JSON records",
             "many_devices_records": "-> JSON records, new devices every loop", "kafka": "-> records into Kafka"}
    for key, name in names.items():
        if key in sensor:
            r = sensor[key]
            lines.append(f"| {name} | {r['packets_per_s']:,} | {r['records_per_s']:,} | {r['windows']:,} | "
                         f"{r['max_open_devices']} | {r['peak_rss_mb']:,.0f} |")
    return lines


def e2e_part(args: argparse.Namespace, runs: int) -> dict[str, Any]:
    """The end-to-end figures; the runs' Delta tables and Kafka logs (gigabytes) are removed after."""
    work = Path(tempfile.mkdtemp(prefix="iomt-bench-"))
    try:
        return _e2e_runs(args, runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _e2e_runs(args: argparse.Namespace, runs: int, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))  # the test services (broker, influxd) live beside the tests
    from jobs.bench.e2e import ResourceSampler, baseline, capacity, latency
    from jobs.bench.influx_stand_in import DiscardingInfluxSink
    from jobs.config import AppConfig, SparkConfig
    from jobs.session import build_spark
    from tests.services.kafka_broker import KafkaBroker
    from tests.services.ports import free_port

    influx = None
    try:
        from tests.services.influxdb_server import TOKEN, InfluxServer

        influx = InfluxServer().start()
        os.environ["IOMT_AD_BENCH_INFLUX_TOKEN"] = TOKEN
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        log.warning("InfluxDB not available, end to end runs without it: %s", exc)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark_conf = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                  "spark.sql.shuffle.partitions": "2", "spark.sql.session.timeZone": "UTC",
                  "spark.sql.execution.arrow.maxRecordsPerBatch": "10000", "spark.driver.memory": "1g"}
    max_offsets = 40_000 if args.quick else 80_000  # records per micro-batch when draining a backlog
    # a little under whole batches: Kafka's split of a trigger over the partitions rounds, and a last
    # batch of a few leftover records would count a whole batch's fixed cost against the drain
    records = (3 if args.quick else 5) * max_offsets - max_offsets // 100
    seconds = 15.0 if args.quick else 60.0
    result: dict[str, Any] = {"influxdb": influx is not None, "spark_conf": spark_conf}
    services = {influx.process.pid} if influx is not None and influx.process is not None else set()
    # InfluxDB's server work taken off these two cores: the same points, sent over HTTP to a
    # stand-in that counts and discards them (what the job needs when InfluxDB has its own host)
    with KafkaBroker(work / "kafka") as broker, DiscardingInfluxSink(free_port()) as sink, \
            ResourceSampler(exclude=services | {broker.process.pid, sink.process.pid}) as sampler:
        spark = build_spark(AppConfig(spark=SparkConfig(master="local[2]", conf=spark_conf)), "iomt-ad-bench")
        spark.sparkContext.setLogLevel("WARN")
        # A fresh JVM spends its first drain mostly compiling Spark's code (JIT: 60+ us a record,
        # under 20 once warm), which a long-running job pays once: one drain first, not counted in
        # the sustained figure, reported on its own as the cold rate.
        drain = functools.partial(capacity, spark, broker, work, args.model, args.data, records=records,
                                  max_offsets=max_offsets)
        # The same drain in the batches a 10 s trigger (conf/cluster.yaml's) takes at the 20,000
        # records/s the target names: a job that keeps up at that rate never sees larger ones
        trigger_batch = 100_000 if args.quick else 200_000
        result["capacity_warmup"] = drain(influx=influx)
        cap_runs, delta_only_runs, elsewhere_runs, trigger_runs, avro_runs = [], [], [], [], []
        for _ in range(runs):
            trigger_runs.append(drain(influx=influx, records=4 * trigger_batch - trigger_batch // 100,
                                      max_offsets=trigger_batch))
            cap_runs.append(drain(influx=influx))
            # the job's binary wire format (stream.kafka.wire_format: avro), InfluxDB as in the run
            # before it: the JVM's JSON parse is its largest cost (docs/wire-format.md)
            avro_runs.append(drain(influx=influx, wire_format="avro"))
            if influx is not None:  # the same drain with InfluxDB off (Delta only), alternated with it
                delta_only_runs.append(drain(influx=None))
            before = sink.points()
            elsewhere_runs.append(drain(influx=sink))
            elsewhere_runs[-1]["points_received"] = sink.points() - before
        result["capacity_runs"] = cap_runs
        result["max_sustained_rps"] = round(statistics.median(r["sustained_rps"] for r in cap_runs), 1)
        result["capacity_runs_avro"] = avro_runs
        result["sustained_rps_avro"] = round(statistics.median(r["sustained_rps"] for r in avro_runs), 1)
        result["capacity_runs_trigger_batches"] = trigger_runs
        result["sustained_rps_trigger_batches"] = round(statistics.median(r["sustained_rps"] for r in trigger_runs), 1)
        # the driver's own CPU per record while a backlog drains: its Python (the sink, the commits)
        # plus its JVM threads (planning, scheduling, committing; told apart from the executors'
        # task threads in the one local-mode JVM by jobs.bench.jvm_threads)
        result["driver_us_per_record_at_capacity_batches"] = _median_known(map(driver_cpu_us, cap_runs), 2)
        result["driver_python_us_per_record"] = round(statistics.median(
            r["cpu_us_per_record"].get("driver_python", 0.0) for r in cap_runs), 2)
        # The driver's cost is per micro-batch, not per record. Its ceiling of 1,000,000 records/s
        # (the target) means a batch of 1,000,000 records a second with a 1-second trigger: the same
        # drain in batches of that size (each task still reading at most
        # stream.kafka.max_records_per_partition records), the first (model loading) not counted.
        # A little less than two batches' worth: Kafka's split of a trigger over the partitions
        # rounds, and a last batch of a few leftover records would cost a whole batch's driver work
        driver_batch = 200_000 if args.quick else 1_000_000
        driver_runs = [drain(influx=influx, records=2 * driver_batch - driver_batch // 100, max_offsets=driver_batch)
                       for _ in range(runs)]
        result["driver_drain_runs"] = driver_runs
        result["driver_us_per_record"] = _median_known(map(driver_cpu_us, driver_runs), 2)
        per_batch = {str(size): _median_known(map(driver_ms_per_batch, size_runs), 1)
                     for size, size_runs in ((max_offsets, cap_runs), (driver_batch, driver_runs))}
        result["driver_ms_per_batch"] = {size: ms for size, ms in per_batch.items() if ms is not None}
        if delta_only_runs:
            result["capacity_runs_without_influx"] = delta_only_runs
            result["max_sustained_rps_without_influx"] = round(
                statistics.median(r["sustained_rps"] for r in delta_only_runs), 1)
        result["capacity_runs_influx_elsewhere"] = elsewhere_runs
        result["max_sustained_rps_influx_elsewhere"] = round(
            statistics.median(r["sustained_rps"] for r in elsewhere_runs), 1)
        result["latency_ms"] = {}
        result["latency_runs"] = {}
        for rate in (100, 1000, 10000):
            lat_runs = [latency(spark, broker, work, args.model, args.data, rate, seconds, influx) for _ in range(runs)]
            result["latency_runs"][str(rate)] = lat_runs
            result["latency_ms"][str(rate)] = {q: round(statistics.median(r[q] for r in lat_runs), 1)
                                               for q in ("p50", "p95", "p99")}
        resources = sampler.summary()  # the product's processes only: the baseline below is not it
        base = baseline(spark, broker, cap_runs[0]["topic"], args.model, 300 if args.quick else 1000)
        spark.stop()
    if influx is not None:
        influx.stop()
    result["baseline"] = {**base, "ratio": round(result["max_sustained_rps"] / base["rps"], 1)}
    result["resources"] = resources
    return result


def driver_cpu_us(run: dict[str, Any]) -> float | None:
    """A drain's driver CPU per record: its Python process and its JVM threads; None when the JVM's
    threads could not be read (then the driver's cost is not known, and no figure is better than
    half of one)."""
    threads = run.get("jvm_threads_us_per_record")
    if threads is None or "cpu_us_per_record" not in run:
        return None
    return run["cpu_us_per_record"].get("driver_python", 0.0) + threads["driver"]


def _median_known(values: Iterable[float | None], digits: int) -> float | None:
    """The median of the values that are known (not None), rounded; None when none is."""
    known = [v for v in values if v is not None]
    return round(statistics.median(known), digits) if known else None


def driver_ms_per_batch(run: dict[str, Any]) -> float | None:
    """A drain's driver CPU per micro-batch (milliseconds), from its CPU per record."""
    us = driver_cpu_us(run)
    if us is None or not run.get("steady_batches"):
        return None
    return us * run["steady_records"] / run["steady_batches"] / 1000.0


def cpu_lines(capacity_runs: list[dict[str, Any]], lead: str = "- CPU per record") -> list[str]:
    """The CPU cost of a record while a backlog drains, by process (median over runs); ``lead``
    opens the line (a nested item says which drains it is about)."""
    runs = [r for r in capacity_runs if "cpu_us_per_record" in r]
    if not runs:
        return []
    kinds = sorted({k for r in runs for k in r["cpu_us_per_record"]} - {"total"})
    cost = {k: statistics.median(r["cpu_us_per_record"].get(k, 0.0) for r in runs) for k in (*kinds, "total")}
    kinds = [k for k in kinds if cost[k] >= 0.5]  # an idle process (InfluxDB while it is off) is left out
    bound = statistics.median(r["cpu_bound_rps"] for r in runs)
    jit = [r["jvm_jit_us_per_record"] for r in runs if r.get("jvm_jit_us_per_record") is not None]
    jit_text = (f" JIT compilation took {', '.join(f'{j:,.0f}' for j in jit)} us a record of spark_jvm's CPU, run "
                "by run (a fresh JVM compiles Spark's code as it first runs; the cost falls as the job keeps running)."
                if jit else "")
    return [f"{lead} while draining (microseconds, all cores; median of runs): "
            + ", ".join(f"{k} {cost[k]:,.0f}" for k in kinds) + f"; **total {cost['total']:,.0f}**. "
            f"At that cost the machine's cores, all busy all the time, would allow at most "
            f"**{bound:,.0f} records/s**." + jit_text]


def driver_lines(e2e: dict[str, Any]) -> list[str]:
    """The driver's CPU: per record in the large batches of the driver drains (the figure against
    the target) and in the capacity drains' batches, and per micro-batch."""
    if e2e.get("driver_us_per_record") is None:
        return []
    runs = e2e.get("driver_drain_runs") or []
    batch = runs[0]["max_offsets_per_trigger"] if runs else None
    per_task = runs[0].get("max_records_per_partition") if runs else None
    rate = statistics.median(r["sustained_rps"] for r in runs) if runs else None
    at_capacity = e2e.get("driver_us_per_record_at_capacity_batches")
    per_batch = e2e.get("driver_ms_per_batch", {})
    return [f"- the driver's own CPU per record: **{e2e['driver_us_per_record']} us** (`e2e.driver_us_per_record`) "
            f"while a backlog drains in micro-batches of {batch:,} records (the batches of a 1-second trigger at the "
            f"1,000,000 records/s the target names as the driver's ceiling; each task reads at most {per_task:,} records, "
            f"`stream.kafka.max_records_per_partition`; {rate:,.0f} records/s on these cores, the first batch not counted)"
            + (f"; {at_capacity} us in the {e2e['capacity_runs'][0]['max_offsets_per_trigger']:,}-record batches above"
               if at_capacity is not None else "") + ". Its cost is per micro-batch, not per record: "
            + ", ".join(f"{float(ms):,.0f} ms of CPU a batch of {int(size):,}" for size, ms in per_batch.items())
            + ". The driver is its Python process (the sink, the commits: "
            f"{e2e.get('driver_python_us_per_record')} us a record in the smaller batches) plus its JVM threads "
            "(planning, scheduling and committing each batch, told apart from the executors' task threads in the one "
            "local-mode JVM by their names, read with `jcmd Thread.print` while the drain runs)"]


def avro_lines(e2e: dict[str, Any]) -> list[str]:
    """The same drain with the messages in Avro (the job's binary wire format), alternated with the
    JSON runs above."""
    runs = e2e.get("capacity_runs_avro")
    if not runs:
        return []
    with_influx = "with InfluxDB on the same cores" if e2e["influxdb"] else "without InfluxDB"
    return [f"- the same drain with the messages in Avro (`stream.kafka.wire_format: avro`, the Confluent wire "
            f"format; JSON is the default), alternated with the runs above: **{e2e['sustained_rps_avro']:,.0f} "
            f"records/s** {with_influx} (median batch "
            f"{statistics.median(r['batch_seconds_median'] for r in runs):.1f} s)",
            *cpu_lines(runs, lead="  - in Avro, CPU per record")]


def trigger_batch_lines(e2e: dict[str, Any]) -> list[str]:
    """The same drain, with InfluxDB on the same cores, in the batches of a 10 s trigger at 20,000
    records/s (run alternately with the capacity drains above)."""
    runs = e2e.get("capacity_runs_trigger_batches")
    if not runs:
        return []
    batch = runs[0]["max_offsets_per_trigger"]
    return [f"- the same drain in micro-batches of {batch:,} records, the batches a 10 s trigger "
            f"(`conf/cluster.yaml`'s) takes at 20,000 records/s, alternated with the runs above: "
            f"**{e2e['sustained_rps_trigger_batches']:,.0f} records/s** with InfluxDB on the same cores "
            f"(median batch {statistics.median(r['batch_seconds_median'] for r in runs):.1f} s); each batch "
            "costs the same fixed work (planning, commits, the devices and incidents MERGEs) whatever its size",
            *cpu_lines(runs, lead=f"  - in batches of {batch:,}, CPU per record")]


def cold_and_delta_only_lines(e2e: dict[str, Any]) -> list[str]:
    """The drain before the measured runs (a fresh JVM), and the same drain with InfluxDB off and
    with InfluxDB elsewhere (the stand-in sink)."""
    lines = []
    cold = e2e.get("capacity_warmup")
    if cold:
        jit = cold.get("jvm_jit_us_per_record")
        lines.append(f"- the first drain of the fresh JVM, run before the measured ones and not counted above: "
                     f"{cold['sustained_rps']:,.0f} records/s"
                     + (f" (JIT compilation {jit:,.0f} us a record)" if jit is not None else ""))
    delta_only = e2e.get("capacity_runs_without_influx")
    if delta_only:
        lines.append(f"- the same drain with InfluxDB off (Delta only, as the embedded default writes), alternated "
                     f"with the runs above: **{e2e['max_sustained_rps_without_influx']:,.0f} records/s**; "
                     "the difference is what the InfluxDB server and the driver's point encoding cost on these cores")
        lines += cpu_lines(delta_only, lead="  - without InfluxDB, CPU per record")
    elsewhere = e2e.get("capacity_runs_influx_elsewhere")
    if elsewhere:
        received = sum(r.get("points_received", 0) for r in elsewhere)
        sent = sum(r["records"] for r in elsewhere)
        lines.append(f"- the same drain with InfluxDB on another host, as Compose or a real deployment runs it: every "
                     f"point encoded and sent over HTTP to a stand-in on loopback that counts and discards it "
                     f"(`jobs.bench.influx_stand_in`; {received:,} points received for {sent:,} records), alternated with the "
                     f"runs above: **{e2e['max_sustained_rps_influx_elsewhere']:,.0f} records/s**")
        lines += cpu_lines(elsewhere, lead="  - with InfluxDB elsewhere, CPU per record")
    return lines


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# IoMT-AD benchmarks", "",
             f"Written by `iomt-ad bench{' --quick' if report['quick'] else ''}` on {report['date']} "
             f"({report['runs']} run(s) per figure, median reported). Figures are as measured on this "
             "machine, which is shared and noisy.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, Spark "
             f"{m['spark']}, TensorFlow {m['tensorflow']}, scikit-learn {m['scikit-learn']}, LiteRT {m.get('ai-edge-litert', '?')}, onnxruntime {m.get('onnxruntime', '?')}.", "",
             "## Scoring core (rows/s; `score_frame` and each model on preprocessed real rows)", "",
             "| model | cores | 256 | 4,096 | 65,536 |", "|---|---|---|---|---|"]
    for model, by_cores in report["scoring"].items():
        for cores, sizes in by_cores.items():
            lines.append(f"| {model} | {cores} | " + " | ".join(f"{sizes[s]:,.0f}" for s in ("256", "4096", "65536")) + " |")
    e2e = report.get("e2e")
    if e2e:
        lines += ["", "## End to end (Kafka -> Spark local[2] -> Delta" + (" + InfluxDB" if e2e["influxdb"] else "") + ")", "",
                  f"Spark settings beside the local-mode defaults of `jobs.session`: `{e2e.get('spark_conf', {})}`", "",
                  f"- highest sustained throughput: **{e2e['max_sustained_rps']:,.0f} records/s** (a backlog drained "
                  f"in micro-batches of {e2e['capacity_runs'][0]['max_offsets_per_trigger']:,}; the first batch, with model loading, is excluded; "
                  f"median batch {statistics.median(r['batch_seconds_median'] for r in e2e['capacity_runs']):.1f} s)",
                  *cpu_lines(e2e["capacity_runs"]),
                  *avro_lines(e2e),
                  *trigger_batch_lines(e2e),
                  *driver_lines(e2e),
                  *cold_and_delta_only_lines(e2e),
                  "", "Latency: event time stamped by the replayer to the commit of the batch's `batch_log` row, at a "
                  "steady input rate: after a warm-up (records sent and processed first, so that the Python workers "
                  "have loaded the models; its duration is the warm-up column), the replay runs "
                  f"{e2e['latency_runs']['1000'][0].get('settle_s', 0):.0f} s at the rate before the measured records.",
                  "", "| input rate (records/s) | p50 ms | p95 ms | p99 ms | backlog growing | warm-up s |",
                  "|---|---|---|---|---|---|"]
        for rate, q in e2e["latency_ms"].items():
            runs = e2e["latency_runs"][rate]
            growing = any(r["backlog_growing"] for r in runs)
            warmup = statistics.median(r.get("warmup_s", float("nan")) for r in runs)
            slope = statistics.median(r.get("latency_slope_s_per_s", float("nan")) for r in runs)
            lines.append(f"| {int(rate):,} | {q['p50']:,.0f} | {q['p95']:,.0f} | {q['p99']:,.0f} | "
                         f"{'yes' if growing else 'no'} (latency slope {slope:+.2f} s/s) | {warmup:.1f} |")
        b = e2e["baseline"]
        lines += ["", f"- per-record baseline (micro-batch collected to the driver, Keras `predict` per record): "
                  f"{b['rps']:,.1f} records/s; IoMT-AD sustained / baseline = **{b['ratio']:,.0f}x**",
                  f"- peak resident memory of IoMT-AD (driver Python + Spark JVM + Python workers; the test broker, InfluxDB and the replayer excluded, the per-record baseline measured after): **{e2e['resources']['peak_rss_mb']:,.0f} MB** as the sum of RSS, "
                  f"**{e2e['resources'].get('peak_pss_mb', float('nan')):,.0f} MB** as the sum of PSS (pages shared by forked Python workers counted once); "
                  f"processes at most {e2e['resources'].get('max_processes')}; RSS by kind "
                  f"{e2e['resources']['peak_rss_mb_by_process']}; the replayer's own peak {e2e['resources'].get('peak_rss_mb_replayer_not_counted', 0):,.0f} MB; mean machine CPU {e2e['resources']['mean_cpu_percent_of_machine']}%"]
    lines += sensor_lines(report.get("sensor"))
    lines += ["", "## Against the targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, (value, target, ok) in report["targets"].items():
        lines.append(f"| {name} (target {target:,}) | {value if value is None else f'{value:,.1f}'} | {'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def targets(report: dict[str, Any]) -> dict[str, tuple[float | None, float, bool]]:
    scoring = report["scoring"]["ensemble"]["1core"]["4096"]
    e2e = report.get("e2e") or {}
    checks: dict[str, tuple[float | None, float, bool]] = {
        "ensemble_1core_4096_rps": (scoring, TARGETS["ensemble_1core_4096_rps"], scoring >= TARGETS["ensemble_1core_4096_rps"])}
    sensor = report.get("sensor")
    if sensor:
        pps = sensor["windows"]["packets_per_s"]
        checks["sensor_packets_per_s_1core"] = (pps, TARGETS["sensor_packets_per_s_1core"],
                                                pps >= TARGETS["sensor_packets_per_s_1core"])
    if e2e:
        p95 = e2e["latency_ms"]["1000"]["p95"]
        checks["e2e_sustained_rps"] = (e2e["max_sustained_rps"], TARGETS["e2e_sustained_rps"],
                                       e2e["max_sustained_rps"] >= TARGETS["e2e_sustained_rps"])
        if e2e.get("sustained_rps_trigger_batches") is not None:
            rps = e2e["sustained_rps_trigger_batches"]
            batch = e2e["capacity_runs_trigger_batches"][0]["max_offsets_per_trigger"]
            checks[f"e2e_sustained_rps_in_{batch}_record_batches"] = (rps, TARGETS["e2e_sustained_rps"],
                                                                     rps >= TARGETS["e2e_sustained_rps"])
        if e2e.get("sustained_rps_avro") is not None:
            rps = e2e["sustained_rps_avro"]
            checks["e2e_sustained_rps_avro_wire_format"] = (rps, TARGETS["e2e_sustained_rps"],
                                                            rps >= TARGETS["e2e_sustained_rps"])
        checks["p95_ms_at_1000"] = (p95, TARGETS["p95_ms_at_1000"], p95 <= TARGETS["p95_ms_at_1000"])
        if e2e.get("driver_us_per_record") is not None:
            driver = e2e["driver_us_per_record"]
            checks["driver_us_per_record"] = (driver, TARGETS["driver_us_per_record"],
                                              driver <= TARGETS["driver_us_per_record"])
        checks["baseline_ratio"] = (e2e["baseline"]["ratio"], TARGETS["baseline_ratio"],
                                    e2e["baseline"]["ratio"] >= TARGETS["baseline_ratio"])
        peak = e2e["resources"]["peak_rss_mb"]
        checks["peak_rss_mb"] = (peak, TARGETS["peak_rss_mb"], peak <= TARGETS["peak_rss_mb"])
        if "peak_pss_mb" in e2e["resources"]:
            pss = e2e["resources"]["peak_pss_mb"]
            checks["peak_pss_mb"] = (pss, TARGETS["peak_rss_mb"], pss <= TARGETS["peak_rss_mb"])
    return checks


def run(args: argparse.Namespace) -> int:
    runs = args.runs or (1 if args.quick else 3)
    started = time.monotonic()
    report: dict[str, Any] = {"quick": args.quick, "runs": runs, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine()}
    report["scoring"] = scoring_part(args, runs)
    report["sensor"] = sensor_part(args)
    if not args.skip_e2e:
        e2e = e2e_part(args, runs)
        report["e2e"] = e2e
        report["baseline"] = {"rps": e2e["baseline"]["rps"], "ratio": e2e["baseline"]["ratio"]}
        report["peak_rss_mb"] = e2e["resources"]["peak_rss_mb"]
    report["targets"] = targets(report)
    report["seconds"] = round(time.monotonic() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (args.out_dir / "BENCHMARKS.md").write_text(text)
    sys.stdout.write(text)
    return 0
