"""The sensor feeds the streaming job: a real capture -> records (files, or a real Kafka broker keyed
by device) -> the job -> Delta, every record scored, none quarantined, each naming its device; and
the offline report works on every capture of ../shared/data/pcap."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.config import config_from_mapping
from tests.helpers.streaming import BUNDLE, run_to_end

CAPTURE = "pcap/iomt-testbed-benign/capture-07062023-114652.pcap"  # Linux cooked v2, one hour, 19,604 packets


def _config(tmp_path: Path, source: dict) -> object:
    return config_from_mapping({"stream": {
        **source, "tables_dir": str(tmp_path / "delta"), "trigger": "availableNow", "model_dir": str(BUNDLE),
        "event_time_max_past": "3650 days"}})  # the capture is from 2023: its records keep their own times


def _tables(tmp_path: Path, name: str):
    from deltalake import DeltaTable

    return DeltaTable(str(tmp_path / "delta" / name)).to_pyarrow_table().to_pandas()


def _check_scored(tmp_path: Path, records: int) -> None:
    scored = _tables(tmp_path, "flows_scored")
    assert len(scored) == records
    assert len(_tables(tmp_path, "quarantine")) == 0
    assert scored["device_id"].notna().all() and (scored["source_id"] == scored["device_id"]).all()
    assert scored["device_id"].str.match(r"^(mac|ip):").all()
    assert scored["claimed_event_time"].isna().all()
    assert scored["event_time"].dt.year.eq(2023).all()
    macs = scored.dropna(subset=["device_mac"])
    assert len(macs) > 0 and (macs["device_id"] == "mac:" + macs["device_mac"]).all()
    assert scored["device_port"].dropna().between(0, 65535).all()
    devices = _tables(tmp_path, "devices").set_index("device_id")
    per_device = scored.groupby("device_id")
    assert set(devices.index) == set(per_device.groups)
    assert (devices["records"] == per_device.size()).all()
    assert (devices["anomalies"] == per_device["is_anomaly"].sum()).all()
    assert (devices["last_seen"] == per_device["event_time"].max()).all()
    alerts = _tables(tmp_path, "alerts")
    assert set(alerts["record_id"]) == set(scored.loc[scored["is_anomaly"], "record_id"])
    assert alerts["device_id"].notna().all()  # an alert names its device


@pytest.mark.spark
@pytest.mark.slow
def test_a_real_capture_through_files_into_the_job(spark, shared_data, tmp_path, monkeypatch) -> None:
    incoming = tmp_path / "incoming"
    assert main(["sensor", "--pcap", str(shared_data / CAPTURE), "--to-dir", str(incoming)]) == 0
    lines = [json.loads(line) for path in sorted(incoming.glob("*.json")) for line in path.read_text().splitlines()]
    assert len({line["record_id"] for line in lines}) == len(lines) > 1000
    run_to_end(spark, _config(tmp_path, {"source": "files", "files": {"path": str(incoming)}}))
    _check_scored(tmp_path, len(lines))
    _check_dashboard(tmp_path, monkeypatch)
    _check_baseline_from_a_time_range(tmp_path)


def _check_baseline_from_a_time_range(tmp_path: Path) -> None:
    """``iomt-ad baseline --from --to`` learns from the rows flows_scored holds for the range."""
    from models.bundle import load_bundle

    scored = _tables(tmp_path, "flows_scored")
    low, high = scored["event_time"].min(), scored["event_time"].max()
    middle = low + (high - low) / 2
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"stream:\n  tables_dir: {tmp_path / 'delta'}\n")
    out = tmp_path / "v3-site"
    assert main(["baseline", "--from", low.isoformat(), "--to", middle.isoformat(), "--conf", str(conf),
                 "--out", str(out)]) == 0
    fit = load_bundle(out).manifest["site_baseline"]
    in_range = int(((scored["event_time"] >= low) & (scored["event_time"] < middle)).sum())
    assert sum(fit["site_rows"].values()) == in_range
    assert fit["site_data"]["from"] == low.isoformat() and fit["site_data"]["flows_scored"].endswith("flows_scored")


def _check_dashboard(tmp_path: Path, monkeypatch) -> None:
    """The operator dashboard lists the devices and names the device of each alert."""
    from streamlit.testing.v1 import AppTest

    from jobs.dashboard import APP, data

    settings = data.DashboardSettings(tables_dir=tmp_path / "delta", model_dir=BUNDLE, refresh_seconds=3600,
                                      window_minutes=120)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    assert [h.value for h in app.subheader] == ["Devices", "Recent alerts", "Drift from the model's reference",
                                                "Incidents"]
    devices, alerts = app.dataframe[0].value, app.dataframe[1].value
    assert set(devices["device_id"]) <= set(_tables(tmp_path, "devices")["device_id"]) and len(devices) > 0
    assert len(alerts) and alerts["device"].str.match(r"^(mac|ip):").all()
    # the testbed's benign hour is another site's normal traffic: far from v3's reference, per vendor too
    drift = app.dataframe[2].value
    assert "all" in set(drift["device_group"]) and any(g.startswith("vendor:") for g in drift["device_group"])
    assert drift.loc[drift["device_group"] == "all", "score_psi"].iloc[0] > 1.0
    assert any("Drift in the hour of" in warning.value for warning in app.warning)


@pytest.mark.spark
@pytest.mark.kafka
@pytest.mark.slow
def test_a_real_capture_through_kafka_keyed_by_device(spark, kafka_broker, shared_data, tmp_path) -> None:
    from confluent_kafka import Consumer

    topic = "sensor-records"
    kafka_broker.create_topic(topic, partitions=2)
    assert main(["sensor", "--pcap", str(shared_data / CAPTURE), "--bootstrap", kafka_broker.bootstrap,
                 "--topic", topic]) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "sensor-test",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    keyed, empty_polls = [], 0
    while empty_polls < 5:
        message = consumer.poll(1.0)
        if message is None:
            empty_polls += 1
            continue
        keyed.append((message.key().decode(), json.loads(message.value())["device_id"]))
    consumer.close()
    assert keyed and all(key == device for key, device in keyed)
    config = _config(tmp_path, {"source": "kafka", "kafka": {"bootstrap_servers": kafka_broker.bootstrap,
                                                            "topic": topic, "starting_offsets": "earliest"}})
    run_to_end(spark, config)
    _check_scored(tmp_path, len(keyed))


def test_the_report_works_on_every_shared_capture(shared_data, tmp_path) -> None:
    captures = sorted((shared_data / "pcap").rglob("*.pcap*"))
    assert len(captures) >= 30
    for capture in captures:
        out = tmp_path / f"{capture.stem}.json"
        assert main(["sensor", "--pcap", str(capture), "--report", str(out)]) == 0, capture
        report = json.loads(out.read_text())
        assert report["packets"] > 0 and report["capture_error"] is None
        total = report["total"]
        assert total["windows"] == sum(d["windows"] for d in report["devices"]) > 0
        assert total["anomalies"] == sum(d["anomalies"] for d in report["devices"])
        assert 0 <= total["share_flagged"] <= 1
