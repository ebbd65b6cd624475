"""``iomt-ad soak``: the streaming job held at a steady input rate for a long time, with InfluxDB and
the operator dashboard up, to show that nothing grows and nothing is lost.

The command starts its own Kafka broker and InfluxDB (the test services, on loopback), runs the job
as ``spark-submit`` would (its own process tree: the Spark JVM, the driver's Python, the Python
workers), serves the operator dashboard over the job's tables with a headless Chromium keeping a page
open (the page refreshes itself), and replays the CICIoMT2024 rows at ``--rate`` records/s for
``--minutes`` (after 2,000 warm-up records that let the Python workers load the models). Every ``--sample-seconds`` it records each process's resident memory. After the
replay it waits for the job to drain the topic, stops everything and checks the outcome: every record
in Kafka is in ``flows_scored`` or ``quarantine`` exactly once, and InfluxDB's per-device aggregates
count each scored record once. It prints the figures (memory at the start and the end of the run
and its trend per hour, batch durations, event-to-commit latency, records lost or duplicated) and
writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jobs.bench.jvm_heap import class_histogram, largest_growth, total_mib
from models import DEFAULT_BUNDLE_PATH

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ciciomt2024"
TOKEN_ENV = "IOMT_AD_SOAK_INFLUX_TOKEN"
WARMUP_RECORDS = 2000
MAX_RECORDS_PER_BATCH = 20_000  # a backlog is drained in bounded batches, as a deployment would configure
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the replay runs (default 60)")
    parser.add_argument("--rate", type=int, default=1000, help="records/s sent to Kafka (default 1000)")
    parser.add_argument("--trigger", default="1 second", help="the job's trigger (default '1 second')")
    parser.add_argument("--sample-seconds", type=float, default=15.0, help="memory sampling period (default 15)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE_PATH)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir()
                        else REPO / "data" / "ciciomt2024-sample", help="CICIoMT2024 CSV rows to replay")
    parser.add_argument("--no-dashboard", action="store_true", help="leave the operator dashboard off")
    parser.add_argument("--dashboard-window-minutes", type=int, default=15,
                        help="minutes of data the dashboard shows (default 15: shorter than the run, so that "
                             "its memory can level off)")
    parser.add_argument("--out", type=Path, default=Path("soak.json"), help="the figures as JSON (default soak.json)")


@dataclass
class Samples:
    """Resident memory (MiB) per process kind, one row per sample."""

    times: list[float] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)

    def add(self, at: float, by_kind: dict[str, float]) -> None:
        index = len(self.times)
        self.times.append(at)
        for kind, mb in by_kind.items():
            self.rss_mb.setdefault(kind, [float("nan")] * index).append(mb)
        for kind, values in self.rss_mb.items():
            if len(values) < index + 1:
                values.append(float("nan"))


def process_kind(name: str, cmdline: str) -> str:
    """The part of the soak a process belongs to."""
    if "java" in name:
        return "spark_jvm"
    if "score_stream" in cmdline:
        return "driver_python"
    if "streamlit" in cmdline:
        return "dashboard"
    if "chrom" in name:
        return "browser"
    if "python" in name:
        return "python_workers"
    return f"other:{name}"


def rss_by_kind(roots: list[int]) -> dict[str, float]:
    """Resident memory (MiB) of each process tree in ``roots``, summed by :func:`process_kind`."""
    import psutil

    totals: dict[str, float] = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in members:
            try:
                kind = process_kind(proc.name(), " ".join(proc.cmdline()))
                totals[kind] = totals.get(kind, 0.0) + proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
    return totals


def trend(times: list[float], values: list[float]) -> dict[str, float | None]:
    """Memory at the start, the middle and the end of a run (medians of its first, middle and last
    tenth), the peak, and the fitted trend in MiB per hour over the whole run and over its second
    half (after start-up, JIT and the first fills of caches and heaps: what keeps growing)."""
    t, v = np.asarray(times, float), np.asarray(values, float)
    keep = ~np.isnan(v)
    t, v = t[keep], v[keep]
    if len(v) < 6:
        return {"start_mb": None, "middle_mb": None, "end_mb": None, "peak_mb": None, "mb_per_hour": None,
                "second_half_mb_per_hour": None}
    tenth = max(len(v) // 10, 1)
    middle = len(v) // 2
    half = slice(middle, None)

    def slope(x: np.ndarray, y: np.ndarray) -> float:
        return round(float(np.polyfit(x - x[0], y, 1)[0]) * 3600.0, 1)

    return {"start_mb": round(float(np.median(v[:tenth])), 1),
            "middle_mb": round(float(np.median(v[middle - tenth // 2:middle + tenth // 2 + 1])), 1),
            "end_mb": round(float(np.median(v[-tenth:])), 1), "peak_mb": round(float(v.max()), 1),
            "mb_per_hour": slope(t, v), "second_half_mb_per_hour": slope(t[half], v[half])}


GC_EVENT = re.compile(r"^\[(?P<uptime>[\d.]+)s\].*\bPause (?:Young|Full)\b.*->(?P<after>\d+)(?P<unit>[KMG])\(")


def jvm_live_heap(gc_log: Path, since_s: float) -> tuple[list[float], list[float]]:
    """(seconds since ``since_s`` of the JVM's uptime, MiB of heap left after each young or full
    collection): what the JVM holds. Its RSS says how much heap G1 chose to commit, up to the
    maximum, whatever is live."""
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
    times, after = [], []
    if not gc_log.is_file():
        return times, after
    for line in gc_log.read_text(errors="replace").splitlines():
        match = GC_EVENT.search(line)
        if match and float(match["uptime"]) >= since_s:
            times.append(float(match["uptime"]) - since_s)
            after.append(int(match["after"]) * scale[match["unit"]])
    return times, after


def jvm_pid(root: int) -> int | None:
    """The JVM of the job's process tree (spark-submit execs it, so usually ``root`` itself)."""
    import psutil

    try:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return None
    return next((proc.pid for proc in tree if "java" in proc.name()), None)


