"""`make demo`'s command on a fresh var/: the embedded default end to end, as a separate process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.streaming import BUNDLE

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_job_and_reports(tmp_path, spark) -> None:
    conf = yaml.safe_load((REPO / "conf" / "local.yaml").read_text())
    conf["stream"]["files"]["path"] = str(tmp_path / "incoming")
    conf["stream"]["tables_dir"] = str(tmp_path / "delta")
    conf["stream"]["model_dir"] = str(BUNDLE)
    conf["alerts"]["outputs"]["file"]["path"] = str(tmp_path / "incidents.ocsf.jsonl")
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(conf))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "iomt-ad"), "demo", "--conf", str(tmp_path / "conf.yaml"),
         "--out", str(tmp_path / "report")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, SPARK_LOCAL_IP="127.0.0.1"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    sample_rows = sum(sum(1 for _ in p.open()) - 1 for p in (REPO / "data" / "ciciomt2024-sample").glob("*.csv"))
    assert f"records scored        {sample_rows:>8}" in out
    assert "quarantined                  3" in out
    for cls in ("Benign", "ARP_Spoofing", "DDoS-UDP", "Recon-VulScan"):
        assert cls in out
    assert (tmp_path / "report" / "evaluation.html").stat().st_size > 100_000
    flows = spark.read.format("delta").load(str(tmp_path / "delta" / "flows_scored"))
    assert flows.count() == sample_rows
    batches = spark.read.format("delta").load(str(tmp_path / "delta" / "batch_log")).count()
    assert batches >= 2  # max_files_per_trigger splits the replayed files into micro-batches
    # the embedded default's file output: one OCSF line per queued incident update, every incident told
    findings = [json.loads(line) for line in (tmp_path / "incidents.ocsf.jsonl").read_text().splitlines()]
    outbox = spark.read.format("delta").load(str(tmp_path / "delta" / "outbox")).collect()
    incidents = spark.read.format("delta").load(str(tmp_path / "delta" / "incidents")).collect()
    assert sorted(f["metadata"]["uid"] for f in findings) == sorted(r["update_id"] for r in outbox)
    assert {f["finding_info"]["uid"] for f in findings} == {r["incident_id"] for r in incidents}
    assert len(findings) < len(incidents) * batches  # not one message per incident and batch
    assert f"incident notifications {len(findings):>7}   ({len(findings)} to file (" in out
