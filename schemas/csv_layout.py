"""Checks that a CSV file has the layout of the current (39-feature) CICIoMT2024 release."""
from __future__ import annotations

from collections.abc import Sequence

from schemas.flow_record import FEATURES, ORIGINAL_RELEASE_ONLY


class CsvLayoutError(ValueError):
    """A CSV file whose columns are not those of the 39-feature CICIoMT2024 release."""


def check_csv_header(columns: Sequence[str], source: str) -> None:
    """Raise :class:`CsvLayoutError` unless ``columns`` are exactly the 39 features.

    The message names the file, the release it looks like, and the missing and unexpected columns,
    so the user knows whether they hold the wrong release or a different dataset altogether.
    """
    cleaned = [c.strip() for c in columns]
    if cleaned == list(FEATURES):
        return
    present = set(cleaned)
    missing = [f for f in FEATURES if f not in present]
    unexpected = [c for c in cleaned if c not in set(FEATURES)]
    if present & ORIGINAL_RELEASE_ONLY:
        release = (
            "the original 45-feature release of CICIoMT2024 (columns such as "
            + ", ".join(sorted(present & ORIGINAL_RELEASE_ONLY))
            + "); IoMT-AD needs the current 39-feature release, whose shared columns are computed "
            "differently, so the two must not be mixed"
        )
    elif not missing and not unexpected:
        release = "the 39-feature release with its columns in another order"
    else:
        release = "not a CICIoMT2024 flow-feature file of the current 39-feature release"
    parts = [f"{source}: {release}."]
    if missing:
        parts.append(f"Missing columns ({len(missing)}): {', '.join(missing)}.")
    if unexpected:
        parts.append(f"Unexpected columns ({len(unexpected)}): {', '.join(unexpected)}.")
    if not missing and not unexpected:
        parts.append("Expected order: " + ", ".join(FEATURES) + ".")
    raise CsvLayoutError(" ".join(parts))