@dataclass
class HeapSnapshots:
    """The JVM's live heap by class once a quarter into the run and once at its end (:mod:`jvm_heap`)."""

    pid: int | None
    early: dict | None = None
    last: dict | None = None
    early_at_s: float | None = None

    def take_early(self, elapsed_s: float, run_s: float) -> None:
        if self.pid is not None and self.early is None and elapsed_s >= run_s / 4:
            self.early, self.early_at_s = class_histogram(self.pid), round(elapsed_s)

    def take_last(self) -> None:
        if self.pid is not None:
            self.last = class_histogram(self.pid)

    def growth(self) -> dict[str, Any] | None:
        if not self.early or not self.last:
            return None
        return {"early_at_s": self.early_at_s, "live_mib_early": total_mib(self.early),
                "live_mib_end": total_mib(self.last), "largest_growth": largest_growth(self.early, self.last)}


def table_files(tables: Path, names: tuple[str, ...] = ("flows_scored", "alerts", "traffic_1m", "batch_log")) -> dict[str, int]:
    """Data files each table has at the end (the stream compacts them as it runs)."""
    from deltalake import DeltaTable

    return {name: len(DeltaTable(str(tables / name)).file_uris()) for name in names if (tables / name / "_delta_log").is_dir()}


def compactions(job_log: Path) -> dict[str, float]:
    """How often the job compacted and how long its longest compaction took (its log lines)."""
    runs = [float(m) for m in re.findall(r"compaction: \d+ small files into \d+ in ([\d.]+) s", job_log.read_text(errors="replace"))]
    return {"runs": len(runs), "longest_s": max(runs, default=0.0), "total_s": round(sum(runs), 1)}


