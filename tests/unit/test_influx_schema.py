from datetime import datetime, timezone

import pandas as pd

from tests.helpers.influx import to_lines
from schemas.influx import point_time_ns, source_tag


def test_point_time_is_deterministic_and_within_the_millisecond() -> None:
    event = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    first = point_time_ns(event, "record-a")
    assert first == point_time_ns(event, "record-a")
    assert point_time_ns(event, "record-b") != first
    millis = 1767323045123  # 2026-01-02T03:04:05.123Z, worked out by hand
    assert millis * 1_000_000 <= first < (millis + 1) * 1_000_000
    # a naive datetime is UTC (the job's session time zone)
    assert point_time_ns(event.replace(tzinfo=None), "record-a") == first


def test_offsets_of_many_records_are_those_of_each_record() -> None:
    from schemas.influx import record_offset_ns, record_offsets_ns

    ids = ["record-a", "record-b", "", "é-ü-中", "x" * 500, *[f"r{i}" for i in range(100)]]
    offsets = record_offsets_ns(ids)
    assert offsets.dtype.kind == "i" and offsets.tolist() == [record_offset_ns(r) for r in ids]
    assert all(0 <= o < 1_000_000 for o in offsets)
    assert record_offsets_ns([]).tolist() == []


def test_source_tag_keeps_cardinality_low() -> None:
    assert source_tag("TCP_IP-DoS-TCP_test.pcap.csv:17") == "TCP_IP-DoS-TCP_test.pcap.csv"
    assert source_tag("infusion-pump-3") == "infusion-pump-3"
    assert source_tag(None) == "unknown"


def test_source_tag_of_an_untrusted_source_id_is_safe_and_bounded() -> None:
    assert source_tag("a\\") == "a_"  # a trailing backslash would escape the separator after the tag
    assert source_tag("pump 3,ward=7\nx") == "pump_3_ward_7_x"
    assert source_tag("10.0.0.7/aa-bb@ward+1.x") == "10.0.0.7/aa-bb@ward+1.x"
    assert source_tag("é🩺") == "__"
    assert source_tag("x" * 500) == "x" * 64
    assert source_tag(":17") == "unknown"


def test_line_protocol_of_a_scored_record() -> None:
    row = {
        "record_id": "r1", "source_id": "pump-3:9", "event_time": datetime(2026, 1, 2, 3, 4, 5),
        "protocol": "TCP", "predicted_class": "DoS-TCP", "predicted_category": "DoS", "is_anomaly": True,
        "severity": "high", "model_version": "v1", "ae_error": 0.5, "if_score": 0.25,
        "clf_attack_proba": 0.75, "ensemble_score": 3.0, "rate": float("inf"), "header_length": 20.0,
        "tot_size": 60.0, "iat": 0.1, "number": 10.0, "protocol_type": 6.0, "label": "DoS-TCP",
    }
    line, = to_lines(pd.DataFrame([row]))
    measurement_and_tags, fields, timestamp = line.split(" ")
    assert measurement_and_tags.startswith("flow_scores,")
    tags = dict(item.split("=") for item in measurement_and_tags.split(",")[1:])
    assert tags == {"is_anomaly": "true", "model_version": "v1", "predicted_category": "DoS",
                    "predicted_class": "DoS-TCP", "protocol": "TCP", "severity": "high", "source": "pump-3"}
    values = dict(item.split("=") for item in fields.split(","))
    assert float(values["ae_error"]) == 0.5 and float(values["ensemble_score"]) == 3.0
    assert "i" not in values["ensemble_score"]  # a float field, never an integer one
    assert "rate" not in values  # inf is not a valid InfluxDB float: left out, not clipped
    assert values["label"] == '"DoS-TCP"'
    assert int(timestamp) == point_time_ns(row["event_time"], "r1")


def test_missing_values_and_many_rows() -> None:
    """Null tags read ``unknown``, null/NaN fields and an empty label are left out, and every row's
    time is the deterministic one of ``point_time_ns`` (exact to the nanosecond)."""
    rows = pd.DataFrame([{
        "record_id": f"r{i}", "source_id": None if i == 1 else f"pump-{i}:{i}",
        "event_time": datetime(2026, 1, 2, 3, 4, 5, 123456 + i), "protocol": None if i == 2 else "UDP",
        "predicted_class": "Benign", "predicted_category": "Benign", "is_anomaly": False, "severity": "",
        "model_version": "v1", "ae_error": float("nan") if i == 0 else 0.5, "if_score": 0.25,
        "clf_attack_proba": None, "ensemble_score": 1.0, "rate": 2.0, "header_length": 20.0,
        "tot_size": 60.0, "iat": 0.1, "number": 10.0, "protocol_type": 17.0, "label": "" if i == 0 else None,
    } for i in range(3)])
    lines = to_lines(rows)
    assert len(lines) == 3
    for i, line in enumerate(lines):
        head, fields, timestamp = line.split(" ")
        tags = dict(item.split("=") for item in head.split(",")[1:])
        values = dict(item.split("=") for item in fields.split(","))
        assert tags["severity"] == "unknown" and tags["is_anomaly"] == "false"
        assert tags["source"] == ("unknown" if i == 1 else f"pump-{i}")
        assert tags["protocol"] == ("unknown" if i == 2 else "UDP")
        assert "clf_attack_proba" not in values and "label" not in values
        assert ("ae_error" in values) == (i != 0)
        assert int(timestamp) == point_time_ns(rows["event_time"][i].to_pydatetime(), f"r{i}")
        assert int(timestamp) // 1_000_000 == 1767323045123 + (456 + i) // 1000
