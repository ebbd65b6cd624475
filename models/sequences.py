"""A device's recent windows: the context a sequence autoencoder reads beside each record.

A bundle whose LSTM autoencoder has ``timesteps`` k > 1 scores each record as the last step of a
sequence: the device's previous windows (at most k - 1, oldest first, each no more than
``max_gap_s`` of event time before the next) and the record itself. The same context is built
everywhere a record is scored:

- in the stream, a stateful operator keyed by device keeps each device's last k - 1 windows and
  attaches them to each new record (:func:`device_contexts`, called once per device and batch);
- offline (training on captures, ``sensor --report``, re-scoring), from a whole frame at once
  (:func:`frame_contexts`), which is the same function over each device's records in time order.

A context is a list of ``(event_time_ns, features)`` pairs, ``features`` the 39 raw features in
``schemas.flow_record.FEATURES`` order (missing values NaN); records without a device have none.

The sequence the autoencoder reads (:func:`sequence_inputs`) holds, per step, the window's scaled
model inputs (the bundle's preprocessing) and one more input, ``window_gap``: the event time since
the step before, as ``log1p(seconds) / log1p(max_gap_s)`` (0 for the first step). A sequence
shorter than k (a device's first windows, or after a silence longer than ``max_gap_s``) is padded
on the left with copies of its first step.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from schemas.flow_record import DEVICE_ID, EVENT_TIME, FEATURES, RECORD_ID

GAP_INPUT = "window_gap"
Context = list[tuple[int, list[float]]]


def device_contexts(times_ns: Sequence[int], features: np.ndarray, record_ids: Sequence[str],
                    previous: Context, timesteps: int, max_gap_s: float) -> tuple[list[Context], Context]:
    """One device's new records (any order) -> each record's context, in input order, and the
    windows to keep for the device's next records (its last ``timesteps - 1``, oldest first).

    The new records are placed after ``previous`` in (event time, record_id) order (a late record
    goes where its time puts it among the new ones, never before what was already kept); a record's
    context is the windows before it in that order, cut at the first gap longer than ``max_gap_s``."""
    keep = max(timesteps - 1, 0)
    order = sorted(range(len(times_ns)), key=lambda i: (int(times_ns[i]), str(record_ids[i])))
    history: Context = list(previous)
    contexts: list[Context] = [[] for _ in range(len(times_ns))]
    max_gap_ns = int(max_gap_s * 1e9)
    for i in order:
        t = int(times_ns[i])
        context: Context = []
        newer = t
        for then, values in reversed(history[-keep:] if keep else []):
            if newer - then > max_gap_ns:
                break
            context.append((then, values))
            newer = then
        contexts[i] = context[::-1]
        history.append((t, [float(v) for v in features[i]]))
    return contexts, history[-keep:] if keep else []


def frame_contexts(frame: pd.DataFrame, timesteps: int, max_gap_s: float) -> list[Context | None]:
    """The context of every row of ``frame`` (its device's earlier rows in the frame), in row order;
    None for rows without a device."""
    out: list[Context | None] = [None] * len(frame)
    if DEVICE_ID not in frame.columns or len(frame) == 0:
        return out
    devices = frame[DEVICE_ID]
    times = event_times_ns(frame[EVENT_TIME])
    features = frame[list(FEATURES)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    ids = frame[RECORD_ID].astype(str).to_numpy() if RECORD_ID in frame.columns else np.arange(len(frame)).astype(str)
    positions = pd.Series(np.arange(len(frame)))
    for _, rows in positions.groupby(devices.to_numpy(), sort=False):
        index = rows.to_numpy()
        contexts, _ = device_contexts(times[index], features[index], ids[index], [], timesteps, max_gap_s)
        for row, context in zip(index, contexts):
            out[row] = context
    return out


def event_times_ns(values: Any) -> np.ndarray:
    """Event times (timestamps of any resolution, or ISO-8601 text) as int64 nanoseconds since the
    epoch (UTC). The unit is made explicit: a microsecond column (Arrow's, Delta's) would otherwise
    give its integers in microseconds."""
    return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601").dt.as_unit("ns").astype("int64").to_numpy()


def sequence_inputs(scaled: np.ndarray, times_ns: np.ndarray, contexts: Sequence[Context | None],
                    transform: Callable[[pd.DataFrame], np.ndarray], timesteps: int, max_gap_s: float) -> np.ndarray:
    """(n, timesteps, inputs + 1): each record's sequence, ``scaled`` its own scaled inputs and
    ``transform`` the bundle's preprocessing for the context windows' raw features (all of them at
    once). Built with index arrays, no loop over records."""
    n, width = scaled.shape
    sizes = np.array([min(len(c or ()), timesteps - 1) for c in contexts], dtype=np.int64)
    flat = [entry for c, size in zip(contexts, sizes) if size for entry in c[len(c) - size:]]
    context_scaled = (transform(pd.DataFrame([values for _, values in flat], columns=list(FEATURES)))
                      if flat else np.zeros((1, width)))
    context_times = np.array([t for t, _ in flat] or [0], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    first = (timesteps - 1 - sizes)[:, None]  # the step of each sequence's first window; padding before it
    step = np.maximum(np.arange(timesteps)[None, :], first)  # padded steps repeat the first window
    own = step == timesteps - 1
    index = np.where(own, 0, offsets[:, None] + step - first)
    out = np.empty((n, timesteps, width + 1), dtype=np.float32)
    out[:, :, :width] = np.where(own[:, :, None], np.asarray(scaled, np.float32)[:, None, :], context_scaled[index])
    times = np.where(own, np.asarray(times_ns, np.int64)[:, None], context_times[index])
    gaps = np.diff(times, axis=1, prepend=times[:, :1]).astype(np.float64) / 1e9
    out[:, :, width] = np.log1p(np.clip(gaps, 0.0, max_gap_s)) / np.log1p(max_gap_s)
    return out
