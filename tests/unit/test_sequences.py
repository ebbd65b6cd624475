"""A device's recent windows (models.sequences): the context each record carries, built the same way
batch by batch (the stream's per-device state) as over a whole frame, and the sequence the
autoencoder reads from it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.sequences import device_contexts, frame_contexts, sequence_inputs
from schemas.flow_record import FEATURES

S = 1_000_000_000  # nanoseconds in a second


def _features(n: int) -> np.ndarray:
    return np.arange(n * len(FEATURES), dtype=np.float64).reshape(n, len(FEATURES))


def _times(context) -> list[int]:
    return [t // S for t, _ in context]


def test_each_record_gets_its_devices_earlier_windows_in_time_order_cut_at_a_long_gap() -> None:
    contexts, kept = device_contexts([30 * S, 10 * S, 20 * S, 2000 * S], _features(4), ["d", "b", "c", "a"], [],
                                     timesteps=3, max_gap_s=600)
    assert [_times(c) for c in contexts] == [[10, 20], [], [10], []]  # input order; 2000 s comes after a silence
    assert _times(kept) == [30, 2000]  # the last timesteps - 1 windows
    assert contexts[0][1][1] == list(_features(4)[2])  # the 20 s window's own features


def test_ties_in_time_are_ordered_by_record_id_so_replays_agree() -> None:
    a, _ = device_contexts([5 * S, 5 * S], _features(2), ["y", "x"], [], 3, 600)
    b, _ = device_contexts([5 * S, 5 * S], _features(2)[::-1], ["x", "y"], [], 3, 600)
    assert a[0] == b[1] and a[1] == b[0]


@pytest.mark.parametrize("split", [1, 2, 3, 5])
def test_batch_by_batch_with_kept_state_equals_the_whole_frame(split: int) -> None:
    times = [t * S for t in (1, 2, 4, 7, 8, 9, 20, 21, 700, 701)]
    features, ids = _features(len(times)), [f"r{i}" for i in range(len(times))]
    whole, _ = device_contexts(times, features, ids, [], 4, 600)
    state, pieces = [], []
    for start in range(0, len(times), split):
        part, state = device_contexts(times[start:start + split], features[start:start + split],
                                      ids[start:start + split], state, 4, 600)
        pieces += part
    assert pieces == whole


def test_a_frame_builds_contexts_per_device_and_none_without_a_device() -> None:
    frame = pd.DataFrame(_features(5), columns=list(FEATURES))
    frame["device_id"] = ["x", "y", "x", None, "x"]
    frame["event_time"] = pd.to_datetime([1, 2, 3, 4, 5], unit="s", utc=True)
    frame["record_id"] = list("abcde")
    contexts = frame_contexts(frame, timesteps=3, max_gap_s=600)
    assert [None if c is None else _times(c) for c in contexts] == [[], [], [1], None, [1, 3]]


def test_a_sequence_is_padded_with_its_first_step_and_carries_the_gap_between_steps() -> None:
    scaled = np.array([[1.0, 1.0], [2.0, 2.0]])
    contexts = [[(10 * S, list(_features(1)[0]))], None]
    seq = sequence_inputs(scaled, np.array([70 * S, 5 * S]), contexts, lambda d: np.full((len(d), 2), 9.0),
                          timesteps=3, max_gap_s=600)
    assert seq.shape == (2, 3, 3)
    gap = np.log1p(60) / np.log1p(600)
    assert np.allclose(seq[0], [[9, 9, 0], [9, 9, 0], [1, 1, gap]])  # context (padded), then the record
    assert np.allclose(seq[1], [[2, 2, 0]] * 3)  # no context: the record alone, repeated


def _one_by_one(scaled, times, contexts, transform, timesteps, max_gap_s) -> np.ndarray:
    """The sequence of each record built on its own: the reference for the vectorised builder."""
    out = []
    for row, t, context in zip(scaled, times, contexts):
        context = (context or [])[-(timesteps - 1):] if timesteps > 1 else []
        windows = [transform(pd.DataFrame([values], columns=list(FEATURES)))[0] for _, values in context] + [row]
        stamps = [then for then, _ in context] + [t]
        gaps = np.diff(np.array(stamps, dtype=np.int64), prepend=stamps[0]) / 1e9
        steps = [np.append(w, np.log1p(min(max(g, 0.0), max_gap_s)) / np.log1p(max_gap_s)) for w, g in zip(windows, gaps)]
        out.append([steps[0]] * (timesteps - len(steps)) + steps)
    return np.array(out, dtype=np.float32)


def test_the_vectorised_sequences_equal_one_by_one_on_random_contexts() -> None:
    rng = np.random.default_rng(7)
    n, k = 40, 5
    scaled = rng.normal(size=(n, 3))
    times = rng.integers(0, 10**12, size=n)
    contexts = [None if rng.random() < 0.2 else
                [(int(t), list(rng.normal(size=len(FEATURES)))) for t in sorted(rng.integers(0, 10**12, size=rng.integers(0, 7)))]
                for _ in range(n)]
    transform = lambda frame: frame.to_numpy()[:, :3] * 2.0  # noqa: E731 - a stand-in preprocessing
    assert np.allclose(sequence_inputs(scaled, times, contexts, transform, k, 600),
                       _one_by_one(scaled, times, contexts, transform, k, 600), atol=1e-6)


def test_scoring_cuts_a_context_where_the_bundles_gap_cuts_it() -> None:
    """The stream may keep windows across a longer gap (stream.sequence.max_gap) than the bundle
    learnt with: scoring drops those older than the bundle's max_gap_s chain."""
    from udfs.scoring import context_within_gap

    cell = [{"event_time_ns": 0, "features": [1.0]}, {"event_time_ns": 900 * S, "features": [2.0]},
            {"event_time_ns": 1000 * S, "features": [3.0]}]
    assert context_within_gap(cell, 1100 * S, 600 * S) == [(900 * S, [2.0]), (1000 * S, [3.0])]
    assert context_within_gap(cell, 2000 * S, 600 * S) == []
    assert context_within_gap(None, 0, 600 * S) is None
    assert context_within_gap([(0, [1.0])], 10 * S, 600 * S) == [(0, [1.0])]


def test_event_times_are_nanoseconds_whatever_the_columns_resolution() -> None:
    """The stream hands scoring microsecond timestamps (Arrow, Delta); contexts carry nanoseconds."""
    from models.sequences import event_times_ns

    text = pd.Series(["2026-05-07T16:49:47.817007Z"])
    expected = 1778172587817007000
    assert event_times_ns(text)[0] == expected
    for unit in ("s", "ms", "us", "ns"):
        column = pd.to_datetime(text, utc=True).astype(f"datetime64[{unit}, UTC]")
        assert event_times_ns(column)[0] == pd.Timestamp(column[0]).value
    assert event_times_ns(pd.to_datetime(text, utc=True).astype("datetime64[us, UTC]"))[0] == expected
