"""``iomt-ad demo``: the whole job on the embedded default, on the project's real sample.

1. resets ``var/`` (the demo's own directory), 2. replays the sample of CICIoMT2024 (every class)
as JSON flow records into ``stream.files.path``, plus a few deliberately malformed records to show
the quarantine, 3. runs the streaming job (Spark local mode, no broker) until the input is
consumed, 4. prints a summary from the Delta tables (records, anomalies, quarantine, detection per
class on held-out rows, throughput, incidents), 5. delivers the incident updates to the configured
outputs (the embedded default: an OCSF JSON-lines file) and 6. writes the held-out evaluation
report (JSON + HTML).

With ``--pcap`` the input is packet captures, turned into records by the sensor (each names its
device, and keeps the capture's own time): the summary then lists devices instead of per-class
detection, and there is no evaluation report (captures carry no labels).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.config import AppConfig, load_config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "ciciomt2024-sample"

# Shown in the quarantine table: what a broken producer might send (clearly not dataset rows).
DEMO_MALFORMED = (
    b'{"record_id": "demo-bad-1", "Rate": "fast"',          # truncated JSON
    b'{"record_id": "demo-bad-2", "source_id": "pump-9"}',  # no features at all
    b"\xff\xfe not even text",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default="conf/local.yaml", help="configuration (default conf/local.yaml)")
    parser.add_argument("--data", nargs="+", default=[str(SAMPLE)], metavar="FILE_OR_DIR",
                        help="CICIoMT2024 CSV files to replay (default: the project's sample)")
    parser.add_argument("--pcap", nargs="+", type=Path, default=None, metavar="CAPTURE",
                        help="replay packet captures (files, or directories of them) through the sensor instead of CSV rows (pcap or pcapng; the "
                             "records keep the captures' own times, and name their devices)")
    parser.add_argument("--out", type=Path, default=Path("var"), help="where the report goes (default var/)")


def _reset(config: AppConfig) -> None:
    for path in (config.stream.files.path, config.stream.tables_dir, config.stream.checkpoint):
        if path.exists():
            shutil.rmtree(path)
    if config.alerts.outputs.file.enabled:
        Path(config.alerts.outputs.file.path).unlink(missing_ok=True)
    config.stream.files.path.mkdir(parents=True)


def _notify(config: AppConfig, timeout_s: float = 120.0) -> str | None:
    """Deliver the incident updates the run queued to the configured outputs (as the stream's
    notifier or ``iomt-ad notify`` would) and say how many went where; None without outputs."""
    from deltalake import DeltaTable

    from jobs.outputs.notifier import notifier_for
    from schemas.tables import DELIVERIES

    notifier = notifier_for(config)
    if notifier is None:
        return None
    if not notifier.drain(timeout_s):
        log.warning("some incident updates were not delivered within %.0f s: `iomt-ad notify` sends them", timeout_s)
    path = str(config.stream.tables_dir / DELIVERIES)
    rows = (DeltaTable(path).to_pyarrow_table(columns=["output", "status"]).to_pylist()
            if DeltaTable.is_deltatable(path) else [])
    sent = {output.name: sum(1 for r in rows if r["output"] == output.name and r["status"] == "delivered")
            for output in notifier.outputs}
    where = ", ".join(f"{count} to {name}" + (f" ({config.alerts.outputs.file.path})" if name == "file" else "")
                      for name, count in sent.items())
    return f"  incident notifications {sum(sent.values()):>7}   ({where}; one per incident update worth a message)"


def _replay(config: AppConfig, data: list[str]) -> int:
    from models.training.datasets import load_flows_pandas
    from jobs.ops.replay import ReplayOptions, replay
    from jobs.publish import DirectorySink

    flows = load_flows_pandas(data)
    sent = replay(flows, DirectorySink(config.stream.files.path, records_per_file=2000),
                  ReplayOptions(rate=0, shuffle=True, seed=1), progress=False)
    (config.stream.files.path / "demo-malformed.json").write_bytes(b"\n".join(DEMO_MALFORMED) + b"\n")
    return sent


def _replay_captures(config: AppConfig, captures: list[Path]) -> int:
    """The captures' windows (``iomt-ad sensor``'s records) as JSON-lines files in the input directory."""
    from jobs.publish import DirectorySink
    from jobs.sensor.command import capture_records
    from jobs.sensor.records import json_lines

    frame, report = capture_records(captures)
    sink = DirectorySink(config.stream.files.path, records_per_file=2000)
    for key, line in zip(frame["device_id"], json_lines(frame)):
        sink.send(key, line.encode("utf-8"))
    sink.close()
    log.info("%d packets of %d captures -> %d records", report.packets, len(captures), len(frame))
    return len(frame)


def _summary(spark: "SparkSession", config: AppConfig, seconds: float, labelled: bool = True) -> str:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from models.training.split import split_of
    from models.bundle import read_manifest

    tables = config.stream.tables_dir
    scored = spark.read.format("delta").load(str(tables / "flows_scored"))
    quarantine = spark.read.format("delta").load(str(tables / "quarantine"))
    incidents = spark.read.format("delta").load(str(tables / "incidents"))
    seed = int(read_manifest(config.stream.model_dir)["split"]["seed"])
    def split_of_source(source_id: str) -> str:
        source_file, row_number = source_id.rsplit(":", 1)
        return split_of(source_file, int(row_number), seed)

    part = F.udf(split_of_source, T.StringType())
    per_class = (scored.withColumn("split", part("source_id")).filter(F.col("split") == "test")
                 .groupBy("label").agg(F.count("*").alias("n"), F.avg(F.col("is_anomaly").cast("double")).alias("rate"))
                 .orderBy("label").collect()) if labelled else []
    total = scored.count()
    anomalies = scored.filter("is_anomaly").count()
    lines = [
        "",
        "IoMT-AD demo — embedded default (Spark local mode, files source, Delta tables)",
        f"  records scored        {total:>8}   ({tables / 'flows_scored'})",
        f"  anomalies (alerts)    {anomalies:>8}   ({tables / 'alerts'})",
        f"  incidents             {incidents.count():>8}   ({tables / 'incidents'}: per "
        f"{'source' if labelled else 'device'} and category; {incidents.filter(F.col('state') == 'open').count()} open)",
        f"  quarantined           {quarantine.count():>8}   ({tables / 'quarantine'})",
        f"  stream wall time      {seconds:>8.1f} s  -> {total / max(seconds, 1e-9):,.0f} records/s end to end "
        "(includes Spark start-up and model loading)",
    ]
    if labelled:
        lines += ["", "  detection per class on held-out rows (rows the model never trained or calibrated on);",
                  "  for Benign the figure is the false-positive rate:"]
        lines += [f"    {row['label']:26} n={row['n']:>5}  flagged {row['rate']:6.1%}" for row in per_class]
    else:
        devices = spark.read.format("delta").load(str(tables / "devices"))
        lines += ["", f"  devices               {devices.count():>8}   ({tables / 'devices'}); those with the most alerts:"]
        lines += [f"    {row['device_id']:24} {row['device_ip'] or '':16} records {row['records']:>6}  alerts "
                  f"{row['anomalies']:>6}" for row in devices.orderBy(F.desc("anomalies")).limit(5).collect()]
    reasons = quarantine.groupBy("reason").count().collect()
    lines += ["", "  quarantine reasons:"] + [f"    {r['count']:>3} x {r['reason'][:90]}" for r in reasons]
    return "\n".join(lines)


def _report(config: AppConfig, data: list[str], out: Path) -> tuple[Path, Path]:
    from jobs.model_tools.evaluate import write_evaluation

    json_path, html_path = out / "evaluation.json", out / "evaluation.html"
    write_evaluation(Path(config.stream.model_dir), data, json_path, html_path)
    return json_path, html_path


def run(args: argparse.Namespace) -> int:
    from jobs.stream.score_stream import start_query
    from jobs.session import build_spark

    config = load_config(args.conf)
    if config.stream.source != "files":
        log.error("the demo runs on the embedded default: use a configuration with stream.source: files")
        return 2
    if args.pcap:  # captures keep their own times: old ones too (the stream bounds event_time otherwise)
        config = replace(config, stream=replace(config.stream, event_time_max_past="36500 days"))
    _reset(config)
    if args.pcap:
        sent = _replay_captures(config, args.pcap)
        log.info("wrote the captures' %d records into %s", sent, config.stream.files.path)
    else:
        sent = _replay(config, args.data)
        log.info("replayed %d records (+%d malformed) into %s", sent, len(DEMO_MALFORMED), config.stream.files.path)
    spark = build_spark(config, "iomt-ad-demo")
    started = time.monotonic()
    query = start_query(spark, config, available_now=True)
    query.awaitTermination()
    seconds = time.monotonic() - started
    if query.exception() is not None:
        log.error("the streaming query failed: %s", query.exception())
        return 1
    summary = _summary(spark, config, seconds, labelled=not args.pcap)
    notified = _notify(config)
    if args.pcap:  # no labels: no evaluation report
        sys.stdout.write(summary + (f"\n{notified}" if notified else "") + "\n")
    else:
        json_path, html_path = _report(config, args.data, args.out)
        sys.stdout.write(summary + (f"\n{notified}" if notified else "")
                         + f"\n\n  evaluation report: {html_path} (metrics: {json_path})\n")
    spark.stop()
    return 0
