"""parse_flows keeps every record: good ones typed, bad ones marked with the reason."""
import json
from datetime import datetime

import pytest

from jobs.stream.parse import parse_flows
from schemas.flow_record import FEATURES, column_name

pytestmark = pytest.mark.spark

GOOD = {name: 1.0 for name in FEATURES} | {
    "record_id": "r1", "source_id": "monitor-7", "event_time": "2026-01-02T03:04:05+00:00", "label": "Benign"}


def message(**changes) -> str:
    record = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record)


CASES = [
    # (raw message, expected reason or None) — reasons written out by hand
    (message(), None),
    (message(Rate=float("inf")), None),
    (message(Std=None), None),
    (message(Rate="2.5"), None),
    (message(extra_field=5), None),
    ("not json at all", "malformed JSON: not a JSON object"),
    ("[1, 2, 3]", "malformed JSON: not a JSON object"),
    (message(**{"Tot sum": "abc"}), "non-numeric features: Tot sum=abc"),
    (message(Rate=True), "non-numeric features: Rate=true"),
    (message(record_id=...), None),  # an id from its origin: kafka:topic-a:0:<offset>
    (message(IAT=..., Min=...), "missing features: Min, IAT"),
    (message(event_time="yesterday"), "event_time is not an ISO-8601 timestamp: yesterday"),
    (message(record_id={"x": 1}), "wrong type: record_id must be a string"),
    (message(record_id="  "), None),
    (message(source_id=["a"]), "wrong type: source_id must be a string"),
    (message(**{"Tot sum": "abc"}, event_time="soon"),
     "event_time is not an ISO-8601 timestamp: soon; non-numeric features: Tot sum=abc"),
    (message(Rate="Infinity", IAT="-Infinity"), None),
    (message(**{"Protocol Type": 1e10}), None),  # scored (the protocol name must not overflow)
    (message().replace('"Rate": 1.0', '"Rate": NaN'), None),
    (message().replace('"Rate": 1.0', '"Rate": 1e400'), None),  # beyond a double: +Infinity
    (message() + " trailing", "trailing data after the JSON object"),
    (message() + message(), "trailing data after the JSON object"),
    (message() + "\n" + message(), "trailing data after the JSON object"),
    (message() + "  \n", None),
    ("{broken", "malformed JSON: not a JSON object"),
    ("", "malformed JSON: not a JSON object"),
    (message().replace('"Rate": 1.0', '"Rate": 1.0, "Rate": 2.0'), None),  # last wins, as in most readers
    (message(**{name: None for name in FEATURES[:7]}), None),  # 7 of 39 missing: imputed
    (message(**{name: None for name in FEATURES[:8]}),
     "too many missing features: 8 of 39 are null or NaN (at most 7 are imputed)"),
    (message(**{name: None for name in FEATURES}),
     "too many missing features: 39 of 39 are null or NaN (at most 7 are imputed)"),
    (message(**{name: "x" for name in FEATURES[:9]})[:60], "malformed JSON: not a JSON object"),
    (message(device_id="mac:b8:27:eb:00:00:01", device_port=1883, peer_port=40000, transport="TCP"), None),
    (message(device_port="1883"), None),  # a port as text is read as the number
    (message(device_port="x"), "wrong type: device_port must be a port number (0-65535)"),
    (message(peer_port=70000), "wrong type: peer_port must be a port number (0-65535)"),
    (message(device_ip={"v4": 1}), "wrong type: device_ip must be a string"),
    (message(source_id="s" * 257), "too long: source_id has 257 characters (at most 256)"),
    (message(source_id="s" * 256), None),
    (message(label="Benign" * 11), "too long: label has 66 characters (at most 64)"),
    (message(source_id="pump\n7"), "control characters in source_id"),
    (message(device_vendor="Acme\x00"), "control characters in device_vendor"),
    (message(label="Benign\u202e"), None),  # not a control character: kept (tags are sanitised downstream)
]


def _raw(spark, messages):
    return spark.createDataFrame(
        [(text, "topic-a", 0, offset, datetime(2026, 5, 5, 5, 5, 5)) for offset, text in enumerate(messages)],
        "raw_value string, origin string, partition int, offset long, ingest_time timestamp")


def test_reasons_and_values(spark) -> None:
    parsed = parse_flows(_raw(spark, [text for text, _ in CASES])).orderBy("offset").collect()
    assert len(parsed) == len(CASES)
    for row, (text, reason) in zip(parsed, CASES):
        assert row["quarantine_reason"] == reason, text
        assert row["raw_value"] == text
        assert row["origin"] == "topic-a"
    assert parsed[0]["record_id"] == "r1" and parsed[0]["source_id"] == "monitor-7"
    assert parsed[0]["event_time"] == datetime(2026, 1, 2, 3, 4, 5)
    assert parsed[0]["protocol_type"] == 1.0 and parsed[0]["tot_sum"] == 1.0
    assert parsed[1]["rate"] == float("inf")
    assert parsed[2]["std"] is None  # an explicit null is a missing measurement: imputed later
    assert parsed[3]["rate"] == 2.5
    device = next(row for row in parsed if row["device_id"])
    assert (device["device_id"], device["device_port"], device["peer_port"], device["transport"]) == (
        "mac:b8:27:eb:00:00:01", 1883, 40000, "TCP")
    assert next(row for row, (text, _) in zip(parsed, CASES) if '"device_port": "1883"' in text)["device_port"] == 1883


