"""``iomt-ad soak`` on a short run: it starts its own broker, InfluxDB, job, dashboard and browser,
and its verdict and figures come from what the tables and InfluxDB hold."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_nothing_and_reports_its_figures(sample_dir, tmp_path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "soak", "--minutes", "0.75", "--rate", "150",
                           "--sample-seconds", "3", "--data", str(sample_dir), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    outcome = figures["outcome"]
    sent = 2000 + int(150 * 0.75 * 60)  # the warm-up, then the steady replay
    assert outcome["records_in_kafka"] == sent
    assert outcome["scored"] + outcome["quarantined"] == sent
    assert outcome["lost"] == outcome["duplicated"] == outcome["influx_lost_or_doubled"] == 0
    assert outcome["influx_records"] == outcome["scored"]
    assert {"spark_jvm", "driver_python", "dashboard"} <= set(figures["memory"])
    assert figures["memory"]["spark_jvm"]["peak_mb"] > 50
    assert figures["batches"]["batches"] >= 3
    assert "| driver_python |" in done.stdout and "lost 0, duplicated 0" in done.stdout
