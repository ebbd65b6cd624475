"""The per-device aggregates a task sends InfluxDB (``device_traffic``): the same numbers as a
row-by-row count of its records, times that keep every task's and batch's partial point apart, and
the very same points when a batch is replayed."""
from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from jobs.config import ConfigError, InfluxConfig, config_from_mapping
from jobs.stream.influx_points import aggregate_columns, encode_aggregates
from schemas import influx as schema
from tests.helpers.influx import parse_line

INTERVAL_NS = 10_000_000_000
START = datetime(2026, 3, 4, 5, 6, 0, tzinfo=timezone.utc)


def _rows(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "record_id": f"r{i}", "source_id": rng.choice(["pump-1:3", "pump 2,ward=7:9", None, "", "monitor-5"]),
            "device_id": rng.choice([None, None, "", "infusion-pump-3"]),
            "event_time": START + timedelta(milliseconds=rng.randrange(0, 35_000)),
            "protocol": rng.choice(["TCP", "UDP", None]), "model_version": rng.choice(["v3", "v4"]),
            "label": rng.choice(["Benign", "DoS-TCP", None, "", "no such class", "x\\ y=1"]),
            "predicted_class": rng.choice(["Benign", "Benign", "DoS-TCP", None]),
            "is_anomaly": rng.choice([True, False, False, None]),
            "ensemble_score": rng.choice([rng.uniform(-2, 9), None, math.nan]),
            "ae_error": rng.uniform(0, 1), "if_score": rng.uniform(0, 1), "clf_attack_proba": rng.choice([0.25, None]),
            "rate": rng.choice([rng.uniform(0, 1e5), math.inf, -math.inf, math.nan, None]),
            "tot_size": float(rng.randrange(0, 1500)),
        })
    return rows


