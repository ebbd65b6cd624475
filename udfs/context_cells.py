"""A record's ``context`` (its device's previous windows, :mod:`models.sequences`) as a column's cells
and back (pure Python/NumPy/pandas): the stream's stateful operator writes them
(:mod:`jobs.stream.device_context`), re-scoring's grouped step too (:mod:`jobs.transforms`), and the
frames handed to scoring read them.

A cell is a list of structs ``{event_time_ns, features}`` (:data:`schemas.flow_record.CONTEXT_DDL`);
a context is a list of ``(event_time_ns, features)`` pairs, a missing feature NaN.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.sequences import Context
from schemas.flow_record import CONTEXT_FEATURES, CONTEXT_TIME


def context_cell(context: Context | None) -> list[dict[str, Any]] | None:
    """A context as the ``context`` column's cell (None stays None)."""
    if context is None:
        return None
    return [{CONTEXT_TIME: int(t), CONTEXT_FEATURES: [float(v) for v in values]} for t, values in context]


def contexts_from_cells(cells: Iterable[Any]) -> list[Context | None]:
    """``context`` cells (lists or arrays of structs as dicts, as Arrow or pandas hand them over) as
    contexts, a missing feature as NaN; None for records without one."""
    out: list[Context | None] = []
    for cell in cells:
        if cell is None:
            out.append(None)
            continue
        out.append([(int(w[CONTEXT_TIME]), [np.nan if v is None else float(v) for v in w[CONTEXT_FEATURES]])
                    for w in cell])
    return out


def object_column(cells: Sequence[Any], index: pd.Index) -> pd.Series:
    """One cell per row, each kept whole (lists are never spread into a 2-D array)."""
    values = np.empty(len(cells), dtype=object)
    for i, cell in enumerate(cells):
        values[i] = cell
    return pd.Series(values, index=index, dtype=object)
