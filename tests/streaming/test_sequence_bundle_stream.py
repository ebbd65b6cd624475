"""A site bundle whose autoencoder reads each device's last 4 windows, in the real stream: the sensor's
records of a real capture, spread over micro-batches, are scored by the sequences the stream's
per-device state builds, and each record's score is the one an offline report of the whole capture
gives it (its device's earlier windows in time order), not its score as a lone window."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.cli import main
from jobs.config import config_from_mapping
from jobs.sensor.command import capture_records
from jobs.sensor.report import score_records
from models.bundle import load_bundle
from tests.helpers.streaming import run_to_end

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TESTBED = "pcap/mqtt-testbed-labelled"


def _incoming(tmp: Path, lines: list[str], files: int) -> Path:
    """The records as ``files`` JSON-lines files of consecutive windows, one a second older than the next."""
    incoming = tmp / "incoming"
    incoming.mkdir()
    size = -(-len(lines) // files)
    for i in range(files):
        path = incoming / f"part-{i}.json"
        path.write_text("".join(line + "\n" for line in lines[i * size:(i + 1) * size]))
        modified = time.time() - 60 + i
        os.utime(path, (modified, modified))
    return incoming


def test_the_streams_sequences_score_as_an_offline_report_of_the_whole_capture(spark, shared_data, tmp_path) -> None:
    from jobs.stream.device_context import SESSION_SETTINGS

    bundle_dir = tmp_path / "site-t4"
    assert main(["baseline", "--pcap", str(shared_data / TESTBED / "benign_ref02.pcap"),
                 str(shared_data / TESTBED / "benign_ref04.pcap"), "--out", str(bundle_dir), "--timesteps", "4"]) == 0
    capture = shared_data / TESTBED / "slow_dos_ref01.pcap"
    out = tmp_path / "sensor"
    assert main(["sensor", "--pcap", str(capture), "--to-dir", str(out)]) == 0
    lines = [line for path in sorted(out.glob("*.json")) for line in path.read_text().splitlines() if line]
    lines.sort(key=lambda line: json.loads(line)["event_time"])
    config = config_from_mapping({"stream": {
        "source": "files", "files": {"path": str(_incoming(tmp_path, lines, files=4)), "max_files_per_trigger": 1},
        "tables_dir": str(tmp_path / "delta"), "trigger": "availableNow", "app_id": "sequences",
        "model_dir": str(bundle_dir), "event_time_max_past": "3650 days",
        "sequence": {"context_windows": 3, "max_gap": "10 minutes"}}})
    before = {key: spark.conf.get(key, None) for key in SESSION_SETTINGS}
    try:
        run_to_end(spark, config)
    finally:
        for key, value in before.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
    streamed = spark.read.format("delta").load(str(tmp_path / "delta" / "flows_scored")) \
        .select("record_id", "ae_error", "batch_id").toPandas().set_index("record_id")
    assert streamed["batch_id"].nunique() == 4 and streamed.index.is_unique

    records, _ = capture_records([capture])
    bundle = load_bundle(bundle_dir)
    offline = score_records(records, bundle).set_index("record_id")
    alone = score_records(records.drop(columns=["device_id"]), bundle).set_index("record_id")
    assert len(streamed) == len(offline) == len(lines)
    got = streamed["ae_error"].reindex(offline.index).to_numpy()
    np.testing.assert_allclose(got, offline["ae_error"].to_numpy(), rtol=1e-3, atol=1e-7)
    assert not np.allclose(got, alone["ae_error"].to_numpy(), rtol=1e-3)  # the context changed the scores
