"""Kafka records that expired unread: found by comparing each batch's offsets with where the last
batch ended, per topic and partition.

Each task reports the first and last offset (and the number) of the records it read per Kafka
partition (:func:`task_offsets`); the driver merges them (:func:`merge_offsets`) and
:class:`OffsetTracker` compares the batch's first offset of each partition with the offset after
the last one seen before. A jump is a gap: records deleted by retention (or ``delete_records``)
before the job read them, which Spark's source skips without a trace when
``stream.kafka.fail_on_data_loss`` is false. The offsets expected next are kept in ``batch_log``
(``kafka_offsets``, every partition seen so far), so a restart compares with the last batch before
it; gaps go to the ``kafka_gaps`` table and, as points, to InfluxDB (``schemas.influx``) for the
Grafana alert.

Offsets are taken as contiguous: true for non-transactional producers (those this project uses).
A transactional producer's commit markers occupy offsets too, and would show as small gaps.
Records lost inside one batch's range (never with retention, which deletes from the start of a
partition) are not looked for.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# (topic, partition) -> (first offset, last offset, records)
Ranges = dict[tuple[str, int], tuple[int, int, int]]


@dataclass(frozen=True)
class Gap:
    topic: str
    partition: int
    from_offset: int  # the first offset lost
    to_offset: int    # the last offset lost
    records: int


def task_offsets(table: "pa.Table") -> list[list]:
    """[topic, partition, first offset, last offset, records] per Kafka partition of one task's
    records (every record, quarantined or not); none for records read from files."""
    import pyarrow.compute as pc

    from jobs.stream.parse import OFFSET, ORIGIN, PARTITION

    if table.num_rows == 0 or OFFSET not in table.column_names:
        return []
    kafka = table.select([ORIGIN, PARTITION, OFFSET]).filter(pc.is_valid(table[OFFSET]))
    if kafka.num_rows == 0:
        return []
    grouped = kafka.group_by([ORIGIN, PARTITION], use_threads=False).aggregate(
        [(OFFSET, "min"), (OFFSET, "max"), (OFFSET, "count")])
    return [[row[ORIGIN], int(row[PARTITION]), int(row[f"{OFFSET}_min"]), int(row[f"{OFFSET}_max"]),
             int(row[f"{OFFSET}_count"])] for row in grouped.to_pylist()]


def merge_offsets(reports: list[list]) -> Ranges:
    """The batch's range per (topic, partition), from every task's :func:`task_offsets`."""
    merged: Ranges = {}
    for topic, partition, first, last, count in reports:
        key = (str(topic), int(partition))
        if key in merged:
            low, high, total = merged[key]
            merged[key] = (min(low, first), max(high, last), total + count)
        else:
            merged[key] = (first, last, count)
    return merged


class OffsetTracker:
    """The next offset expected per (topic, partition), as ``batch_log.kafka_offsets`` keeps it:
    ``{"topic": {"partition": next offset}}``."""

    def __init__(self, expected: dict[tuple[str, int], int] | None = None) -> None:
        self.expected = dict(expected or {})

    @classmethod
    def from_json(cls, text: str | None) -> "OffsetTracker":
        if not text:
            return cls()
        return cls({(topic, int(partition)): int(offset)
                    for topic, partitions in json.loads(text).items() for partition, offset in partitions.items()})

    def to_json(self) -> str | None:
        if not self.expected:
            return None
        nested: dict[str, dict[str, int]] = {}
        for (topic, partition), offset in sorted(self.expected.items()):
            nested.setdefault(topic, {})[str(partition)] = offset
        return json.dumps(nested, sort_keys=True)

    def after(self, ranges: Ranges) -> tuple[list[Gap], "OffsetTracker"]:
        """The gaps before this batch's ranges, and the tracker after it (this one is unchanged,
        so a batch that fails before its ``batch_log`` row leaves no trace)."""
        gaps: list[Gap] = []
        expected = dict(self.expected)
        for (topic, partition), (first, last, _) in sorted(ranges.items()):
            previous = expected.get((topic, partition))
            if previous is not None and first > previous:
                gaps.append(Gap(topic, partition, previous, first - 1, first - previous))
            expected[(topic, partition)] = max(previous or 0, last + 1)
        return gaps, OffsetTracker(expected)


def gap_rows(gaps: list[Gap], batch_id: int, app_id: str, detected_at: datetime) -> "pa.Table":
    """The ``kafka_gaps`` rows of a batch's gaps."""
    import pyarrow as pa

    from jobs.stream.table_rows import conform
    from schemas.tables import KAFKA_GAPS

    return conform(pa.Table.from_pylist([{
        "topic": g.topic, "partition": g.partition, "from_offset": g.from_offset, "to_offset": g.to_offset,
        "records": g.records, "batch_id": batch_id, "app_id": app_id, "detected_at": detected_at} for g in gaps],
        schema=pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("from_offset", pa.int64()),
                          ("to_offset", pa.int64()), ("records", pa.int64()), ("batch_id", pa.int64()),
                          ("app_id", pa.string()), ("detected_at", pa.timestamp("us", tz="UTC"))])), KAFKA_GAPS)


def gap_lines(gaps: list[Gap], detected_at: datetime) -> "pa.Array":
    """The ``kafka_gaps`` InfluxDB points (line protocol) of a batch's gaps."""
    import pyarrow as pa

    from jobs.stream.influx_points import encode_points
    from schemas import influx as schema

    when = int(detected_at.timestamp() * 1_000_000) * 1000
    return encode_points(
        schema.GAP_MEASUREMENT,
        {"topic": pa.array([g.topic for g in gaps], pa.string()),
         "partition": pa.array([str(g.partition) for g in gaps], pa.string())},
        {"lost_records": pa.array([float(g.records) for g in gaps], pa.float64()),
         "from_offset": pa.array([float(g.from_offset) for g in gaps], pa.float64()),
         "to_offset": pa.array([float(g.to_offset) for g in gaps], pa.float64())},
        pa.array([when] * len(gaps), pa.int64()))
