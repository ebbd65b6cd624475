"""The benign reference of a bundle: per feature, the 1st percentile, the median and the 99th
percentile of the benign rows its detectors were trained on (``manifest.json``, section
``benign_reference``; pinned with the manifest like every training value).

Explanations (:mod:`models.explain`) compare an alert's raw feature values with it, in the units the
sensor measures (``Rate 28,000 pkt/s (normal 150, p99 900)``). Written by ``iomt-ad train`` and added
to an existing bundle by ``iomt-ad reference`` (:mod:`models.training.reference`); a bundle without one
still scores, and its explanations leave the feature part out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

SECTION: Final[str] = "benign_reference"
QUANTILES: Final[tuple[str, ...]] = ("p1", "median", "p99")


class ReferenceError(ValueError):
    """A benign reference that does not fit the bundle (features, lengths, non-finite values)."""


@dataclass(frozen=True)
class BenignReference:
    """Per-feature quantiles of the benign training rows, in ``features`` order."""

    features: tuple[str, ...]
    p1: tuple[float, ...]
    median: tuple[float, ...]
    p99: tuple[float, ...]
    rows: int
    source: str = "benign_train"

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in QUANTILES:
            values = getattr(self, name)
            if len(values) != n or not np.isfinite(np.asarray(values, dtype=np.float64)).all():
                raise ReferenceError(f"benign reference: {name} must hold {n} finite values")
        if not (np.asarray(self.p1) <= np.asarray(self.median)).all() or \
                not (np.asarray(self.median) <= np.asarray(self.p99)).all():
            raise ReferenceError("benign reference: p1 <= median <= p99 must hold for every feature")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p1, median, p99) as float64 arrays."""
        return (np.asarray(self.p1, dtype=np.float64), np.asarray(self.median, dtype=np.float64),
                np.asarray(self.p99, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "p1": list(self.p1), "median": list(self.median),
                "p99": list(self.p99), "rows": self.rows, "source": self.source,
                "rule": "numpy.nanquantile (linear) of each feature over the benign training rows, +-inf left out"}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BenignReference":
        return cls(features=tuple(values["features"]), p1=tuple(float(v) for v in values["p1"]),
                   median=tuple(float(v) for v in values["median"]), p99=tuple(float(v) for v in values["p99"]),
                   rows=int(values["rows"]), source=str(values.get("source", "benign_train")))

    @classmethod
    def of_rows(cls, rows: np.ndarray, features: tuple[str, ...], source: str = "benign_train") -> "BenignReference":
        """The reference of ``rows`` (an (n, features) matrix of raw values): infinite cells are left
        out, as are empty ones; a feature with no finite value is an error."""
        x = np.asarray(rows, dtype=np.float64).copy()
        if x.ndim != 2 or x.shape[1] != len(features) or x.shape[0] == 0:
            raise ReferenceError(f"benign reference: expected an (n, {len(features)}) matrix with rows, got {x.shape}")
        x[~np.isfinite(x)] = np.nan
        empty = [f for f, column in zip(features, x.T) if np.isnan(column).all()]
        if empty:
            raise ReferenceError(f"benign reference: no finite benign value of {empty}")
        p1, median, p99 = np.nanquantile(x, [0.01, 0.5, 0.99], axis=0)
        return cls(features=tuple(features), p1=tuple(float(v) for v in p1), median=tuple(float(v) for v in median),
                   p99=tuple(float(v) for v in p99), rows=int(x.shape[0]), source=source)


def reference_of(manifest: dict[str, Any]) -> BenignReference | None:
    """The bundle's benign reference, or None when its manifest has none (bundles before it existed)."""
    section = manifest.get(SECTION)
    if not section:
        return None
    reference = BenignReference.from_dict(section)
    if reference.features != tuple(manifest["features"]):
        raise ReferenceError("benign reference: its features are not the bundle's, in the bundle's order")
    return reference
