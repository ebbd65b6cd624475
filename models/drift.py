"""The drift reference of a bundle and the Population Stability Index (PSI) that measures how far
live traffic has moved from it (``manifest.json``, section ``drift_reference``; pinned with the
manifest like every training value).

For each feature the models read, the reference holds bin edges (the deciles of the benign training
rows, repeated values merged) and the share of those rows in each bin; for the ensemble score, the
same over the benign *validation* rows (the rows its thresholds were calibrated on: the training
rows' own scores are optimistic). Bins are closed on the right: bin 0 is ``(-inf, e0]``, bin ``i``
is ``(e[i-1], e[i]]``, the last ``(e[-1], +inf]``; the first edge lies just below the reference's
smallest value, so bin 0 holds what lies below anything the reference held (share 0), a binary flag
gets "below 0", "0" and "above 0", and ``Infinity`` lands in the last bin; a missing value (null,
NaN) is in no bin.

PSI = sum over bins of ``(a - e) * ln(a / e)`` with ``a`` the live share and ``e`` the reference
share, each at least :data:`EPSILON` (a bin the reference never saw still counts). Usual reading:
below 0.1 no shift, 0.1-0.2 a moderate one, above 0.2 a significant one. On ``n`` live records and
``k`` bins an unshifted sample still scores about ``(k - 1) / n`` by chance alone, hence a minimum
of records before a figure is taken as drift (``drift.min_records``).

Written by ``iomt-ad train`` and added to an existing bundle by ``iomt-ad reference``
(:mod:`models.training.drift_reference`); a bundle without one scores as before and the stream
measures no drift with it (and says so once).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

SECTION: Final[str] = "drift_reference"
SCORE_MEASURE: Final[str] = "ensemble_score"  # the measure of the score distribution
DEFAULT_BINS: Final[int] = 10
EPSILON: Final[float] = 1e-4  # the least share a bin counts with in PSI
NO_BIN: Final[int] = -1       # bin_of a missing value


class DriftReferenceError(ValueError):
    """A drift reference that cannot be used (no finite value, shares that are not a distribution)."""


@dataclass(frozen=True)
class BinnedDistribution:
    """Bins (right-closed, between ``edges``) and the reference's share of rows in each."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    rows: int

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.float64)
        shares = np.asarray(self.shares, dtype=np.float64)
        if len(shares) != len(edges) + 1:
            raise DriftReferenceError(f"{len(edges)} edges need {len(edges) + 1} shares, not {len(shares)}")
        if not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise DriftReferenceError("bin edges must be finite and strictly increasing")
        if (shares < 0).any() or not np.isclose(shares.sum(), 1.0, atol=1e-6):
            raise DriftReferenceError("bin shares must be non-negative and add up to 1")

    @property
    def bins(self) -> int:
        return len(self.shares)

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value (int64), :data:`NO_BIN` for a missing one."""
        x = np.asarray(values, dtype=np.float64)
        bins = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="left").astype(np.int64)
        bins[np.isnan(x)] = NO_BIN
        return bins

    def counts(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each bin (missing ones in none)."""
        bins = self.bin_of(values)
        return np.bincount(bins[bins != NO_BIN], minlength=self.bins).astype(np.int64)

    def psi(self, counts: np.ndarray) -> float:
        """PSI of live ``counts`` (one per bin) against this reference; NaN with no count at all."""
        return psi(np.asarray(self.shares, dtype=np.float64), counts)

    @classmethod
    def of_values(cls, values: np.ndarray, bins: int = DEFAULT_BINS) -> "BinnedDistribution":
        """Quantile bins of ``values``: the ``bins``-quantiles of their finite part as edges (repeated
        ones merged), every non-missing value (infinities too) counted in the shares."""
        x = np.asarray(values, dtype=np.float64)
        present = x[~np.isnan(x)]
        finite = present[np.isfinite(present)]
        if finite.size == 0:
            raise DriftReferenceError("no finite value to bin")
        # the deciles, and a cut just below the smallest value: values below anything the reference
        # held (a flag that was always 1 reading 0) get a bin of their own, of share 0
        lowest = np.nextafter(finite.min(), -np.inf)
        edges = np.unique(np.r_[lowest, np.quantile(finite, np.arange(1, bins) / bins)])
        distribution = cls(edges=tuple(float(e) for e in edges), shares=(1.0,) + (0.0,) * len(edges), rows=0)
        counts = distribution.counts(present)
        return cls(edges=distribution.edges, shares=tuple(float(c) for c in counts / counts.sum()),
                   rows=int(present.size))

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares), "rows": self.rows}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BinnedDistribution":
        return cls(edges=tuple(float(v) for v in values["edges"]), shares=tuple(float(v) for v in values["shares"]),
                   rows=int(values["rows"]))


def psi(reference_shares: np.ndarray, counts: np.ndarray, epsilon: float = EPSILON) -> float:
    """The Population Stability Index of live ``counts`` against ``reference_shares`` (same bins);
    each share is taken as at least ``epsilon``. NaN when ``counts`` holds no record."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(reference_shares, dtype=np.float64)
    if counts.shape != expected.shape:
        raise DriftReferenceError(f"{counts.size} counts against {expected.size} reference bins")
    total = counts.sum()
    if total <= 0:
        return float("nan")
    actual = np.maximum(counts / total, epsilon)
    expected = np.maximum(expected, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class DriftReference:
    """Per measure (the features the models read under their dataset names, and
    :data:`SCORE_MEASURE`), its reference distribution."""

    measures: Mapping[str, BinnedDistribution]
    source: str = "features: benign training rows; ensemble_score: benign validation rows"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(name for name in self.measures if name != SCORE_MEASURE)

    def to_dict(self) -> dict[str, Any]:
        return {"measures": {name: d.to_dict() for name, d in self.measures.items()}, "source": self.source,
                "rule": "bins closed on the right between the deciles of the reference's finite values (repeats "
                        "merged) and below its smallest one; shares of every non-missing value; PSI with each "
                        f"share at least {EPSILON:g}"}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DriftReference":
        return cls(measures={name: BinnedDistribution.from_dict(d) for name, d in values["measures"].items()},
                   source=str(values.get("source", cls.source)))

    @classmethod
    def of_rows(cls, features: Mapping[str, np.ndarray], scores: np.ndarray,
                bins: int = DEFAULT_BINS) -> "DriftReference":
        """The reference of benign training rows (``features``: name -> values) and benign validation
        scores; a feature without a finite value is left out (nothing to compare it with)."""
        measures: dict[str, BinnedDistribution] = {}
        for name, values in features.items():
            try:
                measures[name] = BinnedDistribution.of_values(values, bins)
            except DriftReferenceError:
                continue
        measures[SCORE_MEASURE] = BinnedDistribution.of_values(scores, bins)
        return cls(measures=measures)


def drift_reference_of(manifest: Mapping[str, Any]) -> DriftReference | None:
    """The bundle's drift reference, or None when its manifest has none (bundles before it existed)."""
    section = manifest.get(SECTION)
    if not section:
        return None
    reference = DriftReference.from_dict(section)
    unknown = set(reference.features) - set(manifest["features"])
    if unknown:
        raise DriftReferenceError(f"drift reference: {sorted(unknown)} are not features of the bundle")
    return reference
