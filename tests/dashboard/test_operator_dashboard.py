"""The operator dashboard over Delta tables the real streaming job wrote: Streamlit's own test
harness (AppTest), then the real page in a headless Debian Chromium driven by Playwright."""
from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from jobs.dashboard import APP, data
from tests.helpers.dashboard_browser import OUTPUT, browser_page, running_dashboard, start_dashboard
from tests.helpers.streaming import BUNDLE

N_CHARTS = 5  # anomaly rate, score distribution, classes, protocols; drift per hour


def _app_test(monkeypatch, tables: Path):
    from streamlit.testing.v1 import AppTest

    settings = data.DashboardSettings(tables_dir=tables, model_dir=BUNDLE, refresh_seconds=3600)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def test_apptest_without_tables_says_so(monkeypatch, tmp_path) -> None:
    app = _app_test(monkeypatch, tmp_path / "no-tables-yet")
    assert "No scored records" in app.info[0].value
    assert len(app.get("plotly_chart")) == 0


@pytest.mark.spark
@pytest.mark.influxdb
@pytest.mark.slow
def test_apptest_over_the_jobs_tables(monkeypatch, streamed, spark) -> None:
    app = _app_test(monkeypatch, streamed.tables_dir)
    metrics = {metric.label: metric.value for metric in app.metric}
    alerts = spark.read.format("delta").load(str(streamed.tables_dir / "alerts")).count()
    assert metrics["Records scored"] == f"{streamed.records:,}"
    assert metrics["Alerts"] == f"{alerts:,}"
    assert 0 < alerts < streamed.records
    assert len(app.get("plotly_chart")) == N_CHARTS
    table = app.dataframe[0].value
    assert len(table) == min(50, alerts)
    assert {"predicted_class", "predicted_category", "top_features", "severity"} <= set(table.columns)
    assert table["top_features"].str.count(",").eq(2).all()  # three top features per alert
    threshold = data.model_info(BUNDLE).threshold
    assert f"{threshold:.4f}" in app.caption[0].value
    # the drift view: the sample mixes attacks into benign traffic, far from the benign reference
    assert "Drift from the model's reference" in [header.value for header in app.subheader]
    drift = next(frame.value for frame in app.dataframe if "score_psi" in frame.value.columns)
    assert drift["device_group"].tolist() == ["all"] and drift["score_psi"].iloc[0] > 0.2
    enough = drift["records"].iloc[0] >= 500  # drift.min_records (unless the run straddled an hour)
    assert bool(drift["drifted"].iloc[0]) == enough
    assert any("Drift in the hour of" in warning.value for warning in app.warning) == enough


def _acknowledge_in_browser(page, tables: Path, note: str) -> dict:
    """In the incidents view: the open incidents the stream made are listed, the first (most severe)
    one's alerts are shown; acknowledge it with ``note``. Returns the action's row read from Delta."""
    from deltalake import DeltaTable

    from schemas.tables import INCIDENT_ACTIONS, INCIDENTS

    incidents = DeltaTable(str(tables / INCIDENTS)).to_pyarrow_table().to_pylist()
    assert incidents, "the stream made no incidents"
    page.get_by_text("Incidents", exact=True).wait_for(timeout=60_000)
    page.get_by_text("Alerts of incident").wait_for(timeout=60_000)
    caption = page.get_by_text("Alerts of incident").inner_text()  # "Alerts of incident <id> (newest n of m)"
    short = caption.split()[3]
    incident = next(r for r in incidents if r["incident_id"].startswith(short))
    assert f"newest {min(200, incident['alerts'])} of {incident['alerts']}" in caption
    page.get_by_label("Note (optional)").fill(note)
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text(f"incident {short} acknowledged by").wait_for(timeout=60_000)
    rows = [r for r in DeltaTable(str(tables / INCIDENT_ACTIONS)).to_pyarrow_table().to_pylist() if r["note"] == note]
    assert [(r["incident_id"], r["action"], r["via"]) for r in rows] == [(incident["incident_id"], "ack", "dashboard")]
    return rows[0]


