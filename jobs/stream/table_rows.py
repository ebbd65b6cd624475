"""The rows each Delta table gets from one micro-batch, built in each of its tasks from the
partition's scored Arrow table (pure pyarrow: no Spark, no I/O).

The input is a partition of records the task scored (:mod:`jobs.stream.scoring`, over
:func:`jobs.stream.score_stream.prepared_records`): every parsed record with ``quarantine_reason`` (null for a good record), ``raw_value`` (kept for
quarantined records only), its origin, its features and the score fields. Dates and minutes are
taken in UTC. Every table's rows are conformed to its definition in :mod:`schemas.tables` (columns,
order, types), so a table keeps one schema whatever produced the batch.
"""
from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from jobs.stream.parse import INGEST_TIME, OFFSET, ORIGIN, PARTITION, QUARANTINE_REASON, RAW_BYTES, RAW_SHA256, RAW_VALUE
from schemas.flow_record import CONTEXT
from schemas.tables import (ALERTS, BATCH_LOG, DEVICES, EXPLANATION, FLOWS_SCORED, QUARANTINE, TABLES, TIMESTAMP,
                            TRAFFIC_1M)

UTC_MICROS = TIMESTAMP
TRAFFIC_KEYS: tuple[str, ...] = ("protocol", "predicted_class", "predicted_category", "is_anomaly",
                                 "model_version")


def _constant(value: object, kind: pa.DataType, rows: int) -> pa.Array:
    return pa.array([value] * rows, kind) if rows else pa.array([], kind)


def in_utc(table: pa.Table) -> pa.Table:
    """Every timestamp column as microseconds in UTC (Delta's ``timestamp``), every field nullable
    (as Spark writes them), so each table keeps one schema whatever produced the batch."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type):
            if field.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            column = column.cast(UTC_MICROS)
            field = field.with_type(UTC_MICROS)
        columns.append(column)
        fields.append(field.with_nullable(True))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


class TableLayoutError(ValueError):
    """Rows that do not fit their table's definition in schemas.tables (a bug, not bad input)."""


def conform(rows: pa.Table, name: str) -> pa.Table:
    """``rows`` as table ``name`` defines them: its columns in its order, cast to its types, times
    in UTC, every field nullable. A column missing or left over is a :class:`TableLayoutError`."""
    spec = TABLES[name]
    missing = [c for c in spec.column_names if c not in rows.column_names]
    extra = [c for c in rows.column_names if c not in spec.column_names]
    if missing or extra:
        raise TableLayoutError(f"rows for {name} do not fit schemas.tables: missing {missing}, not defined {extra}")
    rows = in_utc(rows.select(list(spec.column_names)))
    return rows.cast(spec.arrow_schema())


def empty(name: str) -> pa.Table:
    """No rows of table ``name``, in its layout."""
    return pa.table({c.name: pa.nulls(0, c.type) for c in TABLES[name].columns}).cast(TABLES[name].arrow_schema())


