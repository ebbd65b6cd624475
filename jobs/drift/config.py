"""``drift`` in ``conf/*.yaml``: whether the stream measures drift, where a figure counts as drift and
how devices are grouped. Built by :func:`jobs.config.config_from_mapping`; the dataclass lives beside
the code that uses it (as ``alerts`` does)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

GROUP_BY: Final[tuple[str, ...]] = ("vendor", "device", "none")
DEFAULT_THRESHOLD: Final[float] = 0.2    # PSI: above 0.2 a significant shift, 0.1-0.2 a moderate one
DEFAULT_MIN_RECORDS: Final[int] = 500   # fewer records than this in an hour and group: too few to tell


@dataclass(frozen=True)
class DriftConfig:
    """``enabled``: measure drift (with a bundle that has a drift reference); ``threshold``: the PSI
    from which an hour and group has drifted; ``min_records``: the records an hour and group needs
    before it can be called drifted (an unshifted sample of ``n`` records scores about ``9 / n`` by
    chance); ``group_by``: the device groups besides ``all`` (every record): ``vendor`` (the
    sensor's ``device_vendor``), ``device`` (each ``device_id``) or ``none``."""

    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD
    min_records: int = DEFAULT_MIN_RECORDS
    group_by: str = "vendor"


def drift_from_mapping(raw: Mapping[str, Any] | None, build: Callable[..., Any],
                       error: type[Exception]) -> DriftConfig:
    """``drift`` built with :func:`jobs.config._build` (``build``) and checked now, not at the first batch."""
    drift = build(DriftConfig, raw, "drift")
    if not isinstance(drift.enabled, bool):
        raise error(f"drift.enabled must be true or false, not {drift.enabled!r}")
    if isinstance(drift.threshold, bool) or not isinstance(drift.threshold, (int, float)) or not drift.threshold > 0:
        raise error(f"drift.threshold must be a PSI above 0 (0.2: a significant shift), not {drift.threshold!r}")
    if isinstance(drift.min_records, bool) or not isinstance(drift.min_records, int) or drift.min_records < 1:
        raise error(f"drift.min_records must be a whole number of records, at least 1, not {drift.min_records!r}")
    if drift.group_by not in GROUP_BY:
        raise error(f"drift.group_by must be one of {', '.join(GROUP_BY)}, not {drift.group_by!r}")
    return drift
