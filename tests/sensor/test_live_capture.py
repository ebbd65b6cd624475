"""Live capture: the sensor on the loopback interface while the test drives a real MQTT broker
(Debian's mosquitto) with its client; the records name the device and hold the MQTT traffic."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services.ports import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _can_capture() -> bool:
    if os.geteuid() == 0:
        return True
    caps = subprocess.run(["getcap", os.path.realpath(sys.executable)], capture_output=True, text=True).stdout
    return "cap_net_raw" in caps


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto missing: make setup installs it")
@pytest.mark.skipif(not _can_capture(), reason="capturing needs root or cap_net_raw on this Python (docs/sensor.md)")
def test_live_capture_of_mqtt_on_loopback(tmp_path) -> None:
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    out = tmp_path / "records"
    sensor = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "sensor", "--interface", "lo", "--bpf", f"tcp port {port}",
         "--home-net", "127.0.0.0/8", "--window", "5", "--to-dir", str(out)],
        cwd=REPO, stdout=(tmp_path / "sensor.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a busy machine takes a while to import the sensor
        while "capturing on lo" not in (tmp_path / "sensor.log").read_text() and time.monotonic() < deadline:
            assert sensor.poll() is None, (tmp_path / "sensor.log").read_text()
            time.sleep(0.2)
        assert "capturing on lo" in (tmp_path / "sensor.log").read_text(), "the capture did not open in 120 s"
        for i in range(20):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "ward3/monitor7",
                            "-m", f'{{"hr": {70 + i}}}', "-q", "1"], check=True, timeout=10)
        time.sleep(1)
        sensor.send_signal(signal.SIGINT)  # Ctrl-C: the open windows are closed and written
        assert sensor.wait(timeout=60) == 0, (tmp_path / "sensor.log").read_text()[-3000:]
    finally:
        for process in (sensor, broker):
            if process.poll() is None:
                process.kill()
    records = [json.loads(line) for path in out.glob("*.json") for line in path.read_text().splitlines()]
    assert records, (tmp_path / "sensor.log").read_text()[-3000:]
    assert {r["device_id"] for r in records} == {"ip:127.0.0.1"}  # client and broker share the address
    packets = sum(r["Number"] for r in records)
    assert packets >= 20 * 8  # each publish: a connection, CONNECT/CONNACK, PUBLISH/PUBACK, DISCONNECT
    assert all(r["TCP"] == 1.0 and r["transport"] == "TCP" for r in records)
    assert {r["peer_port"] for r in records} | {r["device_port"] for r in records} >= {port}
