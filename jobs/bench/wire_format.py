"""Wire-format micro-benchmark (issue 19, item 5): JSON (what the producers send today) beside Avro
in the Confluent wire format, on the same real CICIoMT2024 records.

    python -m jobs.bench.wire_format --rows 100000 --out wire_format.json [--jfr parse.jfr]

- records: ``--rows`` messages built by the replayer's own code (``jobs.ops.replay.iter_messages``)
  from the rows of ``--data`` (all of ../shared/data/ciciomt2024 by default; rows repeat, each with
  a new record id and event time, when more are asked for than the files hold);
- producer side (Python): the time to turn a message into bytes, per format (JSON as
  ``replay.py`` does it; Avro behind the 5-byte Confluent header, with fastavro and with a writer
  specialised to this schema (the same bytes, checked); Protobuf with the protobuf runtime), and
  the bytes per message;
- job side (the JVM, one ``local[2]`` session built by ``jobs.session.build_spark`` as the job
  builds it): the messages as Kafka's ``value`` column of a DataFrame cached in memory, then each
  variant writes to Spark's ``noop`` sink, which forces every output column:
  ``*_floor`` reads the bytes only (the cost every variant shares), ``json_from_json`` /
  ``avro_from_avro`` decode only, ``json_parse_flows`` is the job's parse step as it is
  (``jobs.stream.parse.parse_flows``) and ``avro_parse`` the job's step for Avro with the checks
  that still apply (``jobs.stream.parse_avro.parse_avro_flows``).
  Rounds interleave the variants (the order rotates each round); figures are medians over rounds:
  wall time (records/s, us a record) and the JVM's CPU time a record (all its threads).
- checks (untimed): the Avro path yields the JSON path's records, decode-only and parse step
  alike (row count, quarantined count and two order-free hashes of every value).

Protobuf is encoded and sized only: ``spark-protobuf_2.13`` is not served by the Maven Central
these machines reach, so the JVM cannot decode it here.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ciciomt2024"
SCHEMA_ID = 1  # what a registry hands out for the first schema registered
PARTITIONS = 4  # two tasks per core of local[2]
VARIANTS: tuple[str, ...] = ("json_floor", "json_from_json", "json_parse_flows",
                             "avro_floor", "avro_from_avro", "avro_parse")


def build_session(flight_recorder: bool = False) -> "SparkSession":
    """``local[2]`` as the job runs locally (build_spark's local settings, the job's jars); with
    ``flight_recorder``, the JVM records itself from its start (dumped by ``jcmd``, see run)."""
    from jobs.config import AppConfig, SparkConfig
    from jobs.session import LOCAL_SETTINGS, build_spark, spark_jars

    java_options = LOCAL_SETTINGS["spark.driver.extraJavaOptions"]
    if flight_recorder:
        java_options += " -XX:StartFlightRecording=settings=profile"
    conf = {
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2", "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true", "spark.driver.memory": "3g",
        "spark.driver.extraJavaOptions": java_options,
        "spark.jars": ",".join(str(p) for p in spark_jars(None)),
    }
    spark = build_spark(AppConfig(spark=SparkConfig(master="local[2]", conf=conf)), "iomt-ad-wire-format")
    spark.sparkContext.setLogLevel("WARN")
    return spark


def build_messages(data: Sequence[Path], rows: int) -> list[dict[str, Any]]:
    """``rows`` messages exactly as ``iomt-ad replay`` builds them, in file order, looping."""
    from jobs.ops.replay import ReplayOptions, iter_messages
    from models.training.datasets import load_flows_pandas

    flows = load_flows_pandas(data)
    log.info("%d real rows from %s", len(flows), ", ".join(map(str, data)))
    return [message for _, message in iter_messages(flows, ReplayOptions(rate=0, limit=rows, loop=True))]


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def measure_encode(messages: list[dict[str, Any]], rounds: int) -> tuple[dict[str, Any], dict[str, list[bytes]]]:
    """Producer side: us a message for each encoder (interleaved rounds, median) and the bytes."""
    from jobs.bench.wire_codecs import avro_encoder, protobuf_encoder
    from jobs.wire import avro_record_encoder as avro_specialised_encoder
    from jobs.wire import json_encoder, wire_record

    records = [wire_record(m) for m in messages]  # a binary producer builds these instead of the JSON dicts
    encoders: dict[str, tuple[Callable[[Any], bytes], list[dict[str, Any]]]] = {
        "json": (json_encoder(), messages), "avro": (avro_encoder(SCHEMA_ID), records),
        "avro_specialised": (avro_specialised_encoder(SCHEMA_ID), records),
        "protobuf": (protobuf_encoder(SCHEMA_ID), records)}
    names = list(encoders)
    times: dict[str, list[float]] = {name: [] for name in names}
    encoded: dict[str, list[bytes]] = {}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            encode, inputs = encoders[name]
            started = time.perf_counter()
            out = [encode(x) for x in inputs]
            times[name].append(time.perf_counter() - started)
            encoded[name] = out
    if encoded["avro_specialised"] != encoded["avro"]:
        raise AssertionError("the specialised Avro writer's bytes differ from fastavro's")
    result: dict[str, Any] = {}
    for name in names:
        sizes = [len(b) for b in encoded[name]]
        result[name] = {"us_per_record": round(_median(times[name]) / len(messages) * 1e6, 2),
                        "us_per_record_rounds": [round(t / len(messages) * 1e6, 2) for t in times[name]],
                        "bytes_per_record_mean": round(sum(sizes) / len(sizes), 1),
                        "bytes_per_record_min": min(sizes), "bytes_per_record_max": max(sizes)}
        log.info("encode %-8s %6.2f us/record, %6.1f bytes/record", name, result[name]["us_per_record"],
                 result[name]["bytes_per_record_mean"])
    return result, encoded


def as_kafka_rows(spark: "SparkSession", values: list[bytes], timestamp: datetime) -> "DataFrame":
    """The messages as the Kafka source hands them over (binary ``value``, topic, partition,
    offset, timestamp: the same for every format), cached in memory and materialised."""
    import pandas as pd
    from pyspark.sql import functions as F

    frame = pd.DataFrame({"value": values, "offset": range(len(values))})
    df = (spark.createDataFrame(frame, "value binary, offset long")
          .select("value", F.lit("iomt_traffic_stream").alias("topic"), F.lit(0).alias("partition"), "offset",
                  F.lit(timestamp).alias("timestamp"))
          .repartition(PARTITIONS).cache())
    df.count()
    return df


def _raw(kafka: "DataFrame", binary: bool) -> "DataFrame":
    """Kafka rows -> the parse step's ``raw`` input as the job builds it (text for JSON, bytes for Avro)."""
    from jobs.stream.parse import kafka_to_raw

    return kafka_to_raw(kafka, binary=binary)