def test_strict_mode_quarantines_unknown_fields(spark) -> None:
    parsed = parse_flows(_raw(spark, [message(extra_field=5, zeta=1), message(extra=1, event_time="soon"),
                                      message()]), strict=True).orderBy("offset").collect()
    assert [row["quarantine_reason"] for row in parsed] == [
        "unknown fields: extra_field, zeta",
        "event_time is not an ISO-8601 timestamp: soon; unknown fields: extra",
        None]


def test_clean_and_rechecked_records_give_the_same_values(spark) -> None:
    """A record parsed straight into types and one that takes the second (map) parse because one
    feature is null carry the same values for every other feature."""
    values = {name: float(i) + 0.5 for i, name in enumerate(FEATURES)}
    clean = message(**values)
    rechecked = message(**(values | {"Std": None}))
    rows = parse_flows(_raw(spark, [clean, rechecked])).orderBy("offset").collect()
    assert rows[0]["quarantine_reason"] is None and rows[1]["quarantine_reason"] is None
    for name, expected in values.items():
        column = column_name(name)
        assert rows[0][column] == expected
        assert rows[1][column] == (None if name == "Std" else expected)


def test_missing_event_time_falls_back_to_ingest_time(spark) -> None:
    parsed = parse_flows(_raw(spark, [message(event_time=...)])).first()
    assert parsed["quarantine_reason"] is None
    assert parsed["event_time"] == datetime(2026, 5, 5, 5, 5, 5)


def test_duplicate_keys_quarantine_in_strict_mode(spark) -> None:
    duplicated = message().replace('"Rate": 1.0', '"Rate": 1.0, "Rate": 2.0').replace('"IAT": 1.0', '"IAT": 1, "IAT": 3')
    parsed = parse_flows(_raw(spark, [duplicated]), strict=True).first()
    assert parsed["quarantine_reason"] == "duplicate keys: IAT, Rate"


def test_bytes_that_are_no_message(spark) -> None:
    """Kafka hands bytes: a tombstone (no value) and bytes that are not UTF-8 are quarantined."""
    from jobs.stream.parse import kafka_to_raw

    good = message().encode()
    rows = [(None, "t", 0, 0, datetime(2026, 5, 5)), (b"\xff\xfe" + good, "t", 0, 1, datetime(2026, 5, 5)),
            (good.replace(b'"r1"', b'"\xc3\x28"'), "t", 0, 2, datetime(2026, 5, 5)), (good, "t", 0, 3, datetime(2026, 5, 5))]
    kafka = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
    reasons = [row["quarantine_reason"] for row in parse_flows(kafka_to_raw(kafka)).orderBy("offset").collect()]
    assert reasons == ["empty message: no value (a Kafka tombstone?)",
                       "invalid UTF-8: a JSON message must be UTF-8 text",
                       "invalid UTF-8: a JSON message must be UTF-8 text", None]


def test_event_times_out_of_bounds_are_replaced_and_kept_as_claimed(spark) -> None:
    from datetime import timedelta, timezone

    from jobs.stream.parse import bound_event_time

    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    ingest = now - timedelta(hours=1)
    cases = [  # (event_time sent, ingest time) -> (event_time kept, claimed_event_time)
        ((now - timedelta(days=2)).isoformat() + "Z", ingest),
        ("0001-01-01T00:00:00Z", ingest),
        ("9999-12-31T23:59:59Z", ingest),
        ((ingest + timedelta(minutes=9)).isoformat() + "Z", ingest),
        ((ingest + timedelta(minutes=11)).isoformat() + "Z", ingest),
        ((now - timedelta(days=2)).isoformat() + "Z", datetime(9999, 1, 1)),  # a producer's Kafka timestamp
    ]
    raw = spark.createDataFrame(
        [(message(event_time=sent), "t", 0, i, ingest_time) for i, (sent, ingest_time) in enumerate(cases)],
        "raw_value string, origin string, partition int, offset long, ingest_time timestamp")
    rows = bound_event_time(parse_flows(raw), timedelta(days=3), timedelta(minutes=10)).orderBy("offset").collect()
    kept = [(r["event_time"], r["claimed_event_time"]) for r in rows]
    assert kept[0] == (now - timedelta(days=2), None)
    assert kept[1] == (ingest, "0001-01-01T00:00:00.000000Z")
    assert kept[2] == (ingest, "9999-12-31T23:59:59.000000Z")
    assert kept[3] == (ingest + timedelta(minutes=9), None)
    assert kept[4] == (ingest, (ingest + timedelta(minutes=11)).isoformat(timespec="microseconds") + "Z")
    assert kept[5] == (now - timedelta(days=2), None)  # within bounds of the job's clock, not the bogus ingest time


def test_a_record_without_an_id_takes_one_from_its_origin(spark) -> None:
    """The seed's producer sends a CSV row's columns and nothing else: scored, not quarantined, with
    an id that a replay of the same input gives again."""
    import hashlib

    from jobs.stream.parse import origin_record_id

    bare = json.dumps({name: 1.0 for name in FEATURES})  # no record_id, source_id or event_time
    kafka = parse_flows(_raw(spark, [bare, message(record_id="  ")])).orderBy("offset").collect()
    assert [(r["quarantine_reason"], r["record_id"]) for r in kafka] == [
        (None, "kafka:topic-a:0:0"), (None, "kafka:topic-a:0:1")]
    lines = spark.createDataFrame([(bare, "flows-1.json", None, None, datetime(2026, 5, 5, 5, 5, 5))],
                                  "raw_value string, origin string, partition int, offset long, ingest_time timestamp")
    [row] = lines.select(origin_record_id().alias("id")).collect()
    assert row["id"] == "file:flows-1.json:" + hashlib.sha256(bare.encode()).hexdigest()[:32]
