"""Plotly figures of the operator dashboard, from the frames of ``jobs.dashboard.data``."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from jobs.dashboard.data import symlog

ANOMALY_COLOR = "#d62728"
NORMAL_COLOR = "#1f77b4"


def minute_axis(minutes: pd.Series) -> dict:
    """An HH:MM time axis at least ten minutes wide, so a single minute's bar stays a bar."""
    if minutes.empty:
        return dict(tickformat="%H:%M")
    end = minutes.max() + pd.Timedelta(minutes=1)
    start = min(minutes.min() - pd.Timedelta(minutes=1), end - pd.Timedelta(minutes=10))
    return dict(tickformat="%H:%M", range=[start, end])


LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.2))


def anomaly_rate_figure(rate: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    figure.add_bar(x=rate["minute"], y=rate["records"], name="records / min", marker_color="#c7d3e3",
                   yaxis="y2", opacity=0.6, width=50_000)  # ms: one bar per minute
    figure.add_scatter(x=rate["minute"], y=rate["rate_pct"], name="anomaly rate %", mode="lines+markers",
                       line=dict(color=ANOMALY_COLOR, width=2))
    figure.update_layout(title="Anomaly rate per minute", xaxis=minute_axis(rate["minute"]),
                         yaxis=dict(title="% flagged", range=[0, 105]),
                         yaxis2=dict(title="records", overlaying="y", side="right", showgrid=False), **LAYOUT)
    return figure


def per_class_figure(classes: pd.DataFrame) -> go.Figure:
    ordered = classes.sort_values("records")
    figure = go.Figure()
    figure.add_bar(y=ordered["predicted_class"], x=ordered["records"] - ordered["flagged"], orientation="h",
                   name="not flagged", marker_color=NORMAL_COLOR)
    figure.add_bar(y=ordered["predicted_class"], x=ordered["flagged"], orientation="h", name="flagged",
                   marker_color=ANOMALY_COLOR)
    figure.update_layout(title="Records per predicted class", barmode="stack", xaxis_title="records",
                         yaxis=dict(categoryorder="total ascending"),
                         **(LAYOUT | {"height": max(320, 22 * len(ordered) + 120)}))
    return figure


def score_distribution_figure(histogram: pd.DataFrame, threshold: float, records: int | None = None) -> go.Figure:
    """Ensemble scores per bin (``jobs.dashboard.data.score_histogram``), flagged vs not, with the
    bundle's threshold, on a symmetric log axis: scores span from below zero to thousands, and the
    threshold sits near 1."""
    figure = go.Figure()
    middle = (histogram["low"] + histogram["high"]) / 2
    width = float((histogram["high"] - histogram["low"]).iloc[0]) if len(histogram) else 0.05
    for column, name, color in (("not_flagged", "not flagged", NORMAL_COLOR), ("flagged", "flagged", ANOMALY_COLOR)):
        figure.add_bar(x=middle, y=histogram[column], name=name, marker_color=color, width=width, opacity=0.75)
    at = float(symlog(threshold))
    figure.add_vline(x=at, line=dict(color="black", dash="dash", width=2),
                     annotation_text=f"threshold {threshold:.3f}", annotation_position="top right")
    low = float(histogram["low"].min()) if len(histogram) else 0.0
    high = float(histogram["high"].max()) if len(histogram) else 1.0
    ticks = [value for value in (-10, -1, 0, 1, 10, 100, 1000, 10000) if low - 0.5 <= symlog(value) <= high + 0.5]
    title = "Ensemble score distribution vs threshold" + (f" (newest {records:,} records)" if records else "")
    figure.update_layout(title=title, barmode="overlay", bargap=0,
                         xaxis=dict(title="ensemble score (log scale)", tickvals=[float(symlog(v)) for v in ticks],
                                    ticktext=[f"{v:g}" for v in ticks]),
                         yaxis_title="records", **LAYOUT)
    return figure


def protocol_figure(activity: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for protocol, rows in activity.groupby("protocol"):
        figure.add_bar(x=rows["minute"], y=rows["records"], name=str(protocol), width=50_000)
    figure.update_layout(title="Protocol activity (records per minute)", barmode="stack", yaxis_title="records",
                         xaxis=minute_axis(activity["minute"]),
                         **LAYOUT)
    return figure
