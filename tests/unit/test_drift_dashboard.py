"""The operator dashboard's drift data over a real ``drift`` Delta table (delta-rs, no Spark): the
day up to the newest hour, one summary row per hour and group, the figure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

from jobs.dashboard import drift_data
from jobs.stream.table_rows import conform
from schemas.tables import DRIFT

H = datetime(2024, 6, 1, 10, tzinfo=timezone.utc)


def _row(hour: datetime, group: str, measure: str, records: int, psi: float, drifted: bool) -> dict:
    return {"drift_id": f"{hour:%H}|{group}|v3|{measure}", "hour": hour, "device_group": group, "model_version": "v3",
            "measure": measure, "records": records, "bin_counts": [records], "psi": psi, "threshold": 0.2,
            "min_records": 500, "drifted": drifted, "batch_id": 1, "updated_at": hour}


def test_drift_summary_of_the_tables_last_day(tmp_path) -> None:
    from deltalake import write_deltalake

    rows = [_row(H - timedelta(hours=30), "all", "ensemble_score", 900, 5.0, True),  # older than the day shown
            _row(H - timedelta(hours=1), "all", "ensemble_score", 700, 0.02, False),
            _row(H - timedelta(hours=1), "all", "rate", 700, 0.05, False),
            _row(H, "all", "ensemble_score", 2600, 6.9, True),
            _row(H, "all", "rate", 2600, 14.9, True), _row(H, "all", "iat", 2600, 0.15, False),
            _row(H, "vendor:Espressif Inc.", "ensemble_score", 455, 7.5, False),  # too few records to call it
            _row(H, "vendor:Espressif Inc.", "rate", 455, 9.0, False)]
    write_deltalake(str(tmp_path / DRIFT), conform(pa.Table.from_pylist(rows), DRIFT))
    loaded = drift_data.load_drift(tmp_path)
    assert sorted(loaded["hour"].unique()) == [H - timedelta(hours=1), H]
    table = drift_data.summary(loaded)
    assert table[["device_group", "records", "score_psi", "top_feature", "top_feature_psi", "drifted_measures",
                  "drifted"]].values.tolist() == [
        ["all", 2600, 6.9, "rate", 14.9, 2, True],
        ["vendor:Espressif Inc.", 455, 7.5, "rate", 9.0, 0, False],
        ["all", 700, 0.02, "rate", 0.05, 0, False]]
    assert drift_data.latest_hour(table)["device_group"].tolist() == ["all", "vendor:Espressif Inc."]
    figure = drift_data.drift_figure(table, 0.2)
    assert len(figure.data) == 4 and figure.layout.shapes[0].y0 == 0.2
    assert drift_data.load_drift(tmp_path / "none-yet").empty and drift_data.summary(loaded.head(0)).empty
