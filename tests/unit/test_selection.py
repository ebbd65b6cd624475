"""The inner split used for model selection never holds a test row and splits attack training rows."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.training.selection import inner_split
from models.training.split import TEST, SplitConfig, split_frame

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "ciciomt2024-sample"


@pytest.mark.skipif(not SAMPLE.exists(), reason="the committed sample is missing")
def test_inner_split_excludes_test_rows() -> None:
    frame = load_flows_pandas(list_flow_csvs([SAMPLE]))
    benign_train, fit, validation = inner_split(frame)
    test_index = set(frame.index[split_frame(frame, SplitConfig()).eq(TEST)])
    assert not test_index & (set(fit.index) | set(validation.index) | set(benign_train.index))
    assert not set(fit.index) & set(validation.index)
    assert set(benign_train.index) <= set(fit.index)
    assert (validation["label"] == "Benign").any() and (validation["label"] != "Benign").any()
