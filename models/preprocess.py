"""Imputation, log transform and scaling, fitted on benign training rows and frozen as plain numbers.

``transform`` is a pure function of the fitted values (all JSON-serialisable, stored in the
bundle's ``manifest.json``). For every feature ``j``, in this order:

1. ``+inf`` -> ``upper_cap[j]`` and ``-inf`` -> ``lower_cap[j]`` (policy ``"cap"``, the default), or
   both -> missing (policy ``"impute"``). ``upper_cap = 10 * max(|benign max|, 1)``: an infinite
   ``Rate`` (a window with zero inter-arrival time) stays *far above* anything benign instead of
   imputed to the benign median, where it would look normal. Measured on validation rows: with the
   final scaling, capping and imputing gave the same AE ROC-AUC (0.9516); capping is kept because it
   keeps the meaning (an extreme rate) instead of erasing it.
2. NaN (empty cell or missing value) -> ``median[j]`` of the benign training rows.
3. where ``log_unit[j] > 0``: ``x -> sign(x) * log1p(|x| / log_unit[j])``. ``log_unit`` is the 5th
   percentile of the non-zero ``|x|`` of benign training rows; the transform is used for features that
   span more than two decades (``p99 / unit > 100``) in benign training data (Rate, IAT, sizes,
   variance ...), so that e.g. an IAT of 2e-5 s (floods) and 1.5e-2 s (benign) lie far apart.
4. ``z = (x - center[j]) / scale[j]`` with the mean and ``max(std, std_floor)`` of the benign training
   rows; ``std_floor = 1`` (measured against 0.01, 0.1 and 0.3: smaller floors blow up rare benign
   deviations in near-constant features and lowered the AE's validation ROC-AUC from 0.952 to 0.939-0.946).
5. ``z`` clipped to ``[-clip, clip]`` and returned as float32.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

InfPolicy = Literal["cap", "impute"]


class PreprocessError(ValueError):
    """Input that cannot be preprocessed (wrong columns or shape, unfitted values)."""


class MissingFeatureError(PreprocessError):
    """A frame lacks some of the 39 feature columns."""


@dataclass(frozen=True)
class Preprocessor:
    """Fitted values; ``transform`` depends on nothing else."""

    features: tuple[str, ...]
    inf_policy: InfPolicy
    upper_cap: tuple[float, ...]
    lower_cap: tuple[float, ...]
    median: tuple[float, ...]
    log_unit: tuple[float, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    clip: float
    # the features the models read, in this order (None: all of ``features``); the others are still
    # read, cleaned and validated, but no model sees them (a window-invariant bundle)
    model_features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in ("upper_cap", "lower_cap", "median", "log_unit", "center", "scale"):
            if len(getattr(self, name)) != n:
                raise PreprocessError(f"{name} has {len(getattr(self, name))} values for {n} features")
        if any(s <= 0 for s in self.scale):
            raise PreprocessError("every scale must be positive")
        if self.model_features is not None and not set(self.model_features) <= set(self.features):
            raise PreprocessError(f"model features {sorted(set(self.model_features) - set(self.features))} are "
                                  "not among the features")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the model input's columns."""
        return self.model_features if self.model_features is not None else self.features

    def _model_columns(self, x: np.ndarray) -> np.ndarray:
        if self.model_features is None:
            return x
        return x[:, [self.features.index(name) for name in self.model_features]]

    def matrix(self, data: np.ndarray | pd.DataFrame) -> np.ndarray:
        """The raw features as a float64 (n, n_features) array in this preprocessor's order."""
        if isinstance(data, pd.DataFrame):
            missing = [name for name in self.features if name not in data.columns]
            if missing:
                raise MissingFeatureError(
                    f"input lacks {len(missing)} feature column(s): {missing}; pass the 39 CICIoMT2024 "
                    "features under their dataset names (schemas.flow_record.FEATURES)")
            return data.loc[:, list(self.features)].to_numpy(dtype=np.float64, na_value=np.nan)
        array = np.asarray(data, dtype=np.float64)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(self.features):
            raise PreprocessError(
                f"expected an array of shape (n, {len(self.features)}) in FEATURES order, got {array.shape}")
        return array

    def clean(self, data: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Steps 1-2: infinities capped (or imputed) and missing values imputed; float64."""
        return self._clean(self.matrix(data).copy())

    def _clean(self, x: np.ndarray) -> np.ndarray:
        """Steps 1-2 in place on a float64 matrix of this preprocessor's features. Only the
        non-finite cells are touched (the same values as capping / imputing every cell)."""
        bad = ~np.isfinite(x)
        if bad.any():
            rows, cols = np.nonzero(bad)
            values = x[rows, cols]
            fill = np.asarray(self.median)[cols]
            if self.inf_policy == "cap":
                fill = np.where(values > 0, np.asarray(self.upper_cap)[cols], fill)  # +inf
                fill = np.where(values < 0, np.asarray(self.lower_cap)[cols], fill)  # -inf
            x[rows, cols] = fill
        return x

    def _log(self, x: np.ndarray) -> np.ndarray:
        """Step 3 in place on the logged columns of a cleaned float64 matrix."""
        unit = np.asarray(self.log_unit)
        logged = np.flatnonzero(unit > 0)
        if logged.size:
            part = x[:, logged]
            # |x| beyond the largest double times the unit would overflow the division: such a value
            # is clipped at step 5 whatever its size, so it is bounded here first (no inf, no warning)
            magnitude = np.minimum(np.abs(part), np.finfo(np.float64).max * np.minimum(unit[logged], 1.0))
            x[:, logged] = np.sign(part) * np.log1p(magnitude / unit[logged])
        return x

    def _scale(self, x: np.ndarray) -> np.ndarray:
        """Steps 4-5 on a cleaned, logged float64 matrix: float32 model input."""
        z = (x - np.asarray(self.center)) / np.asarray(self.scale)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def unscaled(self, data: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Steps 1-3: cleaned and log-transformed; float64."""
        return self._log(self.clean(data))

    def transform(self, data: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Model input: float32 (n, len(inputs))."""
        return self._model_columns(self._scale(self.unscaled(data)))

    def clean_and_transform(self, data: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(clean(data), transform(data))`` reading and cleaning ``data`` once (the cleaned matrix
        has every feature; the model input only :attr:`inputs`)."""
        cleaned = self.clean(data)
        return cleaned, self._model_columns(self._scale(self._log(cleaned.copy())))

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Preprocessor":
        try:
            return cls(
                features=tuple(values["features"]), inf_policy=values["inf_policy"],
                upper_cap=tuple(map(float, values["upper_cap"])), lower_cap=tuple(map(float, values["lower_cap"])),
                median=tuple(map(float, values["median"])), log_unit=tuple(map(float, values["log_unit"])),
                center=tuple(map(float, values["center"])), scale=tuple(map(float, values["scale"])),
                clip=float(values["clip"]),
                model_features=tuple(values["model_features"]) if values.get("model_features") else None)
        except KeyError as missing:
            raise PreprocessError(f"preprocessing values lack {missing}; retrain the bundle") from None


