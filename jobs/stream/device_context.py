"""Each device's recent windows, kept in the stream's state and attached to its next records as their
``context`` (``stream.sequence``: a bundle whose autoencoder reads sequences, :mod:`models.sequences`).

The operator is ``groupBy(key).transformWithStateInPandas(DeviceContextProcessor)``, placed in the
query's plan between parsing and the sink only when ``stream.sequence.context_windows`` > 0
(:func:`with_device_context`):

- the key of a record that parsed and names a device is the device (``d:<device_id>``); its group's
  rows, with the device's kept windows, go through :func:`models.sequences.device_contexts`, and the
  device's last ``context_windows`` windows are kept for its next records (a ValueState whose TTL,
  ``state_ttl`` of processing time since its last update, drops idle devices);
- every other record (quarantined, or without a device: replayed dataset rows) passes untouched with
  a null context and touches no state; they are spread over :data:`PASS_BUCKETS` keys
  (``p:<hash of record_id mod 64>``) so that no one task gets them all.

A micro-batch replayed after a crash reads the state version its first run read (Spark's state store
versions follow the batches), so it attaches the same contexts. Timestamps cross the Python operator
as microseconds (``unix_micros``) and are restored after it: the pandas conversion of timestamps
depends on the session's time zone, microseconds do not.

The operator needs the RocksDB state store and no batches without data (:data:`SESSION_SETTINGS`,
set by ``build_spark`` and checked by :func:`ensure_session_settings`); its shuffle gives the sink
``spark.sql.shuffle.partitions`` tasks per batch, a number the checkpoint then fixes.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming import StatefulProcessor

from models.sequences import Context, device_contexts, frame_contexts
from schemas.flow_record import (CONTEXT, CONTEXT_FEATURES, CONTEXT_TIME, DEVICE_ID, EVENT_TIME, FEATURE_COLUMNS,
                                 FEATURES, RECORD_ID)
from udfs.context_cells import context_cell, object_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.stateful_processor import StatefulProcessorHandle, TimerValues

    from jobs.config import SequenceConfig

log = logging.getLogger(__name__)

KEY = "_context_key"
DEVICE_PREFIX, PASS_PREFIX = "d:", "p:"
PASS_BUCKETS = 64
STATE_NAME = "windows"
# A device's kept windows, oldest first: their event times (int64) and their features row after row
# (float64), each packed little-endian into bytes. Arrays would be the natural type, but Spark 4.0's
# Python state client cannot read them back (the JVM's pickler fails on array data).
STATE_SCHEMA = f"{CONTEXT_TIME} binary, {CONTEXT_FEATURES} binary"
# What the operator needs of the session the query starts in:
# - the RocksDB state store (transformWithState runs on no other);
# - no micro-batches without new data: a processing-time operator asks for one after every batch
#   (SPARK-50180, for timers this one has none), so an idle stream would run a batch of empty tasks
#   and log an empty batch_log row every trigger; expired state is hidden when read and dropped at
#   the next batch with data.
SESSION_SETTINGS: dict[str, str] = {
    "spark.sql.streaming.stateStore.providerClass":
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "spark.sql.streaming.noDataMicroBatches.enabled": "false",
}


def windows_to_state(windows: Context) -> tuple[bytes, bytes]:
    """A device's windows as its state's value (:data:`STATE_SCHEMA`)."""
    times = np.array([t for t, _ in windows], dtype="<i8")
    features = np.array([v for _, values in windows for v in values], dtype="<f8")
    return times.tobytes(), features.tobytes()


def state_to_windows(value: Sequence[Any] | None) -> Context:
    """The state's value back as windows (none when the device has no state, or it expired)."""
    if value is None or not value[0]:
        return []
    times = np.frombuffer(bytes(value[0]), dtype="<i8")
    features = np.frombuffer(bytes(value[1]), dtype="<f8").reshape(len(times), -1)
    return [(int(t), row.tolist()) for t, row in zip(times, features)]


