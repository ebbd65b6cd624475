"""The operator dashboard's verdict form on the chosen incident: mark the whole incident (its alerts so
far) or one of its alerts a true or a false positive, with the corrected class where the model named
another; appended to ``feedback`` (:class:`jobs.feedback.store.FeedbackBook`) as the signed-in user,
by the rules of :mod:`jobs.feedback.labels`, as ``iomt-ad feedback mark`` does.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final

import pandas as pd
import streamlit as st

from jobs.errors import UserError
from jobs.feedback.labels import ALERT, FALSE_POSITIVE, INCIDENT, TRUE_POSITIVE, Verdict
from jobs.feedback.store import FeedbackBook
from schemas.classes import CLASSES

log = logging.getLogger(__name__)

AS_PREDICTED: Final[str] = "(as predicted)"
BUTTONS: Final[dict[str, str]] = {TRUE_POSITIVE: "True positive", FALSE_POSITIVE: "False positive"}
WHOLE: Final[str] = ""  # the target option that means the whole incident


def _verdicts_of(book: FeedbackBook, incident_id: str, record_ids: set[str]) -> list[Verdict]:
    return [v for v in book.current() if (v.target == INCIDENT and v.incident_id == incident_id)
            or (v.target == ALERT and v.record_id in record_ids)]


def render(book: FeedbackBook, incident: dict[str, Any], alerts: pd.DataFrame, who: str,
           done: Callable[[str], None]) -> None:
    """The verdicts given on ``incident`` and its shown ``alerts`` (``record_id``, ``event_time``,
    ``predicted_class``, ``model_version``), and the form to give one; ``done(message)`` redraws."""
    key = incident["incident_id"]
    record_ids = [r for r in alerts["record_id"].tolist() if r] if "record_id" in alerts else []
    for verdict in _verdicts_of(book, key, set(record_ids)):
        st.info(f"{verdict.describe()} at {verdict.at:%Y-%m-%d %H:%M} UTC" + (f": {verdict.note}" if verdict.note else ""))
    by_id = {row["record_id"]: row for row in alerts.to_dict("records") if row.get("record_id")}
    options = [WHOLE, *record_ids]

    def label(option: str) -> str:
        if option == WHOLE:
            return f"the whole incident ({incident['alerts']} alerts)"
        row = by_id[option]
        return f"alert {option[:12]} · {row.get('predicted_class')} · {pd.Timestamp(row['event_time']):%H:%M:%S}"

    with st.form(f"feedback-{key}", clear_on_submit=True):
        left, right = st.columns(2)
        target = left.selectbox("Verdict on", options, format_func=label, key=f"feedback-target-{key}")
        corrected = right.selectbox("Right class", [AS_PREDICTED, *CLASSES], key=f"feedback-class-{key}")
        note = st.text_input("Comment on the verdict (optional)", key=f"feedback-note-{key}")
        columns = st.columns(len(BUTTONS))
        clicked = [verdict for column, (verdict, text) in zip(columns, BUTTONS.items())
                   if column.form_submit_button(text)]
    for verdict in clicked:
        now = datetime.now(timezone.utc)
        chosen = None if corrected == AS_PREDICTED else corrected
        try:
            if target == WHOLE:
                recorded = book.mark_incident(incident, verdict, who, now, chosen, note, via="dashboard")
            else:
                recorded = book.mark_alert(by_id[target], verdict, who, now, chosen, note, via="dashboard")
        except UserError as exc:
            st.error(str(exc))
        else:
            done(recorded.describe())