def variants(json_rows: "DataFrame", avro_rows: "DataFrame") -> dict[str, "DataFrame"]:
    """Each measured variant as a DataFrame whose every column the noop sink computes."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    from jobs.stream.parse_avro import parse_avro_flows
    from jobs.wire import CONFLUENT_HEADER_BYTES
    from schemas.flow_record_avro import avro_schema_json
    from jobs.stream.parse import CORRUPT, _typed_schema, parse_flows

    json_options = {"mode": "PERMISSIVE", "allowNonNumericNumbers": "true", "columnNameOfCorruptRecord": CORRUPT}
    schema = avro_schema_json()
    return {
        "json_floor": json_rows.select(F.octet_length("value").alias("n")),
        "json_from_json": json_rows.select(
            F.from_json(F.col("value").cast("string"), _typed_schema(), json_options).alias("r")).select("r.*"),
        "json_parse_flows": parse_flows(_raw(json_rows, binary=False)),
        "avro_floor": avro_rows.select(F.octet_length("value").alias("n")),
        "avro_from_avro": avro_rows.select(from_avro(F.expr(f"substring(value, {CONFLUENT_HEADER_BYTES + 1})"),
                                                     schema, {"mode": "PERMISSIVE"}).alias("r")).select("r.*"),
        "avro_parse": parse_avro_flows(_raw(avro_rows, binary=True), SCHEMA_ID),
    }


def _fingerprint(frame: "DataFrame") -> dict[str, int]:
    """Rows, quarantined rows and two order-free hashes of all rows' values: equal fingerprints
    mean the same multiset of rows (up to hash collisions), at the cost of one aggregation."""
    from pyspark.sql import functions as F

    columns = [F.col(f"`{c}`") for c in frame.columns]
    aggregates = [F.count(F.lit(1)).alias("rows"), F.bit_xor(F.xxhash64(*columns)).alias("xor_xxhash64"),
                  F.sum(F.hash(*columns).cast("long")).alias("sum_murmur3")]
    if "quarantine_reason" in frame.columns:
        aggregates.append(F.count("quarantine_reason").alias("quarantined"))
    return frame.agg(*aggregates).first().asDict()


def check_same_records(frames: dict[str, "DataFrame"]) -> dict[str, Any]:
    """The Avro path's records against the JSON path's, decode-only and parse step alike: the
    fingerprints of the same columns (features under their column names, ``raw_value`` left out:
    text in one, bytes in the other)."""
    from schemas.flow_record import FEATURES, column_name

    decoded_json = frames["json_from_json"].drop("_corrupt_record")
    renamed = decoded_json.toDF(*[column_name(c) if c in FEATURES else c for c in decoded_json.columns])
    keep = [c for c in frames["json_parse_flows"].columns if c != "raw_value"]
    prints = {"decode_json": _fingerprint(renamed), "decode_avro": _fingerprint(frames["avro_from_avro"]),
              "parse_json": _fingerprint(frames["json_parse_flows"].select(keep)),
              "parse_avro": _fingerprint(frames["avro_parse"].select(keep))}
    return {"decode_equal": prints["decode_json"] == prints["decode_avro"],
            "parse_equal": prints["parse_json"] == prints["parse_avro"], **prints}


def _jvms() -> list["psutil.Process"]:
    """The Spark JVM: the child ``java`` process of this interpreter."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "java" in child.name():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _jvm_cpu_seconds() -> float:
    """User + system CPU time of the Spark JVM."""
    import psutil

    total = 0.0
    for jvm in _jvms():
        try:
            times = jvm.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def measure_decode(large: dict[str, "DataFrame"], small: dict[str, "DataFrame"], names: Sequence[str],
                   rows: int, small_rows: int, rounds: int) -> dict[str, Any]:
    """Job side: each variant to the noop sink on ``rows`` and on ``small_rows`` records, one
    warm-up run each, then ``rounds`` interleaved rounds. A query's cost has a fixed part (planning
    the query, which parse_flows makes large and a micro-batch pays each time; scheduling) and a
    part per record: the difference of the two sizes, per record, is the latter (``marginal``)."""
    def run(frame: "DataFrame") -> tuple[float, float]:
        cpu = _jvm_cpu_seconds()
        started = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started, _jvm_cpu_seconds() - cpu

    for name in names:
        run(small[name])  # warm-up: code generation, JIT
        run(large[name])
    measured: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": [], "wall_small": [], "cpu_small": []}
                                                   for n in names}
    for r in range(rounds):
        for name in list(names[r % len(names):]) + list(names[:r % len(names)]):
            m = measured[name]
            for suffix, frame in (("_small", small[name]), ("", large[name])):
                wall, cpu = run(frame)
                m[f"wall{suffix}"].append(wall)
                m[f"cpu{suffix}"].append(cpu)
        log.info("round %d/%d: %s", r + 1, rounds,
                 ", ".join(f"{n} {measured[n]['wall'][-1]:.2f}s/{measured[n]['wall_small'][-1]:.2f}s" for n in names))
    extra = rows - small_rows
    result: dict[str, Any] = {}
    for name in names:
        m = measured[name]
        marginal_wall = _median([a - b for a, b in zip(m["wall"], m["wall_small"])]) / extra
        marginal_cpu = _median([a - b for a, b in zip(m["cpu"], m["cpu_small"])]) / extra
        result[name] = {
            "records_per_s": round(rows / _median(m["wall"])),
            "wall_us_per_record": round(_median(m["wall"]) / rows * 1e6, 2),
            "jvm_cpu_us_per_record": round(_median(m["cpu"]) / rows * 1e6, 2),
            "marginal_wall_us_per_record": round(marginal_wall * 1e6, 2),
            "marginal_jvm_cpu_us_per_record": round(marginal_cpu * 1e6, 2),
            "marginal_records_per_s": round(1 / marginal_wall) if marginal_wall > 0 else None,
            "fixed_wall_s_per_query": round(_median(m["wall_small"]) - small_rows * marginal_wall, 3),
            "fixed_jvm_cpu_s_per_query": round(_median(m["cpu_small"]) - small_rows * marginal_cpu, 3),
            **{f"{k}_s_rounds": [round(v, 3) for v in values] for k, values in m.items()}}
    for fmt, steps in (("json", ("json_from_json", "json_parse_flows")), ("avro", ("avro_from_avro", "avro_parse"))):
        floor = result.get(f"{fmt}_floor")
        for step in steps:
            if floor and step in result:
                result[step]["marginal_over_floor_jvm_cpu_us_per_record"] = round(
                    result[step]["marginal_jvm_cpu_us_per_record"] - floor["marginal_jvm_cpu_us_per_record"], 2)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000, help="messages per format (default 100,000)")
    parser.add_argument("--small-rows", type=int, default=2_000,
                        help="the small size that isolates each query's fixed cost (default 2,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported (default 3)")
    parser.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA],
                        help="CICIoMT2024 *.pcap.csv files or directories (default ../shared/data/ciciomt2024)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="job-side variants to time (default all)")
    parser.add_argument("--out", type=Path, required=True, help="where the figures go (JSON)")
    parser.add_argument("--jfr", type=Path, default=None,
                        help="record the JVM with Java Flight Recorder into this file and summarise its samples")
    parser.add_argument("--no-check", action="store_true", help="skip the untimed same-records check")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.rounds < 1 or not 0 < args.small_rows < args.rows:
        raise SystemExit("--rounds must be at least 1 and 0 < --small-rows < --rows")
    started = time.monotonic()
    messages = build_messages(args.data, args.rows)
    encode, encoded = measure_encode(messages, args.rounds)
    del messages
    jfr = args.jfr.resolve() if args.jfr else None
    spark = build_session(jfr is not None)
    try:
        kafka_time = datetime.now(timezone.utc)
        frames = variants(*[as_kafka_rows(spark, encoded[f], kafka_time) for f in ("json", "avro")])
        small = variants(*[as_kafka_rows(spark, encoded[f][:args.small_rows], kafka_time) for f in ("json", "avro")])
        del encoded
        same = None if args.no_check else check_same_records(frames)
        if same is not None:
            log.info("same records: %s", same)
        decode = measure_decode(frames, small, args.variants, args.rows, args.small_rows, args.rounds)
        spark_version = spark.version
        if jfr is not None:
            from jobs.bench.jfr import dump

            for jvm in _jvms():
                dump(jvm.pid, jfr)
    finally:
        spark.stop()
    result: dict[str, Any] = {
        "rows": args.rows, "small_rows": args.small_rows, "rounds": args.rounds, "data": [str(p) for p in args.data],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {
            "cores": os.cpu_count(), "python": platform.python_version(), "spark": spark_version,
            "java": os.popen("java -version 2>&1").read().splitlines()[0] if os.name == "posix" else None},
        "encode_python": encode, "decode_jvm": decode, "same_records": same,
        "seconds": round(time.monotonic() - started, 1)}
    if jfr is not None:
        from jobs.bench.jfr import summarise

        result["jfr"] = {"file": str(jfr), **summarise(jfr)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['rows']:,} records, {result['rounds']} interleaved rounds (medians), Spark "
             f"{result['machine']['spark']} local[2]"]
    lines.append("producer (Python) encode:")
    for name, e in result["encode_python"].items():
        lines.append(f"  {name:16s} {e['us_per_record']:7.2f} us/record  {e['bytes_per_record_mean']:7.1f} bytes/record")
    lines.append("job (JVM) to the noop sink: whole query at --rows | per record beyond the fixed cost | fixed cost a query")
    for name, d in result["decode_jvm"].items():
        lines.append(f"  {name:17s} {d['records_per_s']:8,d} records/s {d['jvm_cpu_us_per_record']:7.2f} us CPU"
                     f" | {d['marginal_wall_us_per_record']:6.2f} us wall {d['marginal_jvm_cpu_us_per_record']:6.2f} us CPU"
                     f" | {d['fixed_wall_s_per_query']:5.2f} s wall {d['fixed_jvm_cpu_s_per_query']:5.2f} s CPU")
    if result.get("same_records"):
        same = result["same_records"]
        lines.append(f"same records as JSON: decode {same['decode_equal']}, parse step {same['parse_equal']} "
                     f"({same['parse_json']['quarantined']} quarantined)")
    if result.get("jfr"):
        from jobs.bench.jfr import format_summary

        lines.append(format_summary(result["jfr"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench.wire_format", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    print(report(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