def _ns(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


def _reference(rows: list[dict], batch_id: int, partition: int) -> dict[tuple, dict[str, float]]:
    """The points counted record by record (plain Python, no Arrow): (time, tags) -> fields."""
    def finite(value) -> bool:
        return value is not None and math.isfinite(value)

    points: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        time = _ns(row["event_time"]) // INTERVAL_NS * INTERVAL_NS + (batch_id * 4096 + partition) % INTERVAL_NS
        tags = (("label", schema.label_tag(row["label"])), ("model_version", row["model_version"] or "unknown"),
                ("protocol", row["protocol"] or "unknown"),
                ("source", schema.source_tag(row["source_id"], row["device_id"])))
        point = points[(time, tags)]
        point["records"] += 1
        point["anomalies"] += 1 if row["is_anomaly"] else 0
        benign = row["predicted_class"] == "Benign"
        point["benign_records"] += 1 if benign else 0
        point["rate_records"] += 1 if finite(row["rate"]) else 0
        point["benign_rate_records"] += 1 if benign and finite(row["rate"]) else 0
        sums = {"ensemble_score_sum": row["ensemble_score"], "rate_sum": row["rate"], "tot_size_sum": row["tot_size"]}
        if benign:
            sums["benign_rate_sum"] = row["rate"]
            sums["benign_rate_sq_sum"] = row["rate"] ** 2 if finite(row["rate"]) else None
        for name, value in sums.items():
            if finite(value):
                point[name] += value
        maxima = {"ensemble_score_max": row["ensemble_score"], "ae_error_max": row["ae_error"],
                  "if_score_max": row["if_score"], "clf_attack_proba_max": row["clf_attack_proba"],
                  "rate_max": row["rate"], "last_seen": _ns(row["event_time"]) / 1e9}
        for name, value in maxima.items():
            if finite(value):
                point[name] = max(point.get(name, -math.inf), value)
    return {key: dict(fields) for key, fields in points.items()}


def _encoded(rows: list[dict], batch_id: int, partition: int) -> dict[tuple, dict[str, float]]:
    lines = encode_aggregates(pa.Table.from_pylist(rows), INTERVAL_NS, batch_id, partition).to_pylist()
    points = {}
    for line in lines:
        measurement, tags, fields, time = parse_line(line.rstrip("\n"))
        assert measurement == schema.AGGREGATE_MEASUREMENT
        points[(time, tags)] = fields
    assert len(points) == len(lines)
    return points


def test_aggregates_equal_the_records_counted_one_by_one() -> None:
    rows = _rows(600)
    expected, actual = _reference(rows, 12, 3), _encoded(rows, 12, 3)
    assert actual.keys() == expected.keys()
    for key, fields in expected.items():
        assert actual[key].keys() == fields.keys(), key
        for name, value in fields.items():
            assert actual[key][name] == pytest.approx(value, rel=1e-12), (key, name)
    assert sum(f["records"] for f in actual.values()) == 600
    assert {tag for _, tags in actual for tag in tags} >= {("source", "unknown"), ("source", "pump_2_ward_7"),
                                                            ("label", "other"), ("label", "unknown")}


def test_every_field_of_the_schema_is_written_and_combined_by_sum_or_max() -> None:
    columns = aggregate_columns(pa.Table.from_pylist(_rows(50)), INTERVAL_NS, 0, 0)
    assert set(columns) == {*schema.AGGREGATE_TAGS, *schema.AGGREGATE_FIELDS, "_time"}
    assert set(schema.AGGREGATE_FIELDS.values()) == {"sum", "max"}
    assert all(schema.AGGREGATE_FIELDS[name] == "max" for name in schema.AGGREGATE_FIELDS if name.endswith("_max"))


def test_partial_points_of_tasks_and_batches_keep_apart_and_a_replay_writes_the_same() -> None:
    rows = _rows(200, seed=11)
    times = {}
    for batch_id in (0, 1, 2, 3, 4095, 4096, 10**6):
        for partition in (0, 1, 2, 31, 4095):
            points = _encoded(rows, batch_id, partition)
            for time, tags in points:
                assert (time, tags) not in times, f"{(batch_id, partition)} collides with {times[(time, tags)]}"
                times[(time, tags)] = (batch_id, partition)
                assert 0 <= time - _ns(START) < 4 * INTERVAL_NS  # within the rows' 4 intervals
    assert _encoded(rows, 7, 5) == _encoded(rows, 7, 5)  # a replayed task: the same points, overwritten


def test_the_uniqueness_bound() -> None:
    """Partials of batches fewer than interval_ns // 4096 apart never share a time; the offset stays
    inside the interval; 4096 partitions are told apart."""
    bound = INTERVAL_NS // schema.PARTITION_SLOTS
    assert bound == 2_441_406
    for first in (0, 123_456_789):
        offsets = {schema.aggregate_offset_ns(first + step, partition, INTERVAL_NS)
                   for step in (0, 1, bound // 2, bound - 1) for partition in (0, 1, 4095)}
        assert len(offsets) == 12 and all(0 <= o < INTERVAL_NS for o in offsets)
    assert len({schema.aggregate_offset_ns(9, p, INTERVAL_NS) for p in range(4096)}) == 4096


def test_no_rows_no_points() -> None:
    assert len(encode_aggregates(pa.Table.from_pylist(_rows(3)).slice(0, 0), INTERVAL_NS, 0, 0)) == 0


def test_labels_keep_the_series_bounded() -> None:
    assert schema.label_tag("DDoS-UDP") == "DDoS-UDP"
    assert schema.label_tag("anything at all, 10,000 times over") == "other"
    assert schema.label_tag("") == schema.label_tag(None) == "unknown"


def test_configuration_of_the_points() -> None:
    config = config_from_mapping({"influxdb": {"record_points": "all", "aggregate_interval": "1 minute"}})
    assert config.influxdb.record_points == "all" and config.influxdb.aggregate_interval_ns == 60 * 10**9
    default = InfluxConfig()
    assert default.record_points == "anomalies" and default.aggregate_interval_ns == INTERVAL_NS
    for bad in ({"record_points": "benign"}, {"aggregate_interval": "1.5s"}, {"aggregate_interval": "0s"},
                {"aggregate_interval": "2h"}, {"aggregate_interval": "soon"}):
        with pytest.raises(ConfigError, match="influxdb"):
            config_from_mapping({"influxdb": bad})
