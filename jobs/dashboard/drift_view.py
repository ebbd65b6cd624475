"""The operator dashboard's drift view (Streamlit): how far each hour's traffic lies from the model's
reference, per device group (the ``drift`` table the stream writes; :mod:`jobs.dashboard.drift_data`)."""
from __future__ import annotations

import streamlit as st

from jobs.dashboard import drift_data


def render(tables) -> None:
    rows = drift_data.load_drift(tables)
    st.subheader("Drift from the model's reference")
    if rows.empty:
        st.caption("No drift figures yet: the stream writes them per hour once a bundle with a drift reference "
                   "scores (drift.enabled).")
        return
    table = drift_data.summary(rows)
    threshold = float(rows["threshold"].dropna().iloc[-1]) if rows["threshold"].notna().any() else 0.2
    latest = drift_data.latest_hour(table)
    drifted = latest[latest["drifted"]]
    hour = f"{latest['hour'].iloc[0]:%Y-%m-%d %H}:00 UTC"
    if len(drifted):
        st.warning(f"Drift in the hour of {hour}: {', '.join(drifted['device_group'])} "
                   f"(PSI at or above {threshold:g}). Scores and thresholds may no longer mean what they did.")
    else:
        st.caption(f"No drift in the hour of {hour} (PSI below {threshold:g}, or too few records).")
    st.plotly_chart(drift_data.drift_figure(table, threshold), use_container_width=True, key="drift")
    st.dataframe(latest, use_container_width=True, hide_index=True,
                 column_config={"score_psi": st.column_config.NumberColumn("score PSI", format="%.3f"),
                                "top_feature_psi": st.column_config.NumberColumn("top feature PSI", format="%.3f")})
