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
