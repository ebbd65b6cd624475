"""Fitting the preprocessing (``models.preprocess.Preprocessor``) on benign training rows."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.preprocess import InfPolicy, PreprocessError, Preprocessor
from schemas.flow_record import FEATURES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    """How the preprocessor is fitted."""

    inf_policy: InfPolicy = "cap"
    use_log: bool = True
    log_min_span: float = 100.0   # a feature gets the log when benign p99 / unit exceeds this
    log_unit_quantile: float = 0.05
    std_floor: float = 1.0
    clip: float = 50.0
    cap_factor: float = 10.0



def fit_preprocessor(benign_train: np.ndarray | pd.DataFrame, config: PreprocessConfig = PreprocessConfig(),
                     features: Sequence[str] = FEATURES, model_features: Sequence[str] | None = None) -> Preprocessor:
    """Fit on benign training rows only; ``model_features`` (default: all) are the models' inputs."""
    features = tuple(features)
    raw = Preprocessor(features, config.inf_policy, *([(0.0,) * len(features)] * 5), (1.0,) * len(features),
                       config.clip).matrix(benign_train)
    if raw.shape[0] < 2:
        raise PreprocessError("need at least 2 benign training rows to fit the preprocessor")
    finite = np.where(np.isfinite(raw), raw, np.nan)
    if np.isnan(finite).all(axis=0).any():
        bad = [f for f, empty in zip(features, np.isnan(finite).all(axis=0)) if empty]
        raise PreprocessError(f"benign training rows have no finite value for {bad}")
    upper = config.cap_factor * np.maximum(np.abs(np.nanmax(finite, axis=0)), 1.0)
    lower = -config.cap_factor * np.maximum(np.abs(np.nanmin(finite, axis=0)), 1.0)
    median = np.nanmedian(finite, axis=0)
    partial = Preprocessor(features, config.inf_policy, tuple(upper), tuple(lower), tuple(median),
                           (0.0,) * len(features), (0.0,) * len(features), (1.0,) * len(features), np.inf)
    cleaned = partial.clean(raw)
    units = np.zeros(len(features))
    if config.use_log:
        for j in range(len(features)):
            magnitude = np.abs(cleaned[:, j])
            nonzero = magnitude[magnitude > 0]
            if nonzero.size == 0:
                continue
            unit = float(np.quantile(nonzero, config.log_unit_quantile))
            if unit > 0 and float(np.quantile(magnitude, 0.99)) / unit > config.log_min_span:
                units[j] = unit
    staged = Preprocessor(features, config.inf_policy, tuple(upper), tuple(lower), tuple(median), tuple(units),
                          (0.0,) * len(features), (1.0,) * len(features), np.inf)
    logged = staged.unscaled(raw)
    center = logged.mean(axis=0)
    scale = np.maximum(logged.std(axis=0), config.std_floor)
    fitted = Preprocessor(features, config.inf_policy, tuple(map(float, upper)), tuple(map(float, lower)),
                          tuple(map(float, median)), tuple(map(float, units)), tuple(map(float, center)),
                          tuple(map(float, scale)), float(config.clip),
                          tuple(model_features) if model_features is not None else None)
    log.info("preprocessor fitted on %d benign rows; log transform on %s", raw.shape[0],
             [f for f, u in zip(features, units) if u > 0])
    return fitted
