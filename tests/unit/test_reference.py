"""The benign reference: computed from the bundle's benign training rows only, written into its
manifest without touching a model file, and refused when the data is not the bundle's."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models import DEFAULT_BUNDLE_PATH
from models.bundle import MANIFEST, load_bundle, read_manifest
from models.reference import BenignReference, ReferenceError, reference_of
from models.training.datasets import load_flows_pandas
from models.training.reference import ReferenceDataError, add_reference
from models.training.split import TRAIN, SplitConfig, split_frame
from schemas.flow_record import FEATURES


def test_quantiles_of_hand_made_rows_leave_out_infinite_and_empty_cells() -> None:
    column = np.array([*range(1, 101), np.inf, np.nan], dtype=float)  # 1..100, then inf and empty
    rows = np.column_stack([column, np.zeros_like(column)])
    reference = BenignReference.of_rows(rows, ("a", "b"))
    assert reference.median == (50.5, 0.0)
    assert reference.p1 == pytest.approx((1.99, 0.0))  # numpy's linear rule: 1 + 0.01 * 99
    assert reference.p99 == pytest.approx((99.01, 0.0))
    assert reference.rows == 102
    with pytest.raises(ReferenceError, match="no finite benign value"):
        BenignReference.of_rows(np.array([[np.inf], [np.nan]]), ("a",))


def test_the_default_bundle_carries_its_benign_training_reference(shared_data) -> None:
    manifest = json.loads((DEFAULT_BUNDLE_PATH / MANIFEST).read_text())
    reference = reference_of(manifest)
    assert reference is not None and reference.features == FEATURES
    # recomputed here from the benign file's rows the manifest's split puts in training
    frame = load_flows_pandas([shared_data / "ciciomt2024" / "Benign_test.pcap.csv"])
    train = frame[split_frame(frame, SplitConfig.from_description(manifest["split"])).eq(TRAIN)]
    assert reference.rows == len(train) == manifest["training_metrics"]["rows"]["benign_train"]
    rate = train["Rate"].to_numpy()
    assert reference.median[FEATURES.index("Rate")] == pytest.approx(np.median(rate[np.isfinite(rate)]))
    # a held-out benign row changes nothing: only training rows count
    assert len(train) < len(frame)


def test_add_reference_rewrites_only_the_manifest(tmp_path, shared_data) -> None:
    bundle = tmp_path / "v3"
    shutil.copytree(DEFAULT_BUNDLE_PATH, bundle, ignore=shutil.ignore_patterns("evaluation.html"))
    before = read_manifest(bundle)
    stripped = {k: v for k, v in before.items() if k != "benign_reference"}
    (bundle / MANIFEST).write_text(json.dumps(stripped, indent=2))
    assert load_bundle(bundle).reference is None

    add_reference(bundle, [shared_data / "ciciomt2024"])
    after = read_manifest(bundle)
    assert after["benign_reference"] == before["benign_reference"]
    assert {k: v for k, v in after.items() if k != "benign_reference"} == stripped
    assert load_bundle(bundle).reference == reference_of(before)


def test_add_reference_refuses_other_data(tmp_path, sample_dir) -> None:
    bundle = tmp_path / "v3"
    shutil.copytree(DEFAULT_BUNDLE_PATH, bundle, ignore=shutil.ignore_patterns("evaluation.html"))
    with pytest.raises(ReferenceDataError):  # the sample holds subsets of the files: other bytes, fewer files
        add_reference(bundle, [sample_dir])
