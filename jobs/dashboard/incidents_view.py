"""The operator dashboard's incidents view (Streamlit): the incidents that need someone, most severe
first, with their status and mutes (:func:`jobs.incidents.overview.overview`); one selected
incident's explanation and alerts; and the analyst's actions on it — acknowledge, resolve, reopen,
mute its device, class or category for a while with a reason — appended to ``incident_actions`` and
``mutes`` (:class:`jobs.incidents.actions_store.IncidentBook`) with the signed-in user (``local``
without sign-in); and its verdict, true or false positive (:mod:`jobs.dashboard.feedback_view`). The rules are :mod:`jobs.incidents.lifecycle`'s, as for ``iomt-ad incidents``.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Final

import pandas as pd
import streamlit as st

from jobs.dashboard import feedback_view
from jobs.errors import UserError
from jobs.feedback.store import FeedbackBook
from jobs.incidents.actions_store import IncidentBook, parse_for
from jobs.incidents.lifecycle import ACK, MUTE, REOPEN, RESOLVE, incident_status, matching_mutes
from jobs.incidents.overview import overview

log = logging.getLogger(__name__)

VIEW_COLUMNS: Final[list[str]] = ["incident", "max_severity", "subject", "device_ip", "category", "classes", "alerts",
                                  "last_seen", "state", "status", "status_by", "muted", "explanation"]
ALERT_COLUMNS: Final[list[str]] = ["event_time", "severity", "ensemble_score", "predicted_class", "device_ip",
                                   "source_id", "explanation", "record_id"]
MUTE_FOR: Final[tuple[str, ...]] = ("1h", "2h", "8h", "24h", "7d")
BUTTONS: Final[dict[str, str]] = {ACK: "Acknowledge", RESOLVE: "Resolve", REOPEN: "Reopen"}
DONE: Final[dict[str, str]] = {ACK: "acknowledged", RESOLVE: "resolved", REOPEN: "reopened"}
MESSAGE: Final[str] = "incidents-message"  # what the last action did, shown after the view is drawn again
MESSAGE_SECONDS: Final[float] = 30.0  # how long it stays: a refresh may interrupt the drawing that first showed it


def _done(text: str) -> None:
    """Say ``text`` in the drawings of the next :data:`MESSAGE_SECONDS`, starting with the one the
    action triggers (one drawing is not enough: a refresh of the page can interrupt it and redraw
    the view without it)."""
    st.session_state[MESSAGE] = (text, time.monotonic() + MESSAGE_SECONDS)
    st.rerun()


def _show_message() -> None:
    text, until = st.session_state.get(MESSAGE, ("", 0.0))
    if time.monotonic() < until:
        st.success(text)
    else:
        st.session_state.pop(MESSAGE, None)


def _label(row: dict[str, Any]) -> str:
    return f"{row['incident']} · {row['max_severity']} · {row['subject']} · {row['category']}"


def _mute_targets(incident: dict[str, Any]) -> list[tuple[str, str]]:
    """What the incident offers to mute: its device (or source), each of its classes, its category."""
    subject_scope = "device" if incident.get("device_id") else "source"
    return [(subject_scope, incident["subject"]), *(("class", c) for c in incident.get("predicted_classes") or ()),
            ("category", incident["category"])]


def _actions(book: IncidentBook, incident: dict[str, Any], who: str) -> None:
    key = incident["incident_id"]
    with st.form(f"act-{key}", clear_on_submit=True):
        note = st.text_input("Note (optional)", key=f"note-{key}")
        columns = st.columns(len(BUTTONS))
        clicked = [action for column, (action, label) in zip(columns, BUTTONS.items())
                   if column.form_submit_button(label)]
    for action in clicked:
        book.record_action(incident, action, who, datetime.now(timezone.utc), note, via="dashboard")
        _done(f"incident {incident['incident_id'][:12]} {DONE[action]} by {who}")

    targets = _mute_targets(incident)
    with st.form(f"mute-{key}", clear_on_submit=True):
        left, middle = st.columns(2)
        target = left.selectbox("Mute", range(len(targets)), format_func=lambda i: f"{targets[i][0]} {targets[i][1]}",
                                key=f"mute-target-{key}")
        duration = middle.selectbox("For", MUTE_FOR, index=1, key=f"mute-for-{key}")
        reason = st.text_input("Reason", key=f"mute-reason-{key}")
        submitted = st.form_submit_button("Mute")
    if submitted:
        scope, value = targets[target]
        now = datetime.now(timezone.utc)
        try:
            mute = book.mute(MUTE, scope, value, now, now + parse_for(duration), reason, who, now, via="dashboard")
        except UserError as exc:
            st.error(str(exc))
        else:
            _done(mute.describe())


def render(book: IncidentBook, who: str) -> None:
    """The incidents section of the page."""
    incidents = book.incidents()
    st.subheader("Incidents")
    _show_message()
    if not incidents:
        st.caption("No incidents yet: the streaming job groups alerts into incidents as they come.")
        return
    now = datetime.now(timezone.utc)
    everything = st.toggle("Closed and resolved incidents too", key="incidents-all")
    actions, mutes = book.actions(), book.mutes()  # read once per drawing
    rows = overview(incidents, actions, mutes, now, everything=everything)
    st.caption(f"{len(rows)} {'incidents' if everything else 'open incidents nobody resolved'}, most severe first "
               f"· acting as {who}")
    if not rows:
        return
    st.dataframe(pd.DataFrame(rows, columns=VIEW_COLUMNS), use_container_width=True, hide_index=True,
                 key="incidents-table")
    by_id = {row["incident_id"]: row for row in rows}
    chosen = st.selectbox("Incident", list(by_id), format_func=lambda i: _label(by_id[i]), key="incident")
    incident = next(r for r in incidents if r["incident_id"] == chosen)
    status = incident_status(incident, actions)
    st.markdown(f"**{incident['max_severity']}** · {incident['subject']} · {incident['category']} · "
                f"{incident['alerts']} alerts from {incident['first_seen']:%Y-%m-%d %H:%M:%S} to "
                f"{incident['last_seen']:%H:%M:%S} UTC · {incident['state']} · **{status.status}**"
                + (f" by {status.who}" if status.who else ""))
    if incident.get("explanation"):
        st.text(incident["explanation"])
    for mute in matching_mutes(incident, mutes, now):
        st.warning(mute.describe())
    _actions(book, incident, who)
    alerts = book.alerts_of(incident, [*ALERT_COLUMNS, "model_version"], 200).to_pandas()
    feedback_view.render(FeedbackBook(book.tables), incident, alerts, who, _done)  # analysts' verdicts
    alerts = alerts[ALERT_COLUMNS]
    st.caption(f"Alerts of incident {chosen[:12]} (newest {len(alerts)} of {incident['alerts']})")
    st.dataframe(alerts, use_container_width=True, hide_index=True, key="incident-alerts",
                 column_config={"ensemble_score": st.column_config.NumberColumn(format="%.3f")})
