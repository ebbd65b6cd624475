"""Reading a time window of the job's Delta tables again and again (the operator dashboard's
refreshes, its incidents view) at a cost that does not grow with the table: each table is opened once per dashboard process and brought up to date
incrementally; the files of a window are chosen from the table's file list (partition values and
min/max statistics, one Arrow table per table version, shared by every read of that version) and
opened with pyarrow directly. (delta-rs's own ``to_pyarrow_dataset`` turns every file's statistics
into a pyarrow expression on each call: 0.4 s with a predicate and 6.5 s without one at 838 files,
measured on a soak's ``flows_scored``; choosing from the file list takes a few milliseconds.)

Files without statistics (written before the job kept them) are always read; rows are filtered
exactly after the read. Only data columns are read (not partition columns).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)


@dataclass
class _Open:
    lock: threading.Lock = field(default_factory=threading.Lock)
    table: Any = None             # deltalake.DeltaTable
    version: int | None = None    # the version ``files`` describes
    files: pa.Table | None = None  # get_add_actions(flatten=True) at that version


_OPEN: dict[str, _Open] = {}
_OPEN_LOCK = threading.Lock()


def forget(uri: str) -> None:
    """Drop what this process keeps of a table (it was replaced: a new demo run)."""
    with _OPEN_LOCK:
        _OPEN.pop(uri, None)


@contextmanager
def opened(location: "TablesLocation", name: str) -> Iterator[tuple[Any, pa.Table] | None]:
    """(the table at its latest version, its file list), or None while the job has not created it."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = location.uri(name)
    with _OPEN_LOCK:
        state = _OPEN.setdefault(uri, _Open())
    with state.lock:
        if state.table is not None:
            try:
                state.table.update_incremental()
            except Exception:  # deleted or replaced under us: open it again
                log.info("reopening the Delta table at %s", uri, exc_info=True)
                state.table = None
        if state.table is None:
            try:
                state.table = DeltaTable(uri, storage_options=location.storage_options())
            except TableNotFoundError:
                log.info("no Delta table at %s yet", uri)
                yield None
                return
            state.version = None
        if state.version != state.table.version():
            state.files = pa.table(state.table.get_add_actions(flatten=True))
            state.version = state.table.version()
        yield state.table, state.files


def _since_scalar(column: pa.ChunkedArray, since: datetime) -> pa.Scalar:
    return pa.scalar(since, type=column.type)


def may_hold(files: pa.Table, column: str, low: Any = None, high: Any = None) -> pa.ChunkedArray | pa.Array:
    """Per data file (a row of a table's flattened add actions): whether its ``column`` statistics
    allow a value from ``low`` to ``high`` (either open when None). A file without statistics may
    hold any value."""
    keep: pa.ChunkedArray | pa.Array = pa.array([True] * files.num_rows, type=pa.bool_())
    smallest, largest = f"min.{column}", f"max.{column}"
    if high is not None and smallest in files.column_names:
        keep = pc.and_(keep, pc.fill_null(pc.less_equal(files[smallest], high), True))
    if low is not None and largest in files.column_names:
        keep = pc.and_(keep, pc.fill_null(pc.greater_equal(files[largest], low), True))
    return keep


def window_files(files: pa.Table, since: datetime | None, time_column: str | None,
                 partitioned: bool, until: datetime | None = None) -> list[str]:
    """The paths (relative to the table) of the files that may hold rows from ``since`` on (and up
    to ``until``, when given)."""
    keep = pa.array([True] * files.num_rows, type=pa.bool_())
    dates = (pc.cast(files["partition.event_date"], pa.string())
             if partitioned and "partition.event_date" in files.column_names else None)
    if since is not None and dates is not None:
        keep = pc.and_(keep, pc.fill_null(pc.greater_equal(dates, since.date().isoformat()), True))
    if until is not None and dates is not None:
        keep = pc.and_(keep, pc.fill_null(pc.less_equal(dates, until.date().isoformat()), True))
    if time_column:
        def bound(at: datetime | None, column: str) -> pa.Scalar | None:
            return _since_scalar(files[column], at) if at is not None and column in files.column_names else None

        # Delta keeps timestamps to the millisecond and writers may truncate a maximum: 1 ms of slack
        low = bound(since - timedelta(milliseconds=1) if since is not None else None, f"max.{time_column}")
        keep = pc.and_(keep, may_hold(files, time_column, low, bound(until, f"min.{time_column}")))
    return [unquote(path) for path in files.filter(keep)["path"].to_pylist()]


def read_window(location: "TablesLocation", name: str, columns: list[str], since: datetime | None = None,
                time_column: str | None = None, until: datetime | None = None) -> pa.Table | None:
    """``columns`` of the rows whose ``time_column`` is at or after ``since`` (and at or before
    ``until``); every row without them; None while the table does not exist. Columns the table
    does not have are nulls."""
    import pyarrow.dataset as pads

    from schemas.tables import TABLES

    with opened(location, name) as found:
        if found is None:
            return None
        table, files = found
        partitioned = bool(table.metadata().partition_columns)
        paths = window_files(files, since, time_column, partitioned, until)
    spec = TABLES[name].arrow_schema()
    read = [*columns, *([time_column] if time_column and time_column not in columns else [])]
    wanted = pa.schema([spec.field(c) for c in read if c in spec.names])
    from jobs.stream.delta_writer import table_filesystem  # one filesystem per location, as the writers'

    store, root = table_filesystem(location)
    full = [f"{root.rstrip('/')}/{name}/{path}" for path in paths]
    condition = None
    if time_column is not None:
        kind = spec.field(time_column).type
        terms = ([pads.field(time_column) >= pa.scalar(since, type=kind)] if since is not None else []) + \
                ([pads.field(time_column) <= pa.scalar(until, type=kind)] if until is not None else [])
        for term in terms:
            condition = term if condition is None else condition & term
    try:
        rows = pads.dataset(full, schema=wanted, format="parquet", filesystem=store).to_table(filter=condition)
    except FileNotFoundError:  # a file of the version this process knew is gone (the table was replaced)
        forget(location.uri(name))
        raise
    for column in columns:
        if column not in rows.column_names:
            rows = rows.append_column(column, pa.nulls(rows.num_rows))
    return rows.select(columns)


def newest_value(location: "TablesLocation", name: str, column: str) -> Any:
    """The largest ``column`` of the table from its files' statistics (every file read when one
    lacks them); None for a missing or empty table."""
    with opened(location, name) as found:
        if found is None:
            return None
        _, files = found
        bound = f"max.{column}"
        if files.num_rows == 0:
            return None
        if bound in files.column_names and files[bound].null_count == 0:
            return pc.max(files[bound]).as_py()
    rows = read_window(location, name, [column])
    return pc.max(rows[column]).as_py() if rows is not None and rows.num_rows else None
