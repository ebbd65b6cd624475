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


def test_a_sequence_baseline_reads_each_devices_last_windows(shared_data, tmp_path) -> None:
    """--timesteps 4: the autoencoder learns from each device's windows in time order, serves from
    LiteRT with the window_gap input, and scores a window by the sequence that ends with it."""
    from jobs.sensor.report import score_records

    out = tmp_path / "v3-site-t4"
    assert main(["baseline", "--pcap", str(shared_data / SITE), "--out", str(out), "--timesteps", "4"]) == 0
    site = load_bundle(out)
    assert site.lstm_ae.config.timesteps == 4 and site.lstm_ae.lite is not None
    assert site.ensemble.alone == ("lstm_ae",)  # the stack's weights never weighed a sequence autoencoder
    records, _ = capture_records([shared_data / SITE])
    in_order = score_records(records, site)
    alone = score_records(records.drop(columns=["device_id"]), site)  # no device: each window on its own
    assert not np.allclose(in_order["ae_error"], alone["ae_error"])
    # the same windows in another row order get the same scores: the sequence follows event time
    shuffled = score_records(records.sample(frac=1.0, random_state=0), site).sort_values("record_id")
    assert np.allclose(shuffled["ae_error"], in_order.sort_values("record_id")["ae_error"], rtol=1e-4)
    held = site_split(records["record_id"])
    assert in_order["is_anomaly"][held].mean() <= 0.02
    names = {name for row in in_order["top_features"] for name in row}
    assert names <= {*site.preprocessor.inputs, "window_gap"}
