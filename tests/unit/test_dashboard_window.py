"""The operator dashboard's window ends at the present (or at the newest record when that is older):
one record dated years ahead cannot push the window past the traffic of the last hour."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa

from jobs.dashboard.data import DashboardSettings, load_snapshot
from models import DEFAULT_BUNDLE_PATH


def _tables(root, times: list[pd.Timestamp]) -> None:
    from deltalake import write_deltalake

    stamps = pa.array([t.to_pydatetime() for t in times], pa.timestamp("us", tz="UTC"))
    n = len(times)
    write_deltalake(str(root / "traffic_1m"), pa.table({
        "minute": pa.array([t.floor("min").to_pydatetime() for t in times], pa.timestamp("us", tz="UTC")),
        "protocol": ["TCP"] * n, "predicted_class": ["Benign"] * n, "is_anomaly": [False] * n, "records": [1] * n}))
    write_deltalake(str(root / "flows_scored"), pa.table({
        "event_time": stamps, "protocol": ["TCP"] * n, "predicted_class": ["Benign"] * n,
        "predicted_category": ["Benign"] * n, "is_anomaly": [False] * n, "ensemble_score": [0.1] * n,
        "severity": ["none"] * n, "label": [None] * n}))


def test_a_record_from_the_future_does_not_move_the_window(tmp_path) -> None:
    now = pd.Timestamp.now(tz="UTC")
    recent = [now - timedelta(minutes=m) for m in (1, 5, 20)]
    _tables(tmp_path, [*recent, now + timedelta(days=5 * 365)])
    snapshot = load_snapshot(DashboardSettings(tables_dir=tmp_path, model_dir=DEFAULT_BUNDLE_PATH, window_minutes=60))
    shown = snapshot.flows["event_time"]
    assert (shown <= now).sum() == 3  # the last hour's records are all in the window
    assert snapshot.newest <= pd.Timestamp.now(tz="UTC")


def test_a_paused_stream_still_shows_its_last_hour(tmp_path) -> None:
    last = pd.Timestamp.now(tz="UTC") - timedelta(days=2)
    _tables(tmp_path, [last - timedelta(minutes=m) for m in (0, 30, 90)])
    snapshot = load_snapshot(DashboardSettings(tables_dir=tmp_path, model_dir=DEFAULT_BUNDLE_PATH, window_minutes=60))
    assert len(snapshot.flows) == 2  # the newest record and the one 30 minutes before it


def test_the_score_histogram_counts_every_finite_score_once() -> None:
    """The browser gets bins, not one value per record: the bins hold every finite score, flagged
    apart from not flagged, and reach the threshold even when no score does."""
    from jobs.dashboard.data import score_histogram, symlog

    flows = pd.DataFrame({"ensemble_score": [-3.0, 0.0, 0.2, 0.9, 5.0, 5000.0, float("nan"), float("inf")],
                          "is_anomaly": [False, False, False, False, True, True, True, True]})
    bins = score_histogram(flows, threshold=1.03)
    assert bins["not_flagged"].sum() == 4 and bins["flagged"].sum() == 2
    assert bins["low"].min() <= symlog(-3.0) and bins["high"].max() >= symlog(5000.0)
    assert len(bins) < 200
    only_low = score_histogram(flows.iloc[:3], threshold=50.0)
    assert only_low["high"].max() >= symlog(50.0)


def test_the_window_is_read_through_file_statistics_and_shows_the_newest_alerts(tmp_path) -> None:
    """traffic_1m's newest minute comes from its files' statistics; per class counts come from
    traffic_1m; the alerts table shows the newest fifty of the window."""
    from deltalake import write_deltalake

    from jobs.dashboard.data import newest, per_class

    now = pd.Timestamp.now(tz="UTC").floor("s")
    times = [now - timedelta(seconds=s) for s in range(0, 600, 5)]  # 120 records over 10 minutes
    _tables(tmp_path, times)
    assert newest(tmp_path, "traffic_1m", "minute") == max(times).floor("min")
    assert newest(tmp_path, "no_such_table", "minute") is None
    alerts = pa.table({"event_time": pa.array([t.to_pydatetime() for t in times], pa.timestamp("us", tz="UTC")),
                       "record_id": [str(i) for i in range(len(times))], "top_features": [["a", "b", "c"]] * len(times),
                       "event_date": [t.date() for t in times]})
    write_deltalake(str(tmp_path / "alerts"), alerts, partition_by=["event_date"])
    snapshot = load_snapshot(DashboardSettings(tables_dir=tmp_path, model_dir=DEFAULT_BUNDLE_PATH, window_minutes=60))
    assert snapshot.alerts["record_id"].tolist() == [str(i) for i in range(50)]  # newest first
    classes = per_class(snapshot.traffic)
    assert classes[["predicted_class", "records", "flagged"]].values.tolist() == [["Benign", 120, 0]]


def test_files_without_statistics_are_still_read(tmp_path) -> None:
    """Data files the job wrote before it kept min/max statistics (record count only) cannot be
    skipped by a time filter: they are read, and their rows in the window shown."""
    import json

    from jobs.stream.delta_writer import DeltaAppender, write_data_files
    from jobs.dashboard.data import read_table
    from schemas.tables import TABLES

    spec = TABLES["flows_scored"]
    now = pd.Timestamp.now(tz="UTC").floor("s")
    times = [now - timedelta(minutes=m) for m in (1, 2, 90)]
    rows = pa.table({c.name: pa.nulls(len(times), c.type) for c in spec.columns}).cast(spec.arrow_schema())
    for name, values in (("record_id", ["a", "b", "old"]), ("event_time", [t.to_pydatetime() for t in times]),
                         ("event_date", [t.date() for t in times])):
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, spec.arrow_schema().field(name).type))
    appender = DeltaAppender(tmp_path, "app-1")
    files = [{**f, "stats": json.dumps({"numRecords": f["records"]})}
             for f in write_data_files(appender.tables, "flows_scored", rows, 0)]
    assert appender.commit_files("flows_scored", files, 0)
    shown = read_table(tmp_path, "flows_scored", ["record_id", "event_time"],
                       since=(now - timedelta(minutes=60)).to_pydatetime(), time_column="event_time")
    assert sorted(shown["record_id"]) == ["a", "b"]


def test_counts_come_from_traffic_and_the_histogram_from_the_newest_records(tmp_path, monkeypatch) -> None:
    """The headline counts every record of the window (traffic_1m); the score histogram reads only
    the newest SCORE_SAMPLE records, however many the window holds."""
    from jobs.dashboard import data

    now = pd.Timestamp.now(tz="UTC").floor("s")
    times = [now - timedelta(seconds=s) for s in range(0, 1200, 10)]  # 120 records over 20 minutes
    _tables(tmp_path, times)
    monkeypatch.setattr(data, "SCORE_SAMPLE", 30)
    snapshot = load_snapshot(DashboardSettings(tables_dir=tmp_path, model_dir=DEFAULT_BUNDLE_PATH, window_minutes=60))
    assert len(snapshot.flows) == 30
    assert snapshot.flows["event_time"].min() == sorted(times)[-30]
    figures = data.headline(snapshot)
    assert figures["records"] == 120 and figures["anomalies"] == 0 and figures["rate_pct"] == 0.0
