"""``iomt-ad explore --data FILE_OR_DIR... --html OUT``: feature distributions of benign against
attack traffic in one self-contained HTML page (Plotly): a histogram per feature, scatter plots of
feature pairs, and the rows per class. Heavy-tailed features are drawn on log10(1 + x); ``inf``
cells (``Rate`` holds some) are counted and left out of the plots.
"""
from __future__ import annotations

import argparse
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.training.datasets import LABEL_COLUMN

if TYPE_CHECKING:
    import plotly.graph_objects as go

log = logging.getLogger(__name__)

BENIGN = "Benign"
DEFAULT_FEATURES = ("Rate", "Header_Length", "Tot size", "IAT", "Number", "Protocol Type", "Time_To_Live",
                    "Std", "syn_count", "ack_count")
DEFAULT_PAIRS = (("Rate", "Header_Length"), ("IAT", "Tot size"), ("Time_To_Live", "Std"))
COLORS = {BENIGN: "#1f77b4", "attack": "#d62728"}
LOG_SPAN = 1000.0  # a feature whose finite values span more than this is drawn on log10(1 + x)


def traffic_kind(labels: pd.Series) -> pd.Series:
    return labels.where(labels == BENIGN, "attack")


def display_values(values: pd.Series) -> tuple[pd.Series, str]:
    """Finite values ready to plot, and the axis title (log10(1 + x) for heavy tails)."""
    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() >= 0 and finite.max() - finite.min() > LOG_SPAN:
        return np.log10(1.0 + finite), "log10(1 + {})"
    return finite, "{}"


def histogram_figure(flows: pd.DataFrame, feature: str) -> "go.Figure":
    import plotly.graph_objects as go

    kinds = traffic_kind(flows[LABEL_COLUMN])
    values, axis = display_values(flows[feature])
    figure = go.Figure()
    for kind in (BENIGN, "attack"):
        part = values[kinds.loc[values.index] == kind]
        figure.add_histogram(x=part, name=f"{kind} (n={len(part):,})", histnorm="probability",
                             marker_color=COLORS[kind], opacity=0.6, nbinsx=60)
    skipped = int((~np.isfinite(flows[feature])).sum())
    note = f" — {skipped:,} non-finite cells left out" if skipped else ""
    figure.update_layout(title=f"{feature}: benign vs attack{note}", barmode="overlay",
                         xaxis_title=axis.format(feature), yaxis_title="share of rows", height=360)
    return figure


def scatter_figure(flows: pd.DataFrame, x: str, y: str, max_points: int, seed: int) -> "go.Figure":
    import plotly.graph_objects as go

    finite = flows[np.isfinite(flows[x]) & np.isfinite(flows[y])]
    if len(finite) > max_points:
        finite = finite.sample(n=max_points, random_state=seed)
    kinds = traffic_kind(finite[LABEL_COLUMN])
    xs, x_axis = display_values(finite[x])
    ys, y_axis = display_values(finite[y])
    figure = go.Figure()
    for kind in ("attack", BENIGN):  # benign on top: it is the smaller, more interesting cloud
        mask = kinds == kind
        figure.add_scattergl(x=xs[mask], y=ys[mask], mode="markers", name=kind,
                             marker=dict(color=COLORS[kind], size=4, opacity=0.5),
                             text=finite.loc[mask, LABEL_COLUMN], hovertemplate="%{text}<extra></extra>")
    figure.update_layout(title=f"{x} vs {y} ({len(finite):,} rows)", xaxis_title=x_axis.format(x),
                         yaxis_title=y_axis.format(y), height=420)
    return figure


def class_counts_figure(flows: pd.DataFrame) -> "go.Figure":
    import plotly.graph_objects as go

    counts = flows[LABEL_COLUMN].value_counts().sort_values()
    colors = [COLORS[BENIGN] if name == BENIGN else COLORS["attack"] for name in counts.index]
    figure = go.Figure(go.Bar(x=counts.to_numpy(), y=counts.index, orientation="h", marker_color=colors))
    figure.update_layout(title="Rows per class", xaxis_title="rows", height=max(360, 22 * len(counts) + 100))
    return figure


def build_figures(flows: pd.DataFrame, features: list[str], pairs: list[tuple[str, str]],
                  max_points: int = 5000, seed: int = 0) -> list["go.Figure"]:
    unknown = sorted({*features, *(name for pair in pairs for name in pair)} - set(flows.columns))
    if unknown:
        raise ValueError(f"unknown features {unknown}: use the dataset's column names (e.g. 'Tot size')")
    figures = [class_counts_figure(flows)]
    figures += [histogram_figure(flows, name) for name in features]
    figures += [scatter_figure(flows, x, y, max_points, seed) for x, y in pairs]
    return figures


def write_html(figures: list["go.Figure"], out: Path, title: str) -> None:
    """One page, plotly.js embedded once (works offline)."""
    parts = [figure.to_html(full_html=False, include_plotlyjs=(index == 0))
             for index, figure in enumerate(figures)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title></head>"
        "<body style='font-family: sans-serif'><h1>" + html.escape(title) + "</h1>\n"
        + "\n".join(f"<div class='figure'>{part}</div>" for part in parts) + "\n</body></html>\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="CICIoMT2024 CSV files or directories")
    parser.add_argument("--html", type=Path, required=True, help="the HTML report to write")
    parser.add_argument("--features", nargs="+", default=list(DEFAULT_FEATURES),
                        help="features to draw histograms of (dataset names)")
    parser.add_argument("--max-points", type=int, default=5000, help="rows per scatter plot (sampled)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from models.training.datasets import load_flows_pandas

    flows = load_flows_pandas(args.data)
    figures = build_figures(flows, list(args.features), list(DEFAULT_PAIRS), args.max_points, args.seed)
    benign = int((flows[LABEL_COLUMN] == BENIGN).sum())
    write_html(figures, args.html, f"IoMT-AD · feature distributions ({benign:,} benign, "
                                   f"{len(flows) - benign:,} attack rows)")
    log.info("wrote %d figures to %s", len(figures), args.html)
    return 0