def job_conf(work: Path, bootstrap: str, topic: str, influx_url: str, model: Path, trigger: str) -> Path:
    import yaml

    conf = {
        "spark": {"master": "local[2]", "conf": {"spark.ui.enabled": False, "spark.ui.showConsoleProgress": False,
                                                  "spark.sql.shuffle.partitions": 2,
                                                  "spark.sql.session.timeZone": "UTC"}},
        "stream": {"source": "kafka", "kafka": {"bootstrap_servers": bootstrap, "topic": topic,
                                                "starting_offsets": "earliest",
                                                "max_offsets_per_trigger": MAX_RECORDS_PER_BATCH},
                   "tables_dir": str(work / "delta"), "trigger": trigger, "model_dir": str(model.resolve()),
                   "app_id": "soak"},
        "influxdb": {"enabled": True, "url": influx_url, "org": "iomt", "bucket": "iomt", "token_env": TOKEN_ENV},
    }
    path = work / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def start_job(conf: Path, log_file: Path, gc_log: Path) -> subprocess.Popen:
    """The job as spark-submit runs it; its JVM logs each garbage collection to ``gc_log``."""
    from jobs.session import spark_jars

    spark_submit = Path(sys.executable).parent / "spark-submit"
    jars = ",".join(str(p) for p in spark_jars(None))
    command = [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--jars", jars,
               "--conf", f"spark.driver.extraJavaOptions=-Xlog:gc:file={gc_log}",
               str(REPO / "jobs" / "stream" / "score_stream.py"), "--conf", str(conf)]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=str(REPO))
    return subprocess.Popen(command, stdout=log_file.open("ab"), stderr=subprocess.STDOUT, cwd=REPO, env=env,
                            start_new_session=True)


def start_dashboard(tables: Path, model: Path, port: int, log_file: Path, window_minutes: int) -> list[subprocess.Popen]:
    """The operator dashboard, and a headless Chromium holding its page open (none without Chromium)."""
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "dashboard", "--tables", str(tables), "--model", str(model),
         "--port", str(port), "--refresh-seconds", "10", "--window-minutes", str(window_minutes)],
        stdout=log_file.open("ab"), stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    browser = next((path for path in CHROMIUM if Path(path).exists()), None)
    if browser is None:
        log.warning("no Chromium: the dashboard serves no open page during the soak")
        return [dashboard]
    time.sleep(5)  # let Streamlit bind its port
    page = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={tables.parent / 'chromium'}", f"http://127.0.0.1:{port}/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return [dashboard, page]


