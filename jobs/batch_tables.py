"""The rows each Delta table gets from one micro-batch, built on the driver from the batch's
scored Arrow table (pure pyarrow: no Spark, no I/O).

The input is what :func:`jobs.sinks.scored_batch` collects: every parsed record with
``quarantine_reason`` (null for a good record), ``raw_value`` (kept for quarantined records only),
its origin, its features and the score fields. Dates and minutes are taken in UTC.
"""
from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from jobs.transforms import (INGEST_TIME, OFFSET, ORIGIN, PARTITION, QUARANTINE_REASON, RAW_BYTES, RAW_SHA256,
                            RAW_VALUE)

UTC_MICROS = pa.timestamp("us", tz="UTC")
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


def utc_date(times: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(pc.cast(times, UTC_MICROS), pa.date32())


def split(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(good records, quarantined records) of a collected batch."""
    bad = pc.is_valid(batch[QUARANTINE_REASON])
    return batch.filter(pc.invert(bad)), batch.filter(bad)


def flows_scored(good: pa.Table, batch_id: int, scored_at: datetime) -> pa.Table:
    rows = good.drop_columns([QUARANTINE_REASON, RAW_VALUE, RAW_BYTES, RAW_SHA256])
    rows = rows.append_column("batch_id", _constant(batch_id, pa.int64(), len(rows)))
    rows = rows.append_column("scored_at", _constant(scored_at, UTC_MICROS, len(rows)))
    return in_utc(rows.append_column("event_date", utc_date(rows["event_time"])))


def alerts(scored: pa.Table) -> pa.Table:
    return scored.filter(pc.fill_null(scored["is_anomaly"], False))


def quarantine(bad: pa.Table, batch_id: int, quarantined_at: datetime) -> pa.Table:
    rows = len(bad)
    ingest = pc.cast(bad[INGEST_TIME], UTC_MICROS)
    ingest_date = utc_date(pc.fill_null(ingest, pa.scalar(quarantined_at, UTC_MICROS)))
    return in_utc(pa.table({
        "record_id": bad["record_id"], "reason": bad[QUARANTINE_REASON], "raw_value": bad[RAW_VALUE],
        "raw_bytes": bad[RAW_BYTES], "raw_sha256": bad[RAW_SHA256],
        "origin": bad[ORIGIN], "partition": bad[PARTITION], "offset": bad[OFFSET], "ingest_time": ingest,
        "batch_id": _constant(batch_id, pa.int64(), rows),
        "quarantined_at": _constant(quarantined_at, UTC_MICROS, rows),
        "ingest_date": ingest_date,
    }))


def traffic_per_minute(scored: pa.Table, batch_id: int) -> pa.Table:
    """One row per (minute, protocol, predicted class and category, anomaly flag, model version)."""
    minutes = pc.floor_temporal(pc.cast(scored["event_time"], UTC_MICROS), unit="minute")
    keyed = pa.table({"minute": minutes, **{key: scored[key] for key in TRAFFIC_KEYS},
                      "ensemble_score": scored["ensemble_score"], "rate": scored["rate"],
                      "tot_size": scored["tot_size"]})
    grouped = keyed.group_by(["minute", *TRAFFIC_KEYS], use_threads=False).aggregate(
        [([], "count_all"), ("ensemble_score", "mean"), ("rate", "mean"), ("tot_size", "sum")])
    return in_utc(pa.table({
        "minute": grouped["minute"], **{key: grouped[key] for key in TRAFFIC_KEYS},
        "records": grouped["count_all"], "mean_ensemble_score": grouped["ensemble_score_mean"],
        "mean_rate": grouped["rate_mean"], "sum_tot_size": grouped["tot_size_sum"],
        "batch_id": _constant(batch_id, pa.int64(), grouped.num_rows),
    }))