def device_rows(frame: pd.DataFrame, previous: Context, context_windows: int,
                max_gap_s: float) -> tuple[pd.DataFrame, Context]:
    """One device's rows of a batch (``event_time`` in microseconds, features under their column
    names) with their ``context``, and the windows to keep."""
    times_ns = pd.to_numeric(frame[EVENT_TIME]).to_numpy(dtype=np.int64) * 1000
    features = frame[list(FEATURE_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    ids = frame[RECORD_ID].astype(str).to_numpy()
    contexts, keep = device_contexts(times_ns, features, ids, previous, context_windows + 1, max_gap_s)
    return frame.assign(**{CONTEXT: object_column([context_cell(c) for c in contexts], frame.index)}), keep


def frame_rows(frame: pd.DataFrame, timesteps: int, max_gap_s: float) -> pd.DataFrame:
    """Rows of any devices (``event_time`` in microseconds, features under their column names) with
    their ``context``: each device's earlier rows among them (:func:`models.sequences.frame_contexts`:
    re-scoring); null for rows without a device."""
    renamed = pd.DataFrame({feature: frame[column] for feature, column in zip(FEATURES, FEATURE_COLUMNS)})
    renamed[DEVICE_ID] = frame[DEVICE_ID].to_numpy()
    renamed[RECORD_ID] = frame[RECORD_ID].to_numpy()
    renamed[EVENT_TIME] = pd.to_datetime(pd.to_numeric(frame[EVENT_TIME]), unit="us", utc=True).to_numpy()
    contexts = frame_contexts(renamed.reset_index(drop=True), timesteps, max_gap_s)
    return frame.assign(**{CONTEXT: object_column([context_cell(c) for c in contexts], frame.index)})


def passed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that keep no context: a null ``context``."""
    return frame.assign(**{CONTEXT: object_column([None] * len(frame), frame.index)})


def is_device_key(key: Sequence[Any]) -> bool:
    return str(key[0]).startswith(DEVICE_PREFIX)


class DeviceContextProcessor(StatefulProcessor):
    """The stateful processor: a device's rows get their context and update its windows; other
    keys' rows pass with a null context. ``columns``: the output's columns, in order."""

    def __init__(self, context_windows: int, max_gap_s: float, ttl_ms: int, columns: Sequence[str]) -> None:
        self.context_windows = context_windows
        self.max_gap_s = max_gap_s
        self.ttl_ms = ttl_ms
        self.columns = list(columns)
        self._windows = None

    def init(self, handle: "StatefulProcessorHandle") -> None:
        self._windows = handle.getValueState(STATE_NAME, STATE_SCHEMA, self.ttl_ms)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: "TimerValues") -> Iterator[pd.DataFrame]:
        frames = list(rows)
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if not is_device_key(key):
            yield passed_rows(frame)[self.columns]
            return
        previous = state_to_windows(self._windows.get())
        out, keep = device_rows(frame, previous, self.context_windows, self.max_gap_s)
        self._windows.update(windows_to_state(keep))
        yield out[self.columns]

    def close(self) -> None:
        pass


def context_key(tracked: "Column") -> "Column":
    """The operator's key: ``d:<device_id>`` for a record whose context is kept (``tracked``), else
    one of :data:`PASS_BUCKETS` pass-through keys picked by its record id."""
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(F.col(RECORD_ID)), F.lit(PASS_BUCKETS)).cast("string")
    return F.when(tracked, F.concat(F.lit(DEVICE_PREFIX), F.col(DEVICE_ID))).otherwise(
        F.concat(F.lit(PASS_PREFIX), bucket))


def tracked_records() -> "Column":
    """The records whose device's context the stream keeps: those that parsed and name a device."""
    from pyspark.sql import functions as F

    from jobs.stream.parse import QUARANTINE_REASON

    return F.col(QUARANTINE_REASON).isNull() & F.col(DEVICE_ID).isNotNull()


def keyed_in_micros(frame: "DataFrame", tracked: "Column") -> tuple["DataFrame", set[str]]:
    """``frame`` with :data:`KEY` and every timestamp column as microseconds since the epoch (what
    crosses to pandas), and the names of those columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    times = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.TimestampType)}
    staged = frame.select(*[F.unix_micros(F.col(c)).alias(c) if c in times else F.col(c) for c in frame.columns],
                          context_key(tracked).alias(KEY))
    return staged, times


def with_context_type(staged: "DataFrame"):
    """The output type of a keyed frame's grouped step: its columns but the key, and ``context``."""
    from pyspark.sql import types as T

    from schemas.flow_record import context_type

    return T.StructType([*[T.StructField(f.name, f.dataType, True) for f in staged.schema.fields if f.name != KEY],
                         T.StructField(CONTEXT, context_type(), True)])


def timestamps_back(frame: "DataFrame", times: set[str], columns: Sequence[str]) -> "DataFrame":
    """``columns`` of ``frame``, those in ``times`` back from microseconds to timestamps."""
    from pyspark.sql import functions as F

    return frame.select(*[F.timestamp_micros(F.col(c)).alias(c) if c in times else F.col(c) for c in columns])


def with_device_context(prepared: "DataFrame", sequence: "SequenceConfig") -> "DataFrame":
    """``prepared`` with ``context`` (:data:`schemas.flow_record.CONTEXT_DDL`), through the stateful
    operator; the rows and their other columns unchanged."""
    staged, times = keyed_in_micros(prepared, tracked_records())
    output = with_context_type(staged)
    processor = DeviceContextProcessor(sequence.context_windows, sequence.max_gap_s, sequence.state_ttl_ms,
                                       output.fieldNames())
    contexts = staged.groupBy(KEY).transformWithStateInPandas(
        statefulProcessor=processor, outputStructType=output, outputMode="Append", timeMode="ProcessingTime")
    return timestamps_back(contexts, times, [*prepared.columns, CONTEXT])


def ensure_session_settings(spark: "SparkSession") -> None:
    """:data:`SESSION_SETTINGS` on a session built without them (runtime SQL settings, read when a
    query starts; a checkpoint keeps the state store provider its first batch ran with)."""
    for key, value in SESSION_SETTINGS.items():
        if spark.conf.get(key, None) != value:
            log.info("device context: setting %s=%s on the session", key, value)
            spark.conf.set(key, value)
