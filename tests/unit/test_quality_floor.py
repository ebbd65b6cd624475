"""Quality floors of the committed default bundle, on held-out rows of the committed sample only
(rows the split put in its test part: never used for training or threshold calibration).

The floors are the product's minimums for this bundle; the issue's targets (ROC-AUC 0.99 for the
ensemble, 0.98 for the autoencoder, macro-F1 0.80 / 0.90) are higher and tracked there."""
import pytest

from models.training.datasets import load_flows_pandas
from models import DEFAULT_BUNDLE_PATH
from models.bundle import load_bundle
from models.training.evaluation import evaluate_bundle
from models.training.split import split_of

BUNDLE = DEFAULT_BUNDLE_PATH
FLOODS = ("DDoS-ICMP", "DDoS-SYN", "DDoS-TCP", "DDoS-UDP", "DoS-ICMP", "DoS-SYN", "DoS-TCP", "DoS-UDP")


@pytest.fixture(scope="module")
def result(sample_dir):
    bundle = load_bundle(BUNDLE)
    metrics, _ = evaluate_bundle(bundle, [sample_dir])
    return metrics


def test_only_held_out_rows_are_evaluated(result, sample_dir) -> None:
    bundle = load_bundle(BUNDLE)
    flows = load_flows_pandas([sample_dir])
    seed = bundle.manifest["split"]["seed"]
    held_out = sum(split_of(f, r, seed) == "test" for f, r in zip(flows["source_file"], flows["row_number"]))
    assert 0 < result["n_rows"] == held_out < len(flows)


def test_ensemble_floor(result) -> None:
    ensemble = result["binary"]["ensemble"]
    assert ensemble["roc_auc"] >= 0.97
    assert ensemble["fpr"] <= 0.02  # the false-positive target
    for cls in FLOODS:  # the target: every DDoS and DoS class detected at >= 99%
        assert result["per_class"][cls]["detection_rate"] >= 0.99, cls


def test_single_detector_floors(result) -> None:
    assert result["binary"]["lstm_ae"]["roc_auc"] >= 0.95
    assert result["binary"]["iforest"]["roc_auc"] >= 0.90
    assert result["binary"]["classifier"]["roc_auc"] >= 0.97


def test_classifier_floors(result) -> None:
    assert result["multiclass"]["macro_f1"] >= 0.70
    assert result["category"]["macro_f1"] >= 0.80
    assert set(result["per_class"]) == {*FLOODS, "Benign", "MQTT-DDoS-Connect_Flood", "MQTT-DDoS-Publish_Flood",
                                        "MQTT-DoS-Connect_Flood", "MQTT-DoS-Publish_Flood", "MQTT-Malformed_Data",
                                        "Recon-OS_Scan", "Recon-Ping_Sweep", "Recon-Port_Scan", "Recon-VulScan",
                                        "ARP_Spoofing"}