def utc_date(times: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(pc.cast(times, UTC_MICROS), pa.date32())


def split(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(good records, quarantined records) of a collected batch."""
    bad = pc.is_valid(batch[QUARANTINE_REASON])
    return batch.filter(pc.invert(bad)), batch.filter(bad)


def flows_scored(good: pa.Table, batch_id: int, scored_at: datetime, task_slot: int = 0) -> pa.Table:
    """``task_slot``: the Spark task partition that scores the rows, the slot of their InfluxDB
    aggregates (``iomt-ad influx-backfill`` rebuilds those points from it, whatever compaction did
    to the data files)."""
    # explanation goes to alerts only; context (stream.sequence: the device's previous windows) is never stored
    dropped = [QUARANTINE_REASON, RAW_VALUE, RAW_BYTES, RAW_SHA256,
               *[name for name in (EXPLANATION, CONTEXT) if name in good.column_names]]
    rows = good.drop_columns(dropped)
    rows = rows.append_column("batch_id", _constant(batch_id, pa.int64(), len(rows)))
    rows = rows.append_column("scored_at", _constant(scored_at, UTC_MICROS, len(rows)))
    rows = rows.append_column("task_slot", _constant(task_slot, pa.int32(), len(rows)))
    return conform(rows.append_column("event_date", utc_date(rows["event_time"])), FLOWS_SCORED)


def shadow(champion: pa.Table, challenger: pa.Table) -> pa.Table:
    """``flows_shadow`` rows: ``champion`` (a partition's ``flows_scored`` rows) beside ``challenger``
    (the same records in the same order, scored by the challenger), both verdicts side by side; a
    record the challenger could not score is left out."""
    from schemas.tables import FLOWS_SHADOW, SCORE_COLUMNS

    if champion.num_rows != challenger.num_rows:
        raise TableLayoutError(f"shadow rows: {champion.num_rows} champion rows but {challenger.num_rows} challenger rows")
    kept = ["record_id", "source_id", "device_id", "event_time", "label", "batch_id", "scored_at", "event_date"]
    rows = champion.select(kept)
    for name, column in (("champion_version", "model_version"), ("champion_is_anomaly", "is_anomaly"),
                         ("champion_ensemble_score", "ensemble_score"), ("champion_predicted_class", "predicted_class")):
        rows = rows.append_column(name, champion[column])
    for column in SCORE_COLUMNS:
        rows = rows.append_column(column.name, challenger[column.name])
    return conform(rows.filter(pc.invert(pc.is_valid(challenger[QUARANTINE_REASON]))), FLOWS_SHADOW)


def alerts(scored: pa.Table, explanation: pa.ChunkedArray | pa.Array | None = None) -> pa.Table:
    """The anomalous rows of ``scored`` (flows_scored rows) with ``explanation`` (one per row of
    ``scored``, in its order; null without one)."""
    if explanation is None:
        explanation = pa.nulls(scored.num_rows, pa.string())
    rows = scored.append_column(EXPLANATION, explanation)
    return conform(rows.filter(pc.fill_null(scored["is_anomaly"], False)), ALERTS)


def quarantine(bad: pa.Table, batch_id: int, quarantined_at: datetime) -> pa.Table:
    rows = len(bad)
    ingest = pc.cast(bad[INGEST_TIME], UTC_MICROS)
    ingest_date = utc_date(pc.fill_null(ingest, pa.scalar(quarantined_at, UTC_MICROS)))
    return conform(pa.table({
        "record_id": bad["record_id"], "reason": bad[QUARANTINE_REASON], "raw_value": bad[RAW_VALUE],
        "raw_bytes": bad[RAW_BYTES], "raw_sha256": bad[RAW_SHA256],
        "origin": bad[ORIGIN], "partition": bad[PARTITION], "offset": bad[OFFSET], "ingest_time": ingest,
        "batch_id": _constant(batch_id, pa.int64(), rows),
        "quarantined_at": _constant(quarantined_at, UTC_MICROS, rows),
        "ingest_date": ingest_date,
    }), QUARANTINE)


def traffic_per_minute(scored: pa.Table, batch_id: int) -> pa.Table:
    """One row per (minute, protocol, predicted class and category, anomaly flag, model version)."""
    minutes = pc.floor_temporal(pc.cast(scored["event_time"], UTC_MICROS), unit="minute")
    keyed = pa.table({"minute": minutes, **{key: scored[key] for key in TRAFFIC_KEYS},
                      "ensemble_score": scored["ensemble_score"], "rate": scored["rate"],
                      "tot_size": scored["tot_size"]})
    grouped = keyed.group_by(["minute", *TRAFFIC_KEYS], use_threads=False).aggregate(
        [([], "count_all"), ("ensemble_score", "mean"), ("rate", "mean"), ("tot_size", "sum")])
    return conform(pa.table({
        "minute": grouped["minute"], **{key: grouped[key] for key in TRAFFIC_KEYS},
        "records": grouped["count_all"], "mean_ensemble_score": grouped["ensemble_score_mean"],
        "mean_rate": grouped["rate_mean"], "sum_tot_size": grouped["tot_size_sum"],
        "batch_id": _constant(batch_id, pa.int64(), grouped.num_rows),
    }), TRAFFIC_1M)


SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def devices(scored: pa.Table, batch_id: int) -> pa.Table:
    """One row per device of the batch (records without a device left out): its addresses as last
    seen, first and last event time, records, anomalies, the severity of its latest record and the
    time of its latest anomaly. The devices table merges these rows (jobs.stream.delta_writer)."""
    rows = scored.filter(pc.is_valid(scored["device_id"]))
    if rows.num_rows == 0:
        return empty(DEVICES)
    ordered = rows.sort_by([("device_id", "ascending"), ("event_time", "ascending")])
    anomaly_time = pc.if_else(pc.fill_null(ordered["is_anomaly"], False), ordered["event_time"],
                              pa.scalar(None, ordered["event_time"].type))
    keyed = pa.table({"device_id": ordered["device_id"], "event_time": ordered["event_time"],
                      "anomaly": pc.cast(pc.fill_null(ordered["is_anomaly"], False), pa.int64()),
                      "anomaly_time": anomaly_time})
    grouped = keyed.group_by("device_id", use_threads=False).aggregate(
        [("event_time", "min"), ("event_time", "max"), ([], "count_all"), ("anomaly", "sum"), ("anomaly_time", "max")])
    # the latest record of each device (rows are sorted by device, then time): its addresses and severity
    ids = ordered["device_id"].to_numpy(zero_copy_only=False)
    last = [i for i in range(len(ids)) if i == len(ids) - 1 or ids[i + 1] != ids[i]]
    latest = ordered.take(last)
    by_device = {d: i for i, d in enumerate(latest["device_id"].to_pylist())}
    order = [by_device[d] for d in grouped["device_id"].to_pylist()]
    latest = latest.take(order)
    return conform(pa.table({
        "device_id": grouped["device_id"], "device_mac": latest["device_mac"], "device_ip": latest["device_ip"],
        "device_vendor": latest["device_vendor"], "first_seen": grouped["event_time_min"],
        "last_seen": grouped["event_time_max"], "records": grouped["count_all"], "anomalies": grouped["anomaly_sum"],
        "last_severity": latest["severity"], "last_anomaly": grouped["anomaly_time_max"],
        "batch_id": _constant(batch_id, pa.int64(), grouped.num_rows),
    }), DEVICES)


def combine_devices(partials: pa.Table) -> pa.Table:
    """The device rows of several tasks of one batch as one row per device (their totals, the widest
    times, the addresses and severity of the latest record, the latest anomaly)."""
    if partials.num_rows == 0:
        return partials
    ordered = partials.sort_by([("device_id", "ascending"), ("last_seen", "ascending")])
    grouped = ordered.group_by("device_id", use_threads=False).aggregate(
        [("first_seen", "min"), ("last_seen", "max"), ("records", "sum"), ("anomalies", "sum"), ("last_anomaly", "max")])
    ids = ordered["device_id"].to_pylist()
    last = [i for i in range(len(ids)) if i == len(ids) - 1 or ids[i + 1] != ids[i]]
    latest = ordered.take(last)
    position = {d: i for i, d in enumerate(latest["device_id"].to_pylist())}
    latest = latest.take([position[d] for d in grouped["device_id"].to_pylist()])
    return conform(pa.table({
        "device_id": grouped["device_id"], "device_mac": latest["device_mac"], "device_ip": latest["device_ip"],
        "device_vendor": latest["device_vendor"], "first_seen": grouped["first_seen_min"],
        "last_seen": grouped["last_seen_max"], "records": grouped["records_sum"], "anomalies": grouped["anomalies_sum"],
        "last_severity": latest["last_severity"], "last_anomaly": grouped["last_anomaly_max"],
        "batch_id": latest["batch_id"]}), DEVICES)


def batch_log(stats: dict[str, object]) -> pa.Table:
    """The one ``batch_log`` row of a micro-batch, from its counts (the columns of the table)."""
    return conform(pa.table({name: [value] for name, value in stats.items()}), BATCH_LOG)
