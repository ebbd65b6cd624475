"""Why a record was flagged, in words an analyst reads: the detectors that fired (score against
threshold), the classifier's class and its probability, and the features that stand out most against
the bundle's benign reference (:mod:`models.reference`), e.g.::

    ensemble 5.21 > 1.03; fired: isolation forest 0.712 > 0.633, classifier P(attack) 1 > 0.971;
    class DDoS-SYN (p 0.98); stands out: syn_flag_number 100% (normal 0%, p99 10%), Rate 250,000 pkt/s
    (normal 147, p99 99,400), IAT 4e-06 s (normal 0.0149, p1 1.12e-05)

How far a feature stands out: above the benign p99 by ``(x - p99) / (p99 - median)``, below the p1
by ``(p1 - x) / (median - p1)``; where that span is zero (a feature constant in benign training
traffic, such as most flags) the unit is ``max(|p99|, 1)`` (``max(|p1|, 1)`` below). Inside
``[p1, p99]`` a feature does not stand out; an infinite value stands out most; an empty one not at
all. Only the features the models read are named (a window-invariant bundle leaves ``Number`` and the
counts out), at most three, furthest first. Pure NumPy over the alerts' rows; the text is built
once per alert.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    from models.reference import BenignReference

TOP_FEATURES: Final[int] = 3
DETECTORS: Final[tuple[tuple[str, str], ...]] = (
    ("lstm_ae", "autoencoder"), ("iforest", "isolation forest"), ("classifier", "classifier P(attack)"))
# features shown as a share of the window's packets (0..1 -> %)
SHARES: Final[frozenset[str]] = frozenset({
    "fin_flag_number", "syn_flag_number", "rst_flag_number", "psh_flag_number", "ack_flag_number",
    "ece_flag_number", "cwr_flag_number", "HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC", "TCP", "UDP",
    "DHCP", "ARP", "ICMP", "IGMP", "IPv", "LLC"})
UNITS: Final[dict[str, str]] = {
    "Rate": "pkt/s", "IAT": "s", "Number": "pkts", "Header_Length": "B", "Tot sum": "B", "Min": "B", "Max": "B",
    "AVG": "B", "Std": "B", "Tot size": "B", "Variance": "B²"}


def human(value: float) -> str:
    """A number for people: three significant digits, thousands separated (``28,000``, ``147``,
    ``0.0149``, ``1.12e-05``); ``inf``, ``-inf``, ``n/a`` for what is not finite."""
    magnitude = abs(value)
    if magnitude < 999.5:  # the common case first (NaN compares false); 999.5 rounds to 1,000
        return f"{value:.3g}"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{float(f'{value:.3g}'):,.0f}"


def feature_value(name: str, value: float) -> str:
    """``value`` of feature ``name`` with its unit (a share as a percentage)."""
    if name in SHARES and math.isfinite(value):
        return f"{human(100.0 * value)}%"
    unit = UNITS.get(name)
    return f"{human(value)} {unit}" if unit else human(value)


def outside_scores(raw: np.ndarray, p1: np.ndarray, median: np.ndarray, p99: np.ndarray) -> np.ndarray:
    """How far each cell of ``raw`` (n, features) lies outside the benign ``[p1, p99]`` of its
    column, in units of the benign spread on that side (module doc); 0 inside, +inf for infinite cells."""
    x = np.asarray(raw, dtype=np.float64)
    up = np.where(p99 > median, p99 - median, np.maximum(np.abs(p99), 1.0))
    down = np.where(median > p1, median - p1, np.maximum(np.abs(p1), 1.0))
    with np.errstate(invalid="ignore", over="ignore"):
        score = np.maximum((x - p99) / up, (p1 - x) / down)
    score = np.where(np.isnan(score), 0.0, score)
    return np.maximum(score, 0.0)


def standing_out(raw: np.ndarray, reference: "BenignReference", columns: Sequence[int],
                 k: int = TOP_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, score) of the ``k`` features of ``columns`` that stand out most in each row of
    ``raw`` (furthest first; ties by feature order); a score of 0 means the feature does not stand out."""
    p1, median, p99 = (values[list(columns)] for values in reference.arrays())
    scores = outside_scores(np.asarray(raw, dtype=np.float64)[:, list(columns)], p1, median, p99)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.asarray(columns)[order], np.take_along_axis(scores, order, axis=1)


def _bounds(reference: "BenignReference") -> tuple[list[str], list[str]]:
    """Per feature, the text after a value above its p99 and after one below its p1."""
    p1, median, p99 = (values.tolist() for values in reference.arrays())
    above, below = [], []
    for j, name in enumerate(reference.features):
        normal = f"(normal {feature_value(name, median[j])}, "
        above.append(f"{normal}p99 {feature_value(name, p99[j])})")
        below.append(f"{normal}p1 {feature_value(name, p1[j])})")
    return above, below


def explain(raw: np.ndarray, scores: dict[str, np.ndarray], predicted_class: Sequence[str],
            class_proba: np.ndarray, thresholds: dict, reference: "BenignReference | None",
            columns: Sequence[int]) -> list[str]:
    """One explanation per row: ``raw`` the rows' raw features (n, features in the reference's order),
    ``scores`` the detectors' scores (``lstm_ae``, ``iforest``, ``classifier``, ``ensemble``),
    ``thresholds`` the bundle's (:class:`models.thresholds.Threshold` by the same names), ``columns``
    the indices of the features the models read. The numbers of every row are formatted in one pass
    per column, the texts per feature once per call."""
    n = len(class_proba)
    if n == 0:
        return []
    limits = {name: human(thresholds[name].value) for name in ("lstm_ae", "iforest", "classifier", "ensemble")
              if name in thresholds}
    values = {name: np.asarray(scores[name], dtype=np.float64) for name in limits}
    heads = [f"ensemble {v:.3g} > {limits['ensemble']}; fired: " for v in values["ensemble"].tolist()]
    fired: list[list[str]] = [[] for _ in range(n)]
    for name, label in DETECTORS:
        if name not in limits:  # a bundle without this detector's own threshold
            continue
        above = values[name] > thresholds[name].value
        for i, v in zip(np.flatnonzero(above).tolist(), values[name][above].tolist()):
            fired[i].append(f"{label} {v:.3g} > {limits[name]}")
    classes = [f"; class {c} (p {p:.2f})" if p == p else f"; class {c}"
               for c, p in zip(list(predicted_class), np.asarray(class_proba, dtype=np.float64).tolist())]
    tails = [""] * n
    if reference is not None:
        top, top_scores = standing_out(raw, reference, columns)
        above_p99, below_p1 = _bounds(reference)
        p99 = reference.arrays()[2]
        features = reference.features
        picked = np.take_along_axis(np.asarray(raw, dtype=np.float64), top, axis=1)
        for i, (indices, outside, xs) in enumerate(zip(top.tolist(), top_scores.tolist(), picked.tolist())):
            named = [f"{features[j]} {feature_value(features[j], x)} {above_p99[j] if x > p99[j] else below_p1[j]}"
                     for j, score, x in zip(indices, outside, xs) if score > 0]
            tails[i] = "; stands out: " + (", ".join(named) if named else "no feature outside the benign p1-p99")
    return [head + (", ".join(f) if f else "no detector alone (their combination)") + c + t
            for head, f, c, t in zip(heads, fired, classes, tails)]
