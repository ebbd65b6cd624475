"""Drift in the running stream (real Kafka -> Spark -> Delta and a real InfluxDB), on real traffic:
an hour of CICIoMT2024's benign held-out rows (the dataset the v3 bundle's reference comes from,
rows it never learnt from) and the next hour the MQTT testbed's benign captures through the sensor
(another site's normal traffic: shifted). The first hour stays below the threshold everywhere, the
second passes it for the score and for features, per device group as well; the hour's figures add
up across micro-batches; InfluxDB has the points and Grafana's drift rule, evaluated on them, fires
for the shifted hour only."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from jobs.config import load_config
from jobs.stream.score_stream import start_query
from tests.helpers.influx import new_influx_bucket, wait_for_total
from tests.helpers.streaming import BUNDLE, BUNDLE_VERSION, read_table, stream_conf
from tests.services.influxdb_server import ORG, TOKEN

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow]

MIN_RECORDS = 200  # the shifted hour holds ~235 sensor windows


def _benign_held_out(shared_data) -> list[tuple[str, str]]:
    """CICIoMT2024's benign rows the v3 bundle never learnt from (its split's test rows), as the replayer sends them."""
    from jobs.ops.replay import ReplayOptions, iter_messages
    from models.bundle import read_manifest
    from models.training.datasets import load_flows_pandas
    from models.training.split import TEST, SplitConfig, split_frame

    frame = load_flows_pandas([shared_data / "ciciomt2024" / "Benign_test.pcap.csv"])
    split = SplitConfig.from_description(read_manifest(BUNDLE)["split"])
    held_out = frame[split_frame(frame, split).eq(TEST)]
    return [(key, json.dumps(message)) for key, message in iter_messages(held_out, ReplayOptions(rate=0))]


def _mqtt_testbed_benign(shared_data) -> list[tuple[str, str]]:
    """The MQTT testbed's benign captures through the sensor (10-packet windows, devices named)."""
    from jobs.sensor.command import capture_records
    from jobs.sensor.records import json_lines

    captures = sorted((shared_data / "pcap" / "mqtt-testbed-labelled").glob("benign_*.pcap"))
    records, _ = capture_records(captures)
    return [(record["device_id"], line) for record, line in
            zip(records.to_dict(orient="records"), json_lines(records))]


def _at(messages: list[tuple[str, str]], hour: datetime) -> list[tuple[str, str]]:
    """The messages with their event times spread over ``hour`` (a second apart)."""
    out = []
    for index, (key, text) in enumerate(messages):
        message = json.loads(text)
        message["event_time"] = (hour + timedelta(seconds=index % 3600)).isoformat()
        out.append((key, json.dumps(message)))
    return out


