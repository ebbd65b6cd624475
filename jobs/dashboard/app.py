"""The Streamlit page of ``iomt-ad dashboard`` (run by ``streamlit run``; settings from the environment,
see ``jobs.dashboard.data.DashboardSettings``). Re-reads the Delta tables every few seconds."""
from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from jobs.dashboard import auth, charts, data, drift_view, incidents_view

st.set_page_config(page_title="IoMT-AD operator dashboard", page_icon="🩺", layout="wide")
SIGNED_IN = "iomt_ad_user"


def require_sign_in() -> None:
    """Stop the page here, before any data is read, until this browser session has signed in (when
    the command configured users: ``IOMT_AD_DASHBOARD_CREDENTIALS``)."""
    users = auth.credentials_from_env()
    if users is None:
        return
    user = st.session_state.get(SIGNED_IN)
    if user in users:
        with st.sidebar:
            st.caption(f"signed in as {user}")
            if st.button("Sign out"):
                del st.session_state[SIGNED_IN]
                st.rerun()
        return
    st.title("IoMT-AD · operator dashboard")
    with st.form("sign-in"):
        name = st.text_input("User")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if auth.sign_in(users, name, password):
            st.session_state[SIGNED_IN] = name
            st.rerun()
        st.error("Wrong user name or password.")
    st.stop()


require_sign_in()
settings = data.DashboardSettings.from_env()
model = data.model_info(settings.model_dir)

st.title("IoMT-AD · operator dashboard")
st.caption(f"Delta tables {settings.tables_dir} · model {model.version} (ensemble threshold "
           f"{model.threshold:.4f}) · last {settings.window_minutes} min of data · refresh every "
           f"{settings.refresh_seconds} s")


@st.fragment(run_every=settings.refresh_seconds)
def live() -> None:
    snapshot = data.load_snapshot(settings)
    if snapshot.empty:
        st.info(f"No scored records in {settings.tables_dir} yet: start the streaming job "
                "(iomt-ad stream or iomt-ad demo).")
        return
    figures = data.headline(snapshot)
    age = (datetime.now(timezone.utc) - snapshot.newest.to_pydatetime()).total_seconds()
    cols = st.columns(5)
    cols[0].metric("Anomaly rate, last 5 min", f"{figures['recent_rate_pct']:.1f} %")
    cols[1].metric("Anomaly rate, window", f"{figures['rate_pct']:.1f} %")
    cols[2].metric("Records scored", f"{int(figures['records']):,}")
    cols[3].metric("Alerts", f"{int(figures['anomalies']):,}")
    cols[4].metric("Newest record", f"{age / 60:.0f} min ago" if age >= 120 else f"{age:.0f} s ago")

    left, right = st.columns(2)
    left.plotly_chart(charts.anomaly_rate_figure(data.anomaly_rate_per_minute(snapshot.traffic)),
                      use_container_width=True, key="rate")
    right.plotly_chart(charts.score_distribution_figure(data.score_histogram(snapshot.flows, model.threshold),
                                                        model.threshold, len(snapshot.flows)),
                       use_container_width=True, key="scores")
    left, right = st.columns(2)
    left.plotly_chart(charts.per_class_figure(data.per_class(snapshot.traffic)), use_container_width=True,
                      key="classes")
    right.plotly_chart(charts.protocol_figure(data.protocol_activity(snapshot.traffic)),
                       use_container_width=True, key="protocols")

    devices = data.devices_view(snapshot.devices)
    if not devices.empty:
        st.subheader("Devices")
        st.dataframe(devices, use_container_width=True, hide_index=True)

    st.subheader("Recent alerts")
    st.dataframe(data.recent_alerts(snapshot.alerts), use_container_width=True, hide_index=True,
                 column_config={"ensemble_score": st.column_config.NumberColumn(format="%.3f")})
    st.caption(f"read {snapshot.read_at:%H:%M:%S} UTC · {int(figures['quarantined'])} records quarantined "
               "in the window")


@st.fragment(run_every=settings.refresh_seconds)
def incidents() -> None:
    from jobs.incidents.actions_store import IncidentBook

    who = st.session_state.get(SIGNED_IN) if auth.credentials_from_env() is not None else None
    incidents_view.render(IncidentBook(settings.tables), who or "local")


@st.fragment(run_every=settings.refresh_seconds)
def drift() -> None:
    drift_view.render(settings.tables)


live()
drift()
incidents()
