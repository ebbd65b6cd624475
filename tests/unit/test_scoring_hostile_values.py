"""The scoring core takes any double a record can carry, and one row the models cannot score never
fails its batch (while a bundle that cannot score at all still does)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.bundle import load_bundle
from schemas.flow_record import FEATURES
from tests.helpers.fuzzing import fuzz_settings, seeded
from tests.helpers.streaming import BUNDLE
from udfs.scoring import OUTPUT_COLUMNS, score_frame, score_frame_guarded

N = len(FEATURES)
EXTREMES = [0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324,
            3.5e38, -3.5e38, 1e10, float("inf"), float("-inf"), float("nan")]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE)


def _frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(FEATURES))


any_double = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))


@pytest.mark.fuzz
@seeded
@fuzz_settings(ci_examples=60)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(N)), elements=any_double))
def test_any_doubles_are_scored(bundle, rows: np.ndarray) -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow or NaN on the way either
        scored = score_frame(_frame(rows), bundle)
    assert len(scored) == len(rows)
    for name in ("ae_error", "if_score", "clf_attack_proba", "ensemble_score"):
        assert np.isfinite(scored[name].to_numpy(dtype=np.float64)).all(), name
    assert scored["is_anomaly"].isin([True, False]).all()
    assert scored["predicted_class"].notna().all() and scored["severity"].notna().all()


class _FailsOnMarkedRows:
    """The bundle's real classifier, failing on rows whose scaled Header_Length is beyond a mark
    (a stand-in for a model runtime that chokes on one input)."""

    def __init__(self, real, column: int, mark: float) -> None:
        self.real, self.column, self.mark = real, column, mark
        self.input = getattr(real, "input", "scaled")

    def inputs(self, *args, **kwargs):
        return self.real.inputs(*args, **kwargs)

    def predict(self, x):
        if (np.asarray(x)[:, self.column] > self.mark).any():
            raise ValueError("runtime refused the input")
        return self.real.predict(x)


def _benign_rows(bundle, n: int) -> pd.DataFrame:
    return _frame(np.tile(np.asarray(bundle.preprocessor.median), (n, 1)))


def test_a_row_the_models_cannot_score_gets_an_error_not_the_batch(bundle) -> None:
    rows = _benign_rows(bundle, 6)
    rows.loc[[1, 4], "Header_Length"] = 1e12
    clean = score_frame(_benign_rows(bundle, 1), bundle)
    marked = _FailsOnMarkedRows(bundle.classifier, FEATURES.index("Header_Length"), mark=1e9)
    if marked.input == "scaled":  # the scaled value of 1e12 is clipped: mark what reaches the model
        marked.mark = float(bundle.preprocessor.transform(_benign_rows(bundle, 1))[0, 0]) + 1e-3
    broken = dataclasses.replace(bundle, classifier=marked)

    scored = score_frame_guarded(rows, broken)

    assert list(scored.index) == list(rows.index)
    assert scored["scoring_error"].tolist() == [None, "ValueError: runtime refused the input", None, None,
                                                "ValueError: runtime refused the input", None]
    good = scored.drop(index=[1, 4])
    assert good["ensemble_score"].tolist() == pytest.approx([clean["ensemble_score"].iloc[0]] * 4)
    assert scored.loc[[1, 4], "ensemble_score"].isna().all()
    assert set(scored.columns) == {*OUTPUT_COLUMNS, "scoring_error"}


def test_a_bundle_that_cannot_score_fails_the_batch(bundle) -> None:
    class Broken:
        input = "scaled"

        def predict(self, x):
            raise RuntimeError("model file unreadable")

    with pytest.raises(RuntimeError, match="model file unreadable"):
        score_frame_guarded(_benign_rows(bundle, 3), dataclasses.replace(bundle, classifier=Broken()))
