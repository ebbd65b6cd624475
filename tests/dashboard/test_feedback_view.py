"""Analysts' verdicts from the dashboard's incidents view, over incidents written as the stream writes
them: in Streamlit's AppTest (a whole incident, one alert with its class corrected, a refused
verdict), then the real page in a headless Chromium. Each verdict lands in ``feedback`` with who."""
from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from schemas.tables import FEEDBACK
from tests.dashboard.test_incidents_view import _app
from tests.helpers.incidents import write_incidents


def _rows(tables: Path) -> list[dict]:
    return sorted(DeltaTable(str(tables / FEEDBACK)).to_pyarrow_table().to_pylist(), key=lambda r: r["at"])


def test_mark_the_incident_then_correct_one_alert_as_local(monkeypatch, tmp_path) -> None:
    tables = write_incidents(tmp_path)
    app = _app(monkeypatch, tables)
    chosen = app.selectbox(key="incident").value
    app.text_input(key=f"feedback-note-{chosen}").input("nightly backup")
    next(b for b in app.button if b.label == "False positive").click().run()
    assert not app.exception, app.exception
    assert any(f"incident {chosen[:12]}: false positive by local" in s.value for s in app.success)
    assert [(r["target"], r["incident_id"], r["verdict"], r["alerts"], r["note"], r["who"], r["via"])
            for r in _rows(tables)] == [("incident", chosen, "false_positive", 3, "nightly backup", "local", "dashboard")]
    assert any("false positive by local" in i.value for i in app.info)  # the verdict shown on the incident

    target = app.selectbox(key=f"feedback-target-{chosen}")
    assert len(target.options) == 4  # the whole incident and its three alerts
    target.select_index(1)  # its newest alert
    app.selectbox(key=f"feedback-class-{chosen}").set_value("DDoS-UDP")
    next(b for b in app.button if b.label == "True positive").click().run()
    assert not app.exception, app.exception
    newest = _rows(tables)[-1]
    assert (newest["target"], newest["record_id"], newest["verdict"], newest["corrected_class"]) == (
        "alert", "r1-3", "true_positive", "DDoS-UDP")


def test_a_false_positive_with_an_attack_class_is_refused(monkeypatch, tmp_path) -> None:
    tables = write_incidents(tmp_path)
    app = _app(monkeypatch, tables)
    chosen = app.selectbox(key="incident").value
    app.selectbox(key=f"feedback-class-{chosen}").set_value("DDoS-SYN")
    next(b for b in app.button if b.label == "False positive").click().run()
    assert "a false positive is benign traffic" in app.error[0].value
    assert not (tables / FEEDBACK).exists()


@pytest.mark.browser
@pytest.mark.slow
def test_mark_a_false_positive_in_headless_chromium(tmp_path) -> None:
    from tests.helpers.dashboard_browser import OUTPUT, browser_page, running_dashboard
    from tests.services.ports import free_port

    tables = write_incidents(tmp_path / "tables")
    port = free_port()
    with running_dashboard(tables, port, tmp_path / "dashboard.log"), \
            browser_page(f"http://127.0.0.1:{port}/") as (page, errors):
        page.get_by_text("Alerts of incident").wait_for(timeout=60_000)
        short = page.get_by_text("Alerts of incident").inner_text().split()[3]
        page.get_by_label("Comment on the verdict (optional)").fill("nightly backup")
        page.get_by_role("button", name="False positive").click()
        page.get_by_text(f"incident {short}: false positive by local").first.wait_for(timeout=60_000)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "feedback.png"), full_page=True)
        assert not errors, errors
    rows = _rows(tables)
    assert [(r["target"], r["incident_id"][:12], r["verdict"], r["note"], r["via"]) for r in rows] == [
        ("incident", short, "false_positive", "nightly backup", "dashboard")]
