from datetime import datetime, timezone

from jobs.influx_sink import to_line
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


def test_source_tag_keeps_cardinality_low() -> None:
    assert source_tag("TCP_IP-DoS-TCP_test.pcap.csv:17") == "TCP_IP-DoS-TCP_test.pcap.csv"
    assert source_tag("infusion-pump-3") == "infusion-pump-3"
    assert source_tag(None) == "unknown"


def test_line_protocol_of_a_scored_record() -> None:
    row = {
        "record_id": "r1", "source_id": "pump-3:9", "event_time": datetime(2026, 1, 2, 3, 4, 5),
        "protocol": "TCP", "predicted_class": "DoS-TCP", "predicted_category": "DoS", "is_anomaly": True,
        "severity": "high", "model_version": "v1", "ae_error": 0.5, "if_score": 0.25,
        "clf_attack_proba": 0.75, "ensemble_score": 3.0, "rate": float("inf"), "header_length": 20.0,
        "tot_size": 60.0, "iat": 0.1, "number": 10.0, "protocol_type": 6.0, "label": "DoS-TCP",
    }
    line = to_line(row)
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
