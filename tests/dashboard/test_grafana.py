"""Grafana as code: the committed provisioning equals the generator's output, and every panel's
Flux query (and the alert rule's) returns rows from a real InfluxDB the streaming job wrote to."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from jobs.grafana import alerts as grafana_alerts, command as grafana_command, dashboards as grafana_dashboards
from jobs.grafana import sdk as grafana_sdk

GRAFANA = Path(grafana_command.__file__).resolve().parents[2] / "docker" / "grafana"


def test_committed_files_equal_the_generator() -> None:
    files = grafana_command.render()
    assert sorted(files) == sorted(["dashboards/traffic.json", "dashboards/anomalies.json",
                                    "dashboards/models.json", grafana_alerts.ALERTING_FILE])
    for name, text in files.items():
        committed = GRAFANA / name
        assert committed.is_file(), f"{committed} missing: run `make grafana`"
        assert committed.read_text() == text, f"{committed} is stale: run `make grafana`"


def test_grafana_check_subcommand(tmp_path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    grafana_command.add_arguments(parser)
    assert grafana_command.run(parser.parse_args(["--check"])) == 0
    assert grafana_command.run(parser.parse_args(["--check", "--out", str(tmp_path)])) == 1
    assert grafana_command.run(parser.parse_args(["--out", str(tmp_path)])) == 0
    assert grafana_command.run(parser.parse_args(["--check", "--out", str(tmp_path)])) == 0


def _panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found += _panels(panel) if "panels" in panel else [panel]
    return found


def test_dashboards_are_complete() -> None:
    titles = {}
    for name in grafana_dashboards.DASHBOARD_FILES:
        dashboard = json.loads((GRAFANA / "dashboards" / name).read_text())
        titles[name] = {p["title"] for p in _panels(dashboard)}
        uids = {t["datasource"]["uid"] for p in _panels(dashboard) for t in p["targets"]}
        assert uids == {"iomt-influxdb"}
    assert {"Protocol activity", "Benign variability (Rate)", "Attack distribution", "Traffic volume",
            "Devices"} <= titles["traffic.json"]
    assert {"Ensemble score vs threshold", "Anomaly rate", "Recent anomalies", "Attack heat map (class × time)",
            "System health: seconds since the last record", "Devices with the most anomalies"} <= titles["anomalies.json"]
    assert {"Autoencoder error vs Isolation Forest score", "Detection per true class", "Thresholds",
            "Model versions", "Drift from the model's reference (PSI per hour)",
            "Drifting features and scores"} <= titles["models.json"]
    anomalies = json.loads((GRAFANA / "dashboards" / "anomalies.json").read_text())
    score = next(p for p in anomalies["panels"] if p["title"] == "Ensemble score vs threshold")
    manifest = json.loads((grafana_dashboards.DEFAULT_MODEL / "manifest.json").read_text())
    steps = score["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == manifest["ensemble"]["threshold"]["value"]


def test_alerting_provisioning_shape() -> None:
    doc = yaml.safe_load((GRAFANA / grafana_alerts.ALERTING_FILE).read_text())
    rule = doc["groups"][0]["rules"][0]
    assert rule["for"] == "5m" and rule["condition"] == "C"
    assert rule["data"][2]["model"]["conditions"][0]["evaluator"] == {"params": [20.0], "type": "gt"}
    # missing data is never OK: a stopped job, broker or InfluxDB must be told
    rules = {r["uid"]: r for r in doc["groups"][0]["rules"]}
    silent = rules[grafana_alerts.SILENT_RULE_UID]
    assert silent["noDataState"] == "Alerting" and silent["execErrState"] == "Alerting"
    assert silent["data"][2]["model"]["conditions"][0]["evaluator"] == {"params": [1], "type": "lt"}
    assert "device_traffic" in silent["data"][0]["model"]["query"]
    gaps = rules[grafana_alerts.GAP_RULE_UID]
    assert gaps["data"][2]["model"]["conditions"][0]["evaluator"] == {"params": [0], "type": "gt"}
    assert '"kafka_gaps"' in gaps["data"][0]["model"]["query"]
    drift = rules[grafana_alerts.DRIFT_RULE_UID]
    assert drift["noDataState"] == "OK" and drift["labels"]["severity"] == "warning"
    assert drift["data"][2]["model"]["conditions"][0]["evaluator"] == {"params": [0], "type": "gt"}
    assert '"model_drift"' in drift["data"][0]["model"]["query"] and "r.drifted > 0.0" in drift["data"][0]["model"]["query"]
    assert drift["data"][0]["relativeTimeRange"]["from"] == 7200  # the hour filling and the one before
    receiver = doc["contactPoints"][0]["receivers"][0]
    assert receiver["type"] == "slack" and receiver["settings"]["url"] == "$IOMT_AD_ALERT_WEBHOOK_URL"
    assert doc["policies"][0]["receiver"] == doc["contactPoints"][0]["name"]


def _all_queries() -> list[tuple[str, str]]:
    queries = []
    for name in grafana_dashboards.DASHBOARD_FILES:
        dashboard = json.loads((GRAFANA / "dashboards" / name).read_text())
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                queries.append((f"{name} / {panel['title']} / {target['refId']}", target["query"]))
    doc = yaml.safe_load((GRAFANA / grafana_alerts.ALERTING_FILE).read_text())
    for rule in doc["groups"][0]["rules"]:
        for item in rule["data"]:
            if item["datasourceUid"] == grafana_sdk.DATASOURCE_UID:
                queries.append((f"alert {rule['uid']} / {item['refId']}", item["model"]["query"]))
    return queries


def _run_flux(client, query: str, bucket: str):
    # what Grafana does: set v (time range, window) and the bucket variable / provisioning env var
    text = (query.replace("${bucket}", bucket).replace("$INFLUXDB_BUCKET", bucket))
    prelude = "v = {timeRangeStart: -2h, timeRangeStop: now(), windowPeriod: 10s}\n"
    return client.query_api().query(prelude + text)


@pytest.mark.spark
@pytest.mark.influxdb
@pytest.mark.slow
def test_every_panel_query_returns_rows_from_the_jobs_points(streamed) -> None:
    from deltalake import DeltaTable
    from influxdb_client import InfluxDBClient

    from tests.services.influxdb_server import BUCKET, ORG

    queries = _all_queries()
    assert len(queries) >= 20
    empty, errors = [], []
    # Grafana's token, as iomt-ad influx-tokens made it: read-only, the bucket only
    with InfluxDBClient(url=streamed.influx_url, token=streamed.grafana_token, org=ORG, timeout=60_000) as client:
        for where, query in queries:
            try:
                tables = _run_flux(client, query, BUCKET)
            except Exception as exc:  # noqa: BLE001 - report every failing panel at once
                errors.append(f"{where}: {exc}")
                continue
            if sum(len(table.records) for table in tables) == 0:
                empty.append(where)
        assert not errors, "\n".join(errors)
        # no Kafka record expired in this run: the gap alert's query has no row (its no-data state is OK)
        assert empty == [f"alert {grafana_alerts.GAP_RULE_UID} / A"], f"queries without rows: {empty}"

        # panels over the aggregates checked against the Delta tables the same run wrote
        flows = DeltaTable(str(streamed.tables_dir / "flows_scored")).to_pandas(
            columns=["is_anomaly", "source_id", "event_time"])
        count = _run_flux(client, dict(queries)["traffic.json / Records scored / A"], BUCKET)
        assert count[0].records[0].get_value() == len(flows) == streamed.records
        rate = _run_flux(client, dict(queries)["anomalies.json / Anomaly rate / A"], BUCKET)
        assert rate[0].records[0].get_value() == pytest.approx(100.0 * flows["is_anomaly"].mean())
        alert = _run_flux(client, dict(queries)["alert iomt-ad-anomaly-rate / A"], BUCKET)
        assert alert[0].records[0].get_value() == pytest.approx(100.0 * flows["is_anomaly"].mean())
        devices = [r.values for t in _run_flux(client, dict(queries)["traffic.json / Devices / A"], BUCKET)
                   for r in t.records]
        per_file = flows.assign(source=flows["source_id"].str.split(":").str[0]).groupby("source")
        assert {d["source"]: (d["records"], d["anomalies"]) for d in devices} == {
            source: (len(rows), rows["is_anomaly"].sum()) for source, rows in per_file}
        since = _run_flux(client, dict(queries)["anomalies.json / System health: seconds since the last record / A"],
                          BUCKET)[0].records[0].get_value()
        newest = flows["event_time"].max()
        assert since == pytest.approx(time.time() - newest.timestamp(), abs=120)

        # the drift rule's value is the highest PSI of the hours the job called drifted (the sample mixes
        # attacks into benign traffic: far from the benign reference)
        drift = DeltaTable(str(streamed.tables_dir / "drift")).to_pandas()
        drifted = drift[drift["drifted"]]
        assert len(drifted) > 0 and drift["device_group"].unique().tolist() == ["all"]  # no device in the sample
        value = _run_flux(client, dict(queries)[f"alert {grafana_alerts.DRIFT_RULE_UID} / A"], BUCKET)
        assert value[0].records[0].get_value() == pytest.approx(drifted["psi"].max())
        table = [r.values for t in _run_flux(client, dict(queries)["models.json / Drifting features and scores / A"],
                                              BUCKET) for r in t.records]
        latest = drift[drift["hour"] == drift["hour"].max()]  # the run may straddle an hour
        top = latest.loc[latest["psi"].idxmax()]
        assert (table[0]["measure"], table[0]["records"]) == (top["measure"], top["records"])
        assert table[0]["psi"] == pytest.approx(top["psi"])