def _servers_on(port: int) -> list[int]:
    """Pids of processes whose command line serves Streamlit on ``port``."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "streamlit" in " ".join(cmdline) and str(port) in cmdline:
            pids.append(proc.info["pid"])
    return pids


@pytest.mark.slow
def test_stopping_the_dashboard_stops_its_server(tmp_path) -> None:
    """`iomt-ad dashboard` becomes the Streamlit server: SIGTERM (docker stop, systemd) stops it
    and leaves no server behind (a waiting parent used to die and orphan the server)."""
    from tests.services.ports import free_port

    port = free_port()
    server = start_dashboard(tmp_path / "no-tables-yet", port, tmp_path / "dashboard.log")
    try:
        assert _servers_on(port) == [server.pid]  # one process: the command itself serves
    finally:
        server.terminate()
        server.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _servers_on(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_on(port) == []


@pytest.mark.browser
@pytest.mark.spark
@pytest.mark.influxdb
@pytest.mark.slow
def test_dashboard_renders_in_headless_chromium(streamed, tmp_path) -> None:
    from tests.services.ports import free_port

    OUTPUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with running_dashboard(streamed.tables_dir, port, tmp_path / "dashboard.log"), \
            browser_page(f"http://127.0.0.1:{port}/", height=2600) as (page, errors):
        page.get_by_text("IoMT-AD · operator dashboard").wait_for(timeout=60_000)
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot').length >= {N_CHARTS}", timeout=120_000)
        charts = page.locator(".js-plotly-plot")
        assert charts.count() == N_CHARTS
        for index in range(N_CHARTS):  # every chart drew its SVG and at least one trace
            chart = charts.nth(index)
            chart.locator("svg.main-svg").first.wait_for(timeout=30_000)
            assert chart.locator("g.trace").count() >= 1, f"chart {index} has no trace"
        titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
        assert any("Anomaly rate" in title for title in titles), titles
        assert any("Drift from the model's reference" in title for title in titles), titles
        assert any("threshold" in text for text in page.locator(".js-plotly-plot .annotation-text")
                   .all_text_contents())
        page.get_by_text("Recent alerts").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stMetric']").count() == 5
        page.wait_for_timeout(1500)  # let the charts finish their transitions
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        acknowledged = _acknowledge_in_browser(page, streamed.tables_dir, "paged the ward")
        assert acknowledged["who"] == "local"  # no sign-in
        page.screenshot(path=str(OUTPUT / "incidents.png"), full_page=True)
        assert not errors, errors
    assert (OUTPUT / "dashboard.png").stat().st_size > 20_000


@pytest.mark.browser
@pytest.mark.spark
@pytest.mark.influxdb
@pytest.mark.slow
def test_signed_in_over_https_in_headless_chromium(streamed, tmp_path) -> None:
    """Served to every interface, over TLS, to signed-in users only: the page asks for a user and
    password first and shows no data; a wrong password is refused; then the dashboard draws. Plain
    http gets no page."""
    from jobs.dashboard import auth
    from tests.helpers.tls import make_pki
    from tests.services.ports import free_port

    pki = make_pki(tmp_path / "pki")
    users = tmp_path / "users"
    auth.add_user(users, "nurse", "correct horse battery")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOMT_AD_DASHBOARD_")}
    with running_dashboard(streamed.tables_dir, port, tmp_path / "dashboard.log", "--host", "0.0.0.0",
                           "--users-file", str(users), "--tls-cert", str(pki.server_cert),
                           "--tls-key", str(pki.server_key), ca_file=pki.ca_cert, env=env):
        with pytest.raises(OSError):  # no plain-http page
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        # the test CA is not in Chromium's store: its certificate was checked above with the CA file
        with browser_page(f"https://127.0.0.1:{port}/", height=1200, ignore_https_errors=True) as (page, _):
            page.get_by_role("textbox", name="User").wait_for(timeout=60_000)
            assert page.locator("[data-testid='stMetric']").count() == 0
            assert page.locator(".js-plotly-plot").count() == 0
            page.get_by_role("textbox", name="User").fill("nurse")
            page.get_by_role("textbox", name="Password").fill("wrong password!")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Wrong user name or password.").wait_for(timeout=30_000)
            assert page.locator("[data-testid='stMetric']").count() == 0
            page.get_by_role("textbox", name="Password").fill("correct horse battery")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot').length >= {N_CHARTS}", timeout=120_000)
            assert page.locator("[data-testid='stMetric']").count() == 5
            page.get_by_text("signed in as nurse").wait_for(timeout=30_000)
            assert _acknowledge_in_browser(page, streamed.tables_dir, "nurse on it")["who"] == "nurse"
    assert "failed sign-in as 'nurse'" in (tmp_path / "dashboard.log").read_text()