def _produce(bootstrap: str, topic: str, messages: list[tuple[str, str]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0


def _alert_value(influx_url: str, bucket: str, start: datetime, stop: datetime) -> list[float]:
    """Grafana's drift rule query (the committed provisioning) over [start, stop): its values."""
    from influxdb_client import InfluxDBClient

    from jobs.grafana import alerts as grafana_alerts
    from jobs.grafana.command import render

    doc = yaml.safe_load(render()[grafana_alerts.ALERTING_FILE])
    rule = next(r for r in doc["groups"][0]["rules"] if r["uid"] == grafana_alerts.DRIFT_RULE_UID)
    query = rule["data"][0]["model"]["query"].replace("$INFLUXDB_BUCKET", bucket)
    prelude = f"v = {{timeRangeStart: {start:%Y-%m-%dT%H:%M:%SZ}, timeRangeStop: {stop:%Y-%m-%dT%H:%M:%SZ}}}\n"
    with InfluxDBClient(url=influx_url, token=TOKEN, org=ORG) as client:
        return [r.get_value() for t in client.query_api().query(prelude + query) for r in t.records]


def test_shifted_traffic_drifts_and_unshifted_traffic_does_not(spark, kafka_broker, influxdb, shared_data, tmp_path,
                                                                monkeypatch, caplog) -> None:
    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", TOKEN)
    topic = "flows-drift"
    kafka_broker.create_topic(topic, partitions=2)
    bucket = new_influx_bucket(influxdb, "drift")
    now = datetime.now(timezone.utc)
    unshifted_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    shifted_hour = unshifted_hour + timedelta(hours=1)
    unshifted = _at(_benign_held_out(shared_data), unshifted_hour)
    shifted = _at(_mqtt_testbed_benign(shared_data), shifted_hour)
    assert len(unshifted) > 600 and len(shifted) >= MIN_RECORDS
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=400, influx_url=influxdb.url,
                       bucket=bucket)
    raw = yaml.safe_load(conf.read_text())
    raw["drift"] = {"threshold": 0.2, "min_records": MIN_RECORDS, "group_by": "vendor"}
    conf.write_text(yaml.safe_dump(raw))
    _produce(kafka_broker.bootstrap, topic, unshifted + shifted)

    with caplog.at_level(logging.WARNING, logger="jobs.drift.hourly"):
        query = start_query(spark, load_config(conf), available_now=True)
        query.awaitTermination(300)
    assert query.exception() is None

    scored = read_table(spark, tmp_path, "flows_scored")
    assert scored.count() == len(unshifted) + len(shifted)
    assert read_table(spark, tmp_path, "batch_log").count() >= 3  # the hours fill over several batches
    from deltalake import DeltaTable

    rows = {(r["hour"], r["device_group"], r["measure"]): r  # read with delta-rs: hours in UTC
            for r in DeltaTable(str(tmp_path / "delta" / "drift")).to_pyarrow_table().to_pylist()}
    assert {version for version in (r["model_version"] for r in rows.values())} == {BUNDLE_VERSION}
    for row in rows.values():  # every row's counts are the records it says, the figures as configured
        assert sum(row["bin_counts"]) == row["records"]
        assert row["drifted"] == (row["records"] >= MIN_RECORDS and row["psi"] >= 0.2)

    # unshifted: the dataset's own benign traffic, in the group of every record only (no device named)
    before = {measure: row for (hour, group, measure), row in rows.items() if hour == unshifted_hour}
    assert {group for (hour, group, _) in rows if hour == unshifted_hour} == {"all"}
    assert before["ensemble_score"]["records"] == len(unshifted)
    assert before["ensemble_score"]["psi"] < 0.1
    assert max(row["psi"] for row in before.values()) < 0.2 and not any(row["drifted"] for row in before.values())

    # shifted: another site's normal traffic, every record and each vendor's group
    after = {(group, measure): row for (hour, group, measure), row in rows.items() if hour == shifted_hour}
    score = after[("all", "ensemble_score")]
    assert score["records"] == len(shifted) and score["psi"] > 1.0 and score["drifted"]
    assert sum(row["drifted"] for (group, _), row in after.items() if group == "all") >= 5
    vendors = {group for group, _ in after if group.startswith("vendor:")}
    assert vendors and sum(after[(g, "ensemble_score")]["records"] for g in vendors) == len(shifted)
    times = DeltaTable(str(tmp_path / "delta" / "flows_scored")).to_pandas(columns=["event_time"])["event_time"]
    per_hour = times.dt.floor("h").value_counts().to_dict()
    assert {hour.to_pydatetime(): count for hour, count in per_hour.items()} == {
        unshifted_hour: len(unshifted), shifted_hour: len(shifted)}

    # the job said so once per group that drifted, for the shifted hour only (the testbed's MACs are in no
    # vendor registry: its devices make the group vendor:unknown)
    warned = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("drift: hour"))
    hour = f"{shifted_hour:%Y-%m-%d %H}:00Z"
    assert [w.split(",")[:2] for w in warned] == [[f"drift: hour {hour}", " devices all"],
                                                  [f"drift: hour {hour}", " devices vendor:unknown"]], warned

    # InfluxDB holds the figures (sent from the driver's own thread); Grafana's drift rule fires on the
    # shifted hour and not on the unshifted one
    total = sum(row["records"] for row in rows.values())
    assert wait_for_total(influxdb, bucket, "model_drift", "records", total) == total
    assert _alert_value(influxdb.url, bucket, unshifted_hour, shifted_hour) == []
    fired = _alert_value(influxdb.url, bucket, unshifted_hour, now)
    assert fired == [pytest.approx(max(row["psi"] for row in after.values() if row["drifted"]))]
