"""The device context's pure parts (no Spark): its state's value, a device's rows of a batch, the
processor over a stand-in state handle, the cells handed to scoring, its configuration. Expected
contexts are written out by hand."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.stream import table_rows
from jobs.stream.device_context import (DeviceContextProcessor, device_rows, frame_rows, passed_rows,
                                        state_to_windows, windows_to_state)
from jobs.stream.scoring import scoring_frame
from schemas.flow_record import CONTEXT, FEATURE_COLUMNS, FEATURES
from udfs.context_cells import context_cell, contexts_from_cells

S = 1_000_000  # microseconds in a second
COLUMNS = ["record_id", "device_id", "event_time", *FEATURE_COLUMNS]


def _features(value: float) -> list[float]:
    """39 features: the first is ``value``, the others 0."""
    return [value] + [0.0] * (len(FEATURES) - 1)


def _rows(*rows: tuple[str, str | None, int, float]) -> pd.DataFrame:
    """(record_id, device_id, event time in seconds, first feature) -> rows as the operator sees
    them: event_time in microseconds, features under their column names."""
    return pd.DataFrame([[rid, device, seconds * S, *_features(value)] for rid, device, seconds, value in rows],
                        columns=COLUMNS)


def _window(seconds: int, value: float) -> dict:
    return {"event_time_ns": seconds * 1_000_000_000, "features": _features(value)}


def test_the_state_holds_the_windows_oldest_first_and_gives_them_back() -> None:
    windows = [(1_700_000_000_123_456_789, [1.0, float("nan"), 3.0]), (1_700_000_000_123_456_790, [4.0, 5.0, 6.0])]
    times, features = windows_to_state(windows)
    assert isinstance(times, bytes) and len(times) == 2 * 8 and len(features) == 6 * 8
    back = state_to_windows((bytearray(times), features))  # the client may hand bytes over as bytearray
    assert [t for t, _ in back] == [1_700_000_000_123_456_789, 1_700_000_000_123_456_790]  # ns kept exactly
    assert back[1][1] == [4.0, 5.0, 6.0] and back[0][1][0] == 1.0 and math.isnan(back[0][1][1])
    assert state_to_windows(None) == [] and state_to_windows((None, None)) == [] and state_to_windows((b"", b"")) == []


def test_a_devices_rows_get_its_earlier_windows_in_time_order_cut_at_a_gap() -> None:
    previous = [(90 * 10**9, _features(-1.0))]
    # out of order in the batch; 700 s between r2 and r3 is over the 600 s gap
    frame = _rows(("r3", "d", 1000, 3.0), ("r1", "d", 100, 1.0), ("r2", "d", 300, 2.0), ("r4", "d", 1010, 4.0))
    out, keep = device_rows(frame, previous, context_windows=2, max_gap_s=600)
    assert out[CONTEXT].tolist() == [
        [],                                  # r3: r2 is 700 s before
        [_window(90, -1.0)],                 # r1: the kept window
        [_window(90, -1.0), _window(100, 1.0)],
        [_window(1000, 3.0)],                # r4: r3 only (r2 is cut by the gap before r3)
    ]
    assert keep == [(1000 * 10**9, _features(3.0)), (1010 * 10**9, _features(4.0))]
    assert out["record_id"].tolist() == ["r3", "r1", "r2", "r4"]  # rows unchanged, in their order


def test_rows_without_a_kept_context_pass_with_a_null_one() -> None:
    out = passed_rows(_rows(("q1", None, 5, 1.0), ("q2", "d", 6, 2.0)))
    assert out[CONTEXT].tolist() == [None, None] and out["record_id"].tolist() == ["q1", "q2"]


def test_frame_rows_give_each_device_its_earlier_rows_and_none_without_a_device() -> None:
    frame = _rows(("b2", "b", 20, 2.0), ("a1", "a", 10, 1.0), ("x", None, 15, 9.0), ("b1", "b", 10, 1.5),
                  ("a2", "a", 11, 2.5))
    out = frame_rows(frame, timesteps=3, max_gap_s=600)
    assert out[CONTEXT].tolist() == [[_window(10, 1.5)], [], None, [], [_window(10, 1.0)]]


class _ValueState:
    def __init__(self) -> None:
        self.value = None
        self.updates = 0

    def get(self):
        return self.value

    def update(self, value) -> None:
        self.value, self.updates = value, self.updates + 1


class _Handle:
    def __init__(self) -> None:
        self.states: dict[str, tuple] = {}

    def getValueState(self, name, schema, ttl_ms):
        self.states[name] = (_ValueState(), schema, ttl_ms)
        return self.states[name][0]


def test_the_processor_keeps_a_devices_windows_across_batches_and_leaves_other_keys_alone() -> None:
    columns = [*COLUMNS, CONTEXT]
    processor = DeviceContextProcessor(context_windows=1, max_gap_s=600, ttl_ms=3_600_000, columns=columns)
    handle = _Handle()
    processor.init(handle)
    state, schema, ttl = handle.states["windows"]
    assert ttl == 3_600_000 and schema == "event_time_ns binary, features binary"
    first = _rows(("r1", "d", 100, 1.0))
    second = [_rows(("r3", "d", 300, 3.0)), _rows(("r2", "d", 200, 2.0))]  # one key's rows in two frames
    out = list(processor.handleInputRows(("d:d",), iter([first]), None))
    assert [f[CONTEXT].tolist() for f in out] == [[[]]]
    out = list(processor.handleInputRows(("d:d",), iter(second), None))
    assert len(out) == 1 and list(out[0].columns) == columns
    assert out[0][CONTEXT].tolist() == [[_window(200, 2.0)], [_window(100, 1.0)]]
    assert state_to_windows(state.value) == [(300 * 10**9, _features(3.0))] and state.updates == 2
    passed = list(processor.handleInputRows(("p:17",), iter([_rows(("x", None, 5, 1.0))]), None))
    assert passed[0][CONTEXT].tolist() == [None] and state.updates == 2


def test_context_cells_become_contexts_with_nan_for_a_missing_feature() -> None:
    cells = [None, [], [{"event_time_ns": 5, "features": [1.0, None]}],
             np.array([{"event_time_ns": 6, "features": np.array([2.0, 3.0])}], dtype=object)]
    got = contexts_from_cells(cells)
    assert got[0] is None and got[1] == [] and got[3] == [(6, [2.0, 3.0])]
    assert got[2][0][0] == 5 and got[2][0][1][0] == 1.0 and math.isnan(got[2][0][1][1])
    assert context_cell(None) is None and context_cell([(5, [1.0])]) == [{"event_time_ns": 5, "features": [1.0]}]


def _records(with_context: bool) -> pa.Table:
    when = datetime(2026, 5, 5, 12, tzinfo=timezone.utc)
    columns = {"record_id": ["a", "b"], "event_time": pa.array([when, when], pa.timestamp("us", tz="UTC")),
               **{c: [float(i), 1.0] for i, c in enumerate(FEATURE_COLUMNS)}}
    if with_context:
        columns[CONTEXT] = pa.array([[_window(1, 1.0)], None], pa.list_(pa.struct(
            [("event_time_ns", pa.int64()), ("features", pa.list_(pa.float64()))])))
    return pa.table(columns)


def test_the_frame_handed_to_scoring_carries_event_time_and_context_only_when_the_batch_has_them() -> None:
    for with_context in (False, True):
        records = _records(with_context)
        features = records.select(list(FEATURE_COLUMNS)).to_pandas()
        features.columns = list(FEATURES)
        frame = scoring_frame(records, features)
        if not with_context:
            assert list(frame.columns) == list(FEATURES)
            continue
        assert list(frame.columns) == [*FEATURES, "event_time", CONTEXT]
        assert frame[CONTEXT].tolist() == [[(1_000_000_000, _features(1.0))], None]
        assert frame["event_time"].tolist() == [pd.Timestamp("2026-05-05 12:00", tz="UTC")] * 2
        assert frame[list(FEATURES)].dtypes.unique().tolist() == [np.float64]


def test_flows_scored_rows_leave_the_context_out() -> None:
    from schemas.tables import TABLES

    spec = TABLES["flows_scored"]
    kept = [c for c in spec.columns if c.name not in ("batch_id", "scored_at", "task_slot", "event_date")]
    good = pa.table({**{c.name: pa.nulls(1, c.type) for c in kept}, "quarantine_reason": pa.nulls(1, pa.string()),
                     "raw_value": pa.nulls(1, pa.string()), "raw_bytes": pa.nulls(1, pa.int32()),
                     "raw_sha256": pa.nulls(1, pa.string()),
                     "event_time": pa.array([datetime(2026, 5, 5, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC")),
                     CONTEXT: pa.array([[_window(1, 1.0)]])})
    rows = table_rows.flows_scored(good, 3, datetime(2026, 5, 5, tzinfo=timezone.utc))
    assert CONTEXT not in rows.column_names and rows.column_names == list(spec.column_names)


def test_sequence_configuration_defaults_to_off_and_refuses_what_it_cannot_use() -> None:
    sequence = config_from_mapping({}).stream.sequence
    assert not sequence.enabled and sequence.max_gap_s == 600 and sequence.state_ttl_ms == 3_600_000
    on = config_from_mapping({"stream": {"sequence": {"context_windows": 7, "max_gap": "90s",
                                                      "state_ttl": "2 hours"}}}).stream.sequence
    assert on.enabled and on.context_windows == 7 and on.max_gap_s == 90 and on.state_ttl_ms == 7_200_000
    for given, says in [({"context_windows": -1}, "context_windows must be a whole number from 0"),
                        ({"context_windows": True}, "context_windows must be a whole number"),
                        ({"context_windows": "7"}, "context_windows must be a whole number"),
                        ({"context_windows": 65}, "from 0 (off) to 64"),
                        ({"max_gap": "0"}, "max_gap: '0' must be more than zero"),
                        ({"max_gap": "soon"}, "max_gap: 'soon' is not a duration"),
                        ({"state_ttl": "500ms"}, "state_ttl: '500ms' must be at least 1 second"),
                        ({"windows": 3}, "unknown keys ['windows']")]:
        with pytest.raises(ConfigError, match=f"stream.sequence.*{re.escape(says)}"):
            config_from_mapping({"stream": {"sequence": given}})


def test_the_stream_warns_when_it_keeps_fewer_windows_than_the_bundle_reads(caplog) -> None:
    from jobs.stream.score_stream import warn_sequence_mismatch

    manifest = {"lstm_ae": {"config": {"timesteps": 8, "max_gap_s": 300}}}
    off = config_from_mapping({}).stream
    on = config_from_mapping({"stream": {"sequence": {"context_windows": 7, "max_gap": "5 minutes"}}}).stream
    with caplog.at_level("WARNING", logger="jobs.stream.score_stream"):
        warn_sequence_mismatch({"lstm_ae": {"config": {"timesteps": 1}}}, off)
        warn_sequence_mismatch(manifest, on)
        assert caplog.messages == []
        warn_sequence_mismatch(manifest, off)
        warn_sequence_mismatch(dict(manifest, lstm_ae={"config": {"timesteps": 8}}), on)
    assert "reads 8 windows a record, but stream.sequence.context_windows is 0: set it to 7" in caplog.messages[0]
    assert "max_gap is 300.0 s, but the bundle's sequences were cut at 600.0 s" in caplog.messages[1]
