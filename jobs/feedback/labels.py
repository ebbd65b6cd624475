"""Analysts' feedback rules: verdicts on alerts and incidents, and the label each alert's record gets
from them. Pure Python: no I/O; the rows come from the ``feedback`` table
(:mod:`jobs.feedback.store`).

An analyst marks an **alert** (one record, by ``record_id``) or an **incident** (its alerts: those of
its subject and category from its first alert to its last alert *when it was marked*, so a verdict
never covers alerts nobody saw) as a ``true_positive`` or a ``false_positive``, and may correct the
class:

- ``false_positive``: the record is benign traffic (its label is ``Benign``; a corrected class, if
  given, must be ``Benign``);
- ``true_positive``: an attack; its class is the corrected class when given (one of the 19 classes,
  not ``Benign``), else the class the model predicted for the record, and unknown (``None``: an
  attack of no known class, usable to measure detection but not to train the classifier) where the
  model predicted ``Benign``.

Which verdict counts for a record: the latest verdict on its alert, else the latest verdict on an
incident that covers it (the one marked last, where incidents overlap). A later verdict on the same
alert or incident replaces an earlier one (an analyst changing their mind is a new row: the table
is append-only and keeps both).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from jobs.errors import UserError
from schemas.classes import BENIGN, CATEGORY_OF_CLASS, CLASSES

TRUE_POSITIVE: Final[str] = "true_positive"
FALSE_POSITIVE: Final[str] = "false_positive"
VERDICTS: Final[tuple[str, ...]] = (TRUE_POSITIVE, FALSE_POSITIVE)
ALERT: Final[str] = "alert"
INCIDENT: Final[str] = "incident"
TARGETS: Final[tuple[str, ...]] = (ALERT, INCIDENT)


class FeedbackError(UserError):
    """A verdict, class or target that cannot be recorded; the message says what to give instead."""


@dataclass(frozen=True)
class Verdict:
    """A row of ``feedback``."""

    feedback_id: str
    target: str                       # alert or incident
    verdict: str                      # true_positive or false_positive
    who: str
    at: datetime
    record_id: str | None = None      # the alert's (target alert)
    incident_id: str | None = None    # the incident's (target incident)
    subject: str | None = None        # the incident's subject and category (target incident)
    category: str | None = None
    covers_from: datetime | None = None  # the alerts it covers: event times from, to (inclusive)
    covers_to: datetime | None = None
    alerts: int | None = None         # how many alerts it covered when marked
    corrected_class: str | None = None
    predicted_classes: tuple[str, ...] = ()
    model_version: str | None = None
    note: str | None = None
    via: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.record_id if self.target == ALERT else self.incident_id or "")

    def label_for(self, predicted_class: str | None) -> str | None:
        """The label of a record this verdict covers, whose model predicted ``predicted_class``."""
        if self.verdict == FALSE_POSITIVE:
            return BENIGN
        if self.corrected_class:
            return self.corrected_class
        return predicted_class if predicted_class and predicted_class != BENIGN else None

    def describe(self) -> str:
        what = f"alert {self.record_id}" if self.target == ALERT else f"incident {(self.incident_id or '')[:12]}"
        corrected = f" as {self.corrected_class}" if self.corrected_class else ""
        return f"{what}: {self.verdict.replace('_', ' ')}{corrected} by {self.who}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Verdict":
        fields = {name: row.get(name) for name in cls.__dataclass_fields__}
        fields["predicted_classes"] = tuple(row.get("predicted_classes") or ())
        return cls(**fields)

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in self.__dataclass_fields__}
        row["predicted_classes"] = list(self.predicted_classes)
        return row


def check_verdict(verdict: str, corrected_class: str | None) -> tuple[str, str | None]:
    """(verdict, corrected class as the dataset spells it, or None); raises :class:`FeedbackError`."""
    verdict = (verdict or "").strip().lower().replace("-", "_").replace(" ", "_")
    if verdict not in VERDICTS:
        raise FeedbackError(f"unknown verdict {verdict!r}: true_positive or false_positive")
    if corrected_class is None or not corrected_class.strip():
        return verdict, None
    by_fold = {c.casefold(): c for c in CLASSES}
    found = by_fold.get(corrected_class.strip().casefold())
    if found is None:
        raise FeedbackError(f"unknown class {corrected_class!r}: one of {', '.join(CLASSES)}")
    if verdict == FALSE_POSITIVE and found != BENIGN:
        raise FeedbackError(f"a false positive is benign traffic: its class is {BENIGN}, not {found} (to say it is "
                            f"another attack, mark it a true positive with --class {found})")
    if verdict == TRUE_POSITIVE and found == BENIGN:
        raise FeedbackError(f"a true positive is an attack: give its attack class, not {BENIGN} (benign traffic "
                            "is a false positive)")
    return verdict, found


def category_of(label: str | None) -> str | None:
    return CATEGORY_OF_CLASS.get(label) if label else None


def current(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The verdict that counts for each alert and incident (the latest by time; at the same time, the
    later row), oldest first."""
    latest: dict[tuple[str, str], Verdict] = {}
    for verdict in sorted(verdicts, key=lambda v: v.at):  # stable: rows of one time keep their order
        latest[verdict.key] = verdict
    return sorted(latest.values(), key=lambda v: v.at)


@dataclass(frozen=True)
class LabelledRecord:
    """One alert's record and the verdict that labels it."""

    record_id: str
    label: str | None          # Benign, an attack class, or None (an attack of unknown class)
    verdict: Verdict
    predicted_class: str | None

    @property
    def is_attack(self) -> bool:
        return self.verdict.verdict == TRUE_POSITIVE


def label_records(verdicts: Iterable[Verdict],
                  covered: Callable[[Verdict], Sequence[tuple[str, str | None]]]) -> dict[str, LabelledRecord]:
    """record_id -> its label, from every verdict (``covered(verdict)``: the (record_id, predicted
    class) of the alerts a verdict covers). Incident verdicts first, the later over the earlier, then
    alert verdicts over them."""
    chosen = current(verdicts)
    labelled: dict[str, LabelledRecord] = {}
    for verdict in [v for v in chosen if v.target == INCIDENT] + [v for v in chosen if v.target == ALERT]:
        for record_id, predicted in covered(verdict):
            labelled[record_id] = LabelledRecord(record_id, verdict.label_for(predicted), verdict, predicted)
    return labelled