def stop(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


def topic_records(bootstrap: str, topic: str) -> int:
    """Messages in the topic (the sum of its partitions' end offsets; nothing is deleted during a soak)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "iomt-ad-soak-count"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions)
    finally:
        consumer.close()


def table(tables: Path, name: str, columns: list[str]):
    from deltalake import DeltaTable

    path = tables / name
    if not (path / "_delta_log").is_dir():
        return None
    return DeltaTable(str(path)).to_pyarrow_table(columns=columns)


def wait_drained(tables: Path, expected: int, process: subprocess.Popen, stall_s: float) -> int:
    """Records in batch_log (scored + quarantined) once they reach ``expected``; gives up when the
    job makes no progress for ``stall_s`` seconds (a backlog left by a slow run still drains)."""
    done, progressed = 0, time.monotonic()
    while process.poll() is None and time.monotonic() - progressed < stall_s:
        batches = table(tables, "batch_log", ["records", "quarantined"])
        if batches is not None:
            now = int(np.sum(batches["records"].to_numpy()) + np.sum(batches["quarantined"].to_numpy()))
            if now >= expected:
                return now
            if now > done:
                done, progressed = now, time.monotonic()
        time.sleep(5)
    return done


def outcome(tables: Path, in_kafka: int, influx) -> dict[str, Any]:
    """Records lost or duplicated between Kafka, the Delta tables and InfluxDB's aggregates."""
    import pyarrow.compute as pc
    from influxdb_client import InfluxDBClient

    scored = table(tables, "flows_scored", ["record_id", "is_anomaly"])
    quarantine = table(tables, "quarantine", ["raw_sha256"])
    rows = scored.num_rows if scored is not None else 0
    distinct = len(pc.unique(scored["record_id"])) if scored is not None else 0
    quarantined = quarantine.num_rows if quarantine is not None else 0
    anomalies = int(pc.sum(scored["is_anomaly"]).as_py() or 0) if scored is not None else 0
    flux = ('from(bucket:"iomt") |> range(start: -40d, stop: 1h) |> filter(fn: (r) => '
            'r._measurement == "device_traffic" and r._field == "{}") |> group() |> sum()')
    with InfluxDBClient(url=influx.url, token=os.environ[TOKEN_ENV], org="iomt") as client:
        def total(name: str) -> int:
            return int(sum(r.get_value() for t in client.query_api().query(flux.format(name)) for r in t.records))

        influx_records, influx_anomalies = total("records"), total("anomalies")
    return {"records_in_kafka": in_kafka, "scored": rows, "quarantined": quarantined, "anomalies": anomalies,
            "duplicated": rows - distinct, "lost": in_kafka - distinct - quarantined,
            "influx_records": influx_records, "influx_anomalies": influx_anomalies,
            "influx_lost_or_doubled": influx_records - distinct}


def last_batch(tables: Path) -> int:
    batches = table(tables, "batch_log", ["batch_id"])
    return int(np.max(batches["batch_id"].to_numpy())) if batches is not None and batches.num_rows else -1


def batch_figures(tables: Path, after: int) -> dict[str, Any]:
    """Batch durations and event-to-commit latency over the first and the last tenth of the batches
    after the warm-up (batch ids above ``after``)."""
    import pandas as pd

    batches = table(tables, "batch_log", ["batch_id", "seconds", "logged_at", "records"]).to_pandas()
    batches = batches[batches["batch_id"] > after].sort_values("batch_id")
    flows = table(tables, "flows_scored", ["batch_id", "event_time"])
    events = flows.group_by("batch_id").aggregate([("event_time", "min"), ("event_time", "max")]).to_pandas()
    joined = batches.merge(events, on="batch_id")
    # the worst record of a batch waited from its batch's earliest event time to the commit
    joined["latency_s"] = (pd.to_datetime(joined["logged_at"], utc=True)
                           - pd.to_datetime(joined["event_time_min"], utc=True)).dt.total_seconds()
    tenth = max(len(joined) // 10, 1)

    def window(part) -> dict[str, float]:
        return {"batch_seconds_median": round(float(part["seconds"].median()), 2),
                "batch_seconds_p95": round(float(part["seconds"].quantile(0.95)), 2),
                "latency_s_p95": round(float(part["latency_s"].quantile(0.95)), 2),
                "records_per_batch_median": float(part["records"].median())}

    return {"batches": int(len(batches)), "first_tenth": window(joined.iloc[:tenth]),
            "last_tenth": window(joined.iloc[-tenth:])}


def markdown(figures: dict[str, Any]) -> str:
    lines = [f"Soak: {figures['minutes']} min at {figures['rate']} records/s, {figures['batches']['batches']} batches",
             "", "| process | start MiB | middle MiB | end MiB | peak MiB | trend MiB/h | over the second half |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, t in sorted(figures["memory"].items()):
        if t["start_mb"] is None:
            continue  # a helper process that came and went between samples
        lines.append(f"| {kind} | {t['start_mb']} | {t.get('middle_mb')} | {t['end_mb']} | {t['peak_mb']} | "
                     f"{t['mb_per_hour']} | {t.get('second_half_mb_per_hour')} |")
    first, last = figures["batches"]["first_tenth"], figures["batches"]["last_tenth"]
    lines += ["", "| | first tenth | last tenth |", "|---|---:|---:|"]
    for key in ("batch_seconds_median", "batch_seconds_p95", "latency_s_p95", "records_per_batch_median"):
        lines.append(f"| {key} | {first[key]} | {last[key]} |")
    lines += ["", "spark_jvm_live_heap: the heap left after each collection (the GC log), not RSS.",
              f"Data files at the end: {figures['table_files']}; compactions: {figures['compactions']}."]
    growth = figures.get("jvm_heap_growth")
    if growth:
        lines += ["", f"JVM live heap by class: {growth['live_mib_early']} MiB at {growth['early_at_s']} s, "
                      f"{growth['live_mib_end']} MiB at the end; grew most:"]
        lines += [f"- {row['class']}: {row['mib_before']} -> {row['mib_after']} MiB "
                  f"({row['instances_before']} -> {row['instances_after']} objects)" for row in growth["largest_growth"]]
    o = figures["outcome"]
    lines += ["", f"Records in Kafka {o['records_in_kafka']}, scored {o['scored']}, quarantined {o['quarantined']}, "
                  f"lost {o['lost']}, duplicated {o['duplicated']}; InfluxDB aggregates count {o['influx_records']} "
                  f"records ({o['influx_lost_or_doubled']} off)."]
    return "\n".join(lines) + "\n"


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))  # the test services (broker, influxd) live beside the tests
    from jobs.bench.e2e import replay_to_kafka
    from tests.services.influxdb_server import TOKEN, InfluxServer
    from tests.services.kafka_broker import KafkaBroker
    from tests.services.ports import free_port

    os.environ[TOKEN_ENV] = TOKEN  # the throwaway server's token
    total = int(args.rate * args.minutes * 60)
    topic = "soak"
    with KafkaBroker(work / "kafka") as broker:
        influx = InfluxServer(work / "influxdb").start()
        others: list[subprocess.Popen] = []
        job = None
        try:
            broker.create_topic(topic, partitions=2)
            job_started = time.monotonic()
            job = start_job(job_conf(work, broker.bootstrap, topic, influx.url, args.model, args.trigger),
                            work / "job.log", work / "jvm-gc.log")
            if not args.no_dashboard:
                others = start_dashboard(work / "delta", args.model, free_port(), work / "dashboard.log",
                                         args.dashboard_window_minutes)
            # the first batch loads the models in the Python workers: not part of the steady state
            warmup = replay_to_kafka(broker.bootstrap, topic, 0, WARMUP_RECORDS, args.data)
            if warmup.wait() != 0:
                raise RuntimeError(warmup.stderr.read().decode()[-2000:])
            if wait_drained(work / "delta", WARMUP_RECORDS, job, stall_s=600) < WARMUP_RECORDS:
                raise RuntimeError(f"the job did not take the warm-up records in 600 s: see {work / 'job.log'}")
            warm_batches = last_batch(work / "delta")
            replayer = replay_to_kafka(broker.bootstrap, topic, args.rate, total, args.data)
            samples = Samples()
            heap = HeapSnapshots(jvm_pid(job.pid))
            started = time.monotonic()
            while replayer.poll() is None:
                if job.poll() is not None:
                    raise RuntimeError(f"the job exited ({job.returncode}): see {work / 'job.log'}")
                samples.add(time.monotonic() - started, rss_by_kind([job.pid, *(p.pid for p in others)]))
                heap.take_early(time.monotonic() - started, args.minutes * 60)
                time.sleep(args.sample_seconds)
            if replayer.returncode != 0:
                raise RuntimeError(replayer.stderr.read().decode()[-2000:])
            in_kafka = topic_records(broker.bootstrap, topic)
            drained = wait_drained(work / "delta", in_kafka, job, stall_s=300)
            log.info("replay done: %d records in Kafka, %d through the job", in_kafka, drained)
            heap.take_last()
        finally:
            for process in [*others, *([job] if job else [])]:
                stop(process)
        try:
            result = outcome(work / "delta", in_kafka, influx)
        finally:
            influx.stop()
    memory = {kind: trend(samples.times, values) for kind, values in samples.rss_mb.items()}
    memory["spark_jvm_live_heap"] = trend(*jvm_live_heap(work / "jvm-gc.log", started - job_started))
    return {"minutes": args.minutes, "rate": args.rate, "trigger": args.trigger, "samples": len(samples.times),
            "memory": memory, "jvm_heap_growth": heap.growth(), "table_files": table_files(work / "delta"), "compactions": compactions(work / "job.log"),
            "warmup_records": WARMUP_RECORDS, "batches": batch_figures(work / "delta", after=warm_batches),
            "outcome": result}


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="iomt-soak-"))
    try:
        figures = soak(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    sys.stdout.write(markdown(figures))
    o = figures["outcome"]
    return 0 if o["lost"] == 0 and o["duplicated"] == 0 and o["influx_lost_or_doubled"] == 0 else 1
