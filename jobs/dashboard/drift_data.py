"""The operator dashboard's drift data: the ``drift`` table's last day (ending at its newest hour, so
a replay of old captures still shows) summarised per hour and device group, and its figure. Pure
pandas and Plotly, no Streamlit: tested on its own (:mod:`jobs.dashboard.drift_view` draws it)."""
from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import pandas as pd

from models.drift import SCORE_MEASURE
from schemas.tables import DRIFT

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from jobs.storage import TablesLocation

DRIFT_COLUMNS: Final[list[str]] = ["hour", "device_group", "model_version", "measure", "records", "psi", "threshold",
                                   "min_records", "drifted"]
SUMMARY_COLUMNS: Final[list[str]] = ["hour", "device_group", "model_version", "records", "score_psi",
                                     "top_feature", "top_feature_psi", "drifted_measures", "drifted"]
HOURS_SHOWN: Final[int] = 24


def load_drift(tables: "TablesLocation | str", hours: int = HOURS_SHOWN) -> pd.DataFrame:
    """The ``drift`` rows of the ``hours`` up to the table's newest hour (empty without the table)."""
    from jobs.dashboard.data import newest, read_table

    last = newest(tables, DRIFT, "hour")
    if last is None:
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    since = (last - timedelta(hours=hours - 1)).to_pydatetime()
    return read_table(tables, DRIFT, DRIFT_COLUMNS, since=since, time_column="hour")


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per hour, device group and model version: its records (the score's), the score's PSI,
    the feature furthest from the reference and its PSI, how many measures drifted; newest first,
    then the groups that drifted, then the most records."""
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    keys = ["hour", "device_group", "model_version"]
    rows = rows.assign(drifted=rows["drifted"].fillna(False).astype(bool))
    score = rows[rows["measure"] == SCORE_MEASURE].set_index(keys)[["records", "psi"]].rename(
        columns={"psi": "score_psi"})
    features = rows[rows["measure"] != SCORE_MEASURE]
    top = (features.sort_values("psi", ascending=False).drop_duplicates(keys).set_index(keys)[["measure", "psi"]]
           .rename(columns={"measure": "top_feature", "psi": "top_feature_psi"}))
    drifted = rows.groupby(keys)["drifted"].agg(drifted_measures="sum", drifted="any")
    out = score.join(top, how="outer").join(drifted, how="outer").reset_index()
    out["drifted_measures"] = out["drifted_measures"].fillna(0).astype(int)
    out["drifted"] = out["drifted"].fillna(False).astype(bool)
    return (out.sort_values(["hour", "drifted", "records"], ascending=[False, False, False])
            [SUMMARY_COLUMNS].reset_index(drop=True))


def latest_hour(table: pd.DataFrame) -> pd.DataFrame:
    """The summary's rows of its newest hour."""
    return table[table["hour"] == table["hour"].max()].reset_index(drop=True) if len(table) else table


def drift_figure(table: pd.DataFrame, threshold: float) -> "go.Figure":
    """Per device group, the score's PSI per hour (solid) and the highest feature PSI (dotted), with
    the threshold the job applied."""
    import plotly.graph_objects as go

    from jobs.dashboard.charts import LAYOUT

    figure = go.Figure()
    for (group, version), rows in table.sort_values("hour").groupby(["device_group", "model_version"]):
        figure.add_scatter(x=rows["hour"], y=rows["score_psi"], mode="lines+markers",
                           name=f"{group} · score ({version})")
        figure.add_scatter(x=rows["hour"], y=rows["top_feature_psi"], mode="lines+markers",
                           line=dict(dash="dot"), name=f"{group} · highest feature ({version})",
                           text=rows["top_feature"], hovertemplate="%{text}: PSI %{y:.3f}<extra></extra>")
    figure.add_hline(y=threshold, line=dict(color="#d62728", dash="dash", width=2),
                     annotation_text=f"drift threshold {threshold:g}", annotation_position="top left")
    highest = max([threshold, *table["score_psi"].dropna(), *table["top_feature_psi"].dropna()])
    hours = table["hour"]
    last = hours.max() if len(hours) else pd.Timestamp.now(tz="UTC").floor("h")
    first = min(hours.min() if len(hours) else last, last - timedelta(hours=5))
    figure.update_layout(title="Drift from the model's reference (PSI per hour)",
                         xaxis=dict(title="hour (UTC)", tickformat="%m-%d %H:00",
                                    range=[first - timedelta(minutes=30), last + timedelta(minutes=30)]),
                         yaxis=dict(title="PSI (log scale)", type="log", tickvals=PSI_TICKS,
                                    ticktext=[f"{v:g}" for v in PSI_TICKS],
                                    range=[math.log10(0.005), math.log10(max(highest * 2, 1.0))]), **LAYOUT)
    return figure


PSI_TICKS: Final[list[float]] = [0.01, 0.1, 0.2, 1.0, 10.0, 100.0]
