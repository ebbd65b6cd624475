"""The dashboard's incidents view in Streamlit's AppTest, over incidents written as the stream writes
them: open incidents most severe first, one incident's alerts, and the actions landing in Delta
with who did them."""
from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable

from jobs.dashboard import APP, data
from schemas.tables import INCIDENT_ACTIONS, MUTES
from tests.helpers.incidents import write_incidents
from tests.helpers.streaming import BUNDLE


def _app(monkeypatch, tables: Path):
    from streamlit.testing.v1 import AppTest

    settings = data.DashboardSettings(tables_dir=tables, model_dir=BUNDLE, refresh_seconds=3600)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("IOMT_AD_DASHBOARD_CREDENTIALS", raising=False)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def _frame(app, key: str):
    return next(frame.value for frame in app.dataframe if frame.proto.id and key in frame.proto.id)


def test_open_incidents_by_severity_with_the_alerts_of_the_chosen_one(monkeypatch, tmp_path) -> None:
    app = _app(monkeypatch, write_incidents(tmp_path))
    table = app.dataframe[0].value  # the page has no scored records: the incidents table comes first
    assert list(zip(table["subject"], table["max_severity"], table["alerts"], table["status"])) == [
        ("mac:a", "critical", 3, "new"), ("mac:b", "low", 1, "new")]
    alerts = app.dataframe[1].value  # the most severe incident is chosen first
    assert list(alerts["severity"]) == ["high", "critical", "medium"]
    app.selectbox(key="incident").select_index(1).run()
    assert list(app.dataframe[1].value["predicted_class"]) == ["Recon-Port_Scan"]
    app.toggle(key="incidents-all").set_value(True).run()
    assert len(app.dataframe[0].value) == 3  # the closed one too


def test_acknowledge_and_mute_land_in_delta_as_local_without_sign_in(monkeypatch, tmp_path) -> None:
    tables = write_incidents(tmp_path)
    app = _app(monkeypatch, tables)
    chosen = app.selectbox(key="incident").value
    app.text_input(key=f"note-{chosen}").input("paged the ward")
    next(b for b in app.button if b.label == "Acknowledge").click().run()
    assert not app.exception, app.exception
    rows = DeltaTable(str(tables / INCIDENT_ACTIONS)).to_pyarrow_table().to_pylist()
    assert [(r["incident_id"], r["action"], r["who"], r["note"], r["via"]) for r in rows] == [
        (chosen, "ack", "local", "paged the ward", "dashboard")]
    assert any("acknowledged by local" in s.value for s in app.success)
    assert app.dataframe[0].value["status"].iloc[0] == "acknowledged"

    app.selectbox(key=f"mute-target-{chosen}").select_index(0)  # its device
    app.text_input(key=f"mute-reason-{chosen}").input("firmware update")
    next(b for b in app.button if b.label == "Mute").click().run()
    assert not app.exception, app.exception
    mutes = DeltaTable(str(tables / MUTES)).to_pyarrow_table().to_pylist()
    assert [(m["kind"], m["scope"], m["value"], m["reason"], m["who"]) for m in mutes] == [
        ("mute", "device", "mac:a", "firmware update", "local")]
    assert app.dataframe[0].value["muted"].iloc[0].startswith("muted device mac:a")


def test_a_mute_without_a_reason_is_refused(monkeypatch, tmp_path) -> None:
    tables = write_incidents(tmp_path)
    app = _app(monkeypatch, tables)
    next(b for b in app.button if b.label == "Mute").click().run()
    assert "give a reason" in app.error[0].value
    assert not (tables / MUTES).exists()
