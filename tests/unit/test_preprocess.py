"""Preprocessing against values worked out by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from models.preprocess import MissingFeatureError, PreprocessError, Preprocessor
from models.training.preprocessing import PreprocessConfig, fit_preprocessor
from schemas.flow_record import FEATURES


def hand_preprocessor(policy: str = "cap") -> Preprocessor:
    # feature a: no log, center 1, scale 2; feature b: log with unit 1, center 0, scale 1
    return Preprocessor(features=("a", "b"), inf_policy=policy, upper_cap=(100.0, 10.0), lower_cap=(-100.0, -10.0),
                        median=(5.0, 2.0), log_unit=(0.0, 1.0), center=(1.0, 0.0), scale=(2.0, 1.0), clip=50.0)


def test_transform_by_hand() -> None:
    x = np.array([[np.inf, np.nan], [3.0, math.e - 1], [-np.inf, -(math.e - 1)], [1.0, 0.0]])
    out = hand_preprocessor().transform(x)
    assert out.dtype == np.float32
    expected = np.array([
        [49.5, 1.0986123],   # a: inf -> cap 100 -> (100-1)/2 ; b: NaN -> median 2 -> ln(1 + 2) = ln 3
        [1.0, 1.0],          # a: (3-1)/2 ; b: ln(1 + (e-1)) = 1
        [-50.0, -1.0],       # a: -inf -> -100 -> -50.5, clipped to -50 ; b: -ln(e) = -1
        [0.0, 0.0],
    ], dtype=np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_impute_policy_sends_inf_to_the_median() -> None:
    out = hand_preprocessor("impute").transform(np.array([[np.inf, -np.inf]]))
    # a: 5 -> (5-1)/2 = 2 ; b: 2 -> ln 3
    np.testing.assert_allclose(out, [[2.0, 1.0986123]], rtol=1e-6)


def test_frame_columns_are_taken_by_name_not_position() -> None:
    frame = pd.DataFrame({"b": [math.e - 1], "extra": ["x"], "a": [3.0]})
    np.testing.assert_allclose(hand_preprocessor().transform(frame), [[1.0, 1.0]], rtol=1e-6)


def test_missing_column_and_bad_shape_are_refused() -> None:
    with pytest.raises(MissingFeatureError, match="'b'"):
        hand_preprocessor().transform(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(PreprocessError):
        hand_preprocessor().transform(np.zeros((2, 3)))


def test_fit_by_hand() -> None:
    benign = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 0.0, 0.0, 0.0],
                           "c": [0.001, 0.01, 1.0, 10.0]})
    fitted = fit_preprocessor(benign, PreprocessConfig(std_floor=1.0), features=("a", "b", "c"))
    # a: median 2.5, mean 2.5, population std sqrt(1.25) = 1.1180; spans < 2 decades -> no log
    assert fitted.median[0] == 2.5 and fitted.center[0] == 2.5
    assert fitted.scale[0] == pytest.approx(1.118034, rel=1e-6)
    assert fitted.log_unit[0] == 0.0
    # caps: 10 * max(|max|, 1) and -10 * max(|min|, 1)
    assert fitted.upper_cap[:2] == (40.0, 10.0) and fitted.lower_cap[:2] == (-10.0, -10.0)
    # b: constant -> std 0 -> floor 1, center 0, no log (no non-zero value)
    assert fitted.scale[1] == 1.0 and fitted.center[1] == 0.0 and fitted.log_unit[1] == 0.0
    # c: unit = 5th percentile of (0.001, 0.01, 1, 10) = 0.001 + 0.15 * 0.009 = 0.00235;
    # p99 = 1 + 0.97 * 9 = 9.73 -> 9.73 / 0.00235 > 100 -> log
    assert fitted.log_unit[2] == pytest.approx(0.00235, rel=1e-9)
    # a row equal to the benign mean of a maps to 0; b = 3 maps to 3 (scale 1)
    out = fitted.transform(np.array([[2.5, 3.0, 0.0]]))
    assert out[0, 0] == pytest.approx(0.0, abs=1e-7) and out[0, 1] == pytest.approx(3.0)


def test_fitted_values_are_plain_json_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    benign = pd.DataFrame(rng.lognormal(size=(50, len(FEATURES))), columns=list(FEATURES))
    fitted = fit_preprocessor(benign)
    restored = Preprocessor.from_dict(json.loads(json.dumps(fitted.to_dict(), allow_nan=False)))
    assert restored == fitted
    probe = benign.copy()
    probe.iloc[0, 3] = np.inf
    probe.iloc[1, 5] = np.nan
    np.testing.assert_array_equal(restored.transform(probe), fitted.transform(probe))
    assert np.isfinite(fitted.transform(probe)).all()


def test_fit_refuses_too_few_rows() -> None:
    with pytest.raises(PreprocessError):
        fit_preprocessor(pd.DataFrame({"a": [1.0]}), features=("a",))
