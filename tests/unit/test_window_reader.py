"""Reading a window of a Delta table through its file list: the files outside the window are not
opened, rows are cut exactly, and a new version of the table is seen at the next read."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

from jobs.storage import TablesLocation
from jobs.stream.delta_writer import DeltaAppender, write_data_files
from jobs.window_reader import may_hold, opened, read_window, window_files
from schemas.tables import TABLES

T0 = datetime(2026, 3, 1, 23, 50, tzinfo=timezone.utc)


def _batch(minutes: list[int], start: int) -> pa.Table:
    spec = TABLES["alerts"]
    times = [T0 + timedelta(minutes=m) for m in minutes]
    rows = pa.table({c.name: pa.nulls(len(times), c.type) for c in spec.columns}).cast(spec.arrow_schema())
    for name, values in (("record_id", [f"r{start + i}" for i in range(len(times))]), ("event_time", times),
                         ("event_date", [t.date() for t in times])):
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, spec.arrow_schema().field(name).type))
    return rows


def test_only_the_files_of_the_window_are_read_and_rows_are_cut_exactly(tmp_path) -> None:
    appender = DeltaAppender(tmp_path, "app-1")
    location = TablesLocation.of(tmp_path)
    for batch_id, minutes in enumerate(([0, 5], [9, 11], [15, 20], [30, 40])):  # crosses midnight at minute 10
        assert appender.commit_files("alerts", write_data_files(appender.tables, "alerts", _batch(minutes, 2 * batch_id),
                                                                batch_id), batch_id)
    with opened(location, "alerts") as (table, files):
        partitioned = bool(table.metadata().partition_columns)
        since, until = T0 + timedelta(minutes=12), T0 + timedelta(minutes=30)
        chosen = window_files(files, since, "event_time", partitioned, until)
    # the batch of minutes 9 and 11 wrote two files (one per date), both end before minute 12
    assert len(files) == 5 and len(chosen) == 2
    rows = read_window(location, "alerts", ["record_id", "event_time"], since, "event_time", until)
    assert sorted(rows["record_id"].to_pylist()) == ["r4", "r5", "r6"]
    assert appender.commit_files("alerts", write_data_files(appender.tables, "alerts", _batch([45], 8), 4), 4)
    later = read_window(location, "alerts", ["record_id"], T0 + timedelta(minutes=41), "event_time")
    assert later["record_id"].to_pylist() == ["r8"]  # the new version is seen
    assert read_window(TablesLocation.of(tmp_path / "none"), "alerts", ["record_id"]) is None


def test_a_table_without_files_reads_as_no_rows(tmp_path) -> None:
    """The stream creates a table with its first (empty) batch: a window of it is empty, not an error."""
    appender = DeltaAppender(tmp_path, "app-1")
    assert appender.commit_files("alerts", [], 0)
    rows = read_window(TablesLocation.of(tmp_path), "alerts", ["record_id"], T0, "event_time")
    assert rows.num_rows == 0 and rows.column_names == ["record_id"]


def test_a_file_may_hold_a_range_unless_its_statistics_say_otherwise() -> None:
    files = pa.table({"path": ["a", "b", "c", "d"], "min.batch_id": [0, 5, None, 9],
                      "max.batch_id": [4, 8, None, 12]})
    kept = lambda low, high: files.filter(may_hold(files, "batch_id", low, high))["path"].to_pylist()  # noqa: E731
    assert kept(5, 6) == ["b", "c"]          # c has no statistics: it may hold them
    assert kept(4, 5) == ["a", "b", "c"]     # the bounds are inclusive
    assert kept(None, 4) == ["a", "c"] and kept(10, None) == ["c", "d"]
    assert kept(None, None) == ["a", "b", "c", "d"]
    assert may_hold(files, "event_time", 1, 2).to_pylist() == [True] * 4  # no such statistics
