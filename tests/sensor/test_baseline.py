"""``iomt-ad baseline``: a site's benign capture becomes a new bundle version that keeps the base
bundle's attack classifier, recalibrates on the site, and records where it came from."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.cli import main
from jobs.sensor.command import capture_records
from models import DEFAULT_BUNDLE_PATH
from models.bundle import load_bundle
from models.training.baseline import site_split
from udfs.scoring import score_frame

pytestmark = pytest.mark.slow

SITE = "pcap/mqttset-reduced/benign-5mb-train.pcap"


def test_a_site_baseline_from_a_benign_capture(shared_data, tmp_path) -> None:
    out = tmp_path / "v3-site"
    assert main(["baseline", "--pcap", str(shared_data / SITE), "--out", str(out)]) == 0
    site, base = load_bundle(out), load_bundle(DEFAULT_BUNDLE_PATH)
    fit = site.manifest["site_baseline"]
    assert fit["base_bundle"]["version"] == base.version and fit["site_data"]["captures"][0]["name"] == "benign-5mb-train.pcap"
    assert fit["kept"] == ["preprocessing", "classifier", "ensemble weights"]
    assert site.ensemble.weights == base.ensemble.weights
    assert site.preprocessor == base.preprocessor

    records, _ = capture_records([shared_data / SITE])
    features = records[[c for c in records.columns if c in site.preprocessor.features]].astype(float)
    held = site_split(records["record_id"])
    site_scores, base_scores = score_frame(features, site), score_frame(features, base)
    # the classifier is the base bundle's: the same classes and probabilities on every window
    assert (site_scores["predicted_class"] == base_scores["predicted_class"]).all()
    assert np.allclose(site_scores["clf_attack_proba"], base_scores["clf_attack_proba"])
    # calibrated on the site's validation windows at 1%: their share flagged is at most about that
    assert site_scores["is_anomaly"][held].mean() <= 0.02
    assert site_scores["is_anomaly"].mean() < base_scores["is_anomaly"].mean()


def test_too_little_site_traffic_is_refused(shared_data, tmp_path, caplog) -> None:
    small = shared_data / "pcap" / "mqtt-testbed-labelled" / "benign_ref03.pcap"
    assert main(["baseline", "--pcap", str(small), "--out", str(tmp_path / "tiny")]) == 2
    assert "a baseline needs at least" in caplog.text
    assert not (tmp_path / "tiny" / "manifest.json").exists()
    assert json.loads((DEFAULT_BUNDLE_PATH / "manifest.json").read_text())["model_version"] == "v3"
