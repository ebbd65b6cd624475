"""Idempotent appends to the job's Delta tables from the driver, with delta-rs (``deltalake``).

Each commit carries an application transaction (``app_id``, batch id), the same ``txn`` action
Spark's ``txnAppId``/``txnVersion`` options write: a table whose recorded version for ``app_id`` is
already at or past a batch has that batch, and the append is skipped. A batch replayed after a
crash therefore writes nothing twice. Spark (delta-spark) reads and maintains these tables as usual.

Why not Spark's Delta writer here: each Spark append with ``txnAppId`` runs three to four Spark jobs
to rebuild the table state (~1.2-1.5 s per table per micro-batch on this project's 2-core machine,
even for one row), which put a floor of seconds under every micro-batch. A delta-rs commit keeps
its table state open between batches and costs milliseconds plus the Parquet write.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from typing import TYPE_CHECKING

import pyarrow as pa

from schemas.tables import TABLES

if TYPE_CHECKING:
    from jobs.storage import TablesLocation
    from jobs.stream.writers import BatchOutput, WriteOutcome

log = logging.getLogger(__name__)


class DeltaAppender:
    """Appends to the tables under ``tables`` (a local directory or an object store, with its
    credentials resolved). Safe to use from one thread per table at a time."""

    def __init__(self, tables: "TablesLocation | str | os.PathLike[str]", app_id: str) -> None:
        from jobs.storage import TablesLocation

        self.tables = (tables if isinstance(tables, TablesLocation) else TablesLocation.of(tables)).resolved()
        self.options = self.tables.storage_options()
        self.app_id = app_id
        self._open: dict[str, object] = {}  # name -> deltalake.DeltaTable, kept between batches
        self._lock = threading.Lock()

    def path(self, name: str) -> str:
        return self.tables.uri(name)

    def _table(self, name: str):
        """The table, brought up to date, or None when it does not exist yet."""
        from deltalake import DeltaTable

        with self._lock:
            table = self._open.get(name)
        if table is None:
            if not DeltaTable.is_deltatable(self.path(name), storage_options=self.options):
                return None
            table = DeltaTable(self.path(name), storage_options=self.options)
            with self._lock:
                self._open[name] = table
        else:
            table.update_incremental()  # another writer (OPTIMIZE, a restarted job) may have committed
        return table

    def version(self, name: str) -> int | None:
        """The table's latest version, or None when it does not exist yet."""
        return self.version_holding(name, -1)[0]

    def version_holding(self, name: str, batch_id: int) -> tuple[int | None, bool]:
        """The table's latest version (None when it does not exist yet) and whether it holds batch
        ``batch_id`` of this app, from one look at the table's log."""
        table = self._table(name)
        return (None, False) if table is None else (table.version(), self._holds(table, batch_id))

    def committed(self, name: str, batch_id: int) -> bool:
        """Whether ``name`` already holds batch ``batch_id`` (or a later one) of this app."""
        table = self._table(name)
        return table is not None and self._holds(table, batch_id)

    def _holds(self, table, batch_id: int) -> bool:
        version = table.transaction_version(self.app_id)
        return version is not None and version >= batch_id

    def last_batch(self, name: str) -> int | None:
        """The highest batch id of this app that ``name`` holds (its transaction version), or None."""
        table = self._table(name)
        return None if table is None else table.transaction_version(self.app_id)

    def rows(self, name: str, batch_id: int, columns: list[str]) -> list[dict]:
        """This app's rows of batch ``batch_id`` in ``name`` (the columns the table has of ``columns``)."""
        import pyarrow.dataset as ds

        table = self._table(name)
        if table is None:
            return []
        dataset = table.to_pyarrow_dataset()
        present = [c for c in columns if c in dataset.schema.names]
        condition = ds.field("batch_id") == batch_id
        if "app_id" in dataset.schema.names:
            condition = condition & (ds.field("app_id") == self.app_id)
        return dataset.to_table(columns=present, filter=condition).to_pylist()

    def commit_files(self, name: str, files: list[dict], batch_id: int) -> bool:
        """Commit data files the executors wrote (``jobs.stream.executor``) to ``name`` as batch
        ``batch_id``, with its transaction; the first batch creates the table (empty if it brought no
        file). False when the table already holds the batch, or nothing was to be committed."""
        from deltalake import CommitProperties, Schema, Transaction
        from deltalake.transaction import AddAction, create_table_with_add_actions

        spec = TABLES[name]
        adds = [AddAction(f["path"], int(f["size"]), f["partition_values"], int(f["modification_time"]), True,
                          f["stats"]) for f in files]
        commit = CommitProperties(app_transactions=[Transaction(app_id=self.app_id, version=batch_id)])
        table = self._table(name)
        if table is None:
            create_table_with_add_actions(self.path(name), Schema.from_arrow(spec.arrow_schema()), adds, mode="append",
                                          partition_by=list(spec.partition_by) or None, storage_options=self.options,
                                          commit_properties=commit)
            return True
        if self._holds(table, batch_id):
            log.info("%s already holds batch %d of %s: skipped", name, batch_id, self.app_id)
            return False
        if not adds:
            return False
        _add_missing_columns(table, spec.arrow_schema())
        table.create_write_transaction(adds, mode="append", schema=spec.arrow_schema(),
                                       partition_by=list(spec.partition_by) or None, commit_properties=commit)
        return True

    def merge_devices(self, name: str, rows: pa.Table, batch_id: int) -> bool:
        """Merge a batch's device rows into ``name`` (one row per device), once per batch."""
        from deltalake import CommitProperties, Transaction

        table = self._table(name)
        if table is None or rows.num_rows == 0:
            return self.append(name, rows, batch_id)  # creates the table (first batch) or skips
        if self._holds(table, batch_id):
            log.info("%s already holds batch %d of %s: skipped", name, batch_id, self.app_id)
            return False
        (table.merge(rows, predicate="t.device_id = s.device_id", source_alias="s", target_alias="t",
                     commit_properties=CommitProperties(app_transactions=[Transaction(app_id=self.app_id,
                                                                                      version=batch_id)]))
         .when_matched_update(DEVICE_MERGE).when_not_matched_insert_all().execute())
        return True

    def read(self, name: str) -> pa.Table | None:
        """Every row of ``name`` in its definition's types, or None when the table does not exist yet
        (small tables: a merge may write ``string_view`` columns, which pyarrow cannot filter on). A
        column added since the table was written reads as nulls."""
        table = self._table(name)
        if table is None:
            return None
        rows = table.to_pyarrow_dataset().to_table()
        schema = TABLES[name].arrow_schema()
        for field in schema:
            if field.name not in rows.column_names:
                rows = rows.append_column(field.name, pa.nulls(rows.num_rows, field.type))
        return rows.select(schema.names).cast(schema)

    def upsert(self, name: str, rows: pa.Table, batch_id: int, key: str) -> bool:
        """Merge ``rows`` into ``name`` by ``key`` (a row with a known key replaces it whole, others are
        inserted), once per batch; the first batch creates the table."""
        from deltalake import CommitProperties, Transaction

        table = self._table(name)
        if table is None or rows.num_rows == 0:
            return self.append(name, rows, batch_id)
        if self._holds(table, batch_id):
            log.info("%s already holds batch %d of %s: skipped", name, batch_id, self.app_id)
            return False
        (table.merge(rows, predicate=f"t.{key} = s.{key}", source_alias="s", target_alias="t", merge_schema=True,
                     commit_properties=CommitProperties(app_transactions=[Transaction(app_id=self.app_id,
                                                                                      version=batch_id)]))
         .when_matched_update_all().when_not_matched_insert_all().execute())
        return True

    def append(self, name: str, rows: pa.Table, batch_id: int, skip_empty: bool = True) -> bool:
        """Append ``rows`` as batch ``batch_id``; False when nothing was written because the table
        already has the batch, or (``skip_empty``) the rows are empty and the table exists (an empty
        batch creates a missing table, so analysts can query it from the start)."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        table = self._table(name)
        if table is not None:
            if self._holds(table, batch_id):
                log.info("%s already holds batch %d of %s: skipped", name, batch_id, self.app_id)
                return False
            if skip_empty and rows.num_rows == 0:
                return False
        partition_by = list(TABLES[name].partition_by) or None
        # schema_mode="merge": a table written by an earlier version gains the columns added since
        write_deltalake(table if table is not None else self.path(name), rows, mode="append",
                        partition_by=partition_by, schema_mode="merge", storage_options=self.options,
                        commit_properties=CommitProperties(
                            app_transactions=[Transaction(app_id=self.app_id, version=batch_id)]))
        if table is None:
            from deltalake import DeltaTable

            with self._lock:
                self._open[name] = DeltaTable(self.path(name), storage_options=self.options)
        return True


def _add_missing_columns(table, schema: pa.Schema) -> None:
    """Give a table written by an earlier version the columns added to its definition since (null in
    its older rows): a write transaction keeps the table's schema, so the new columns of committed
    files would stay invisible otherwise."""
    from deltalake import Schema

    present = set(table.schema().to_arrow().names)
    missing = [field for field in schema if field.name not in present]
    if missing:
        table.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
        log.info("%s: columns %s added", table.table_uri, [field.name for field in missing])


# How a batch's device rows merge into the devices table (one row per device): counts add up, the
# first and last times widen, the addresses and severity follow the later record.
DEVICE_MERGE: dict[str, str] = {
    "first_seen": "CASE WHEN s.first_seen < t.first_seen THEN s.first_seen ELSE t.first_seen END",
    "last_seen": "CASE WHEN s.last_seen > t.last_seen THEN s.last_seen ELSE t.last_seen END",
    "records": "t.records + s.records",
    "anomalies": "t.anomalies + s.anomalies",
    **{name: f"CASE WHEN s.last_seen >= t.last_seen THEN s.{name} ELSE t.{name} END"
       for name in ("device_mac", "device_ip", "device_vendor", "last_severity")},
    "last_anomaly": "CASE WHEN t.last_anomaly IS NULL OR s.last_anomaly > t.last_anomaly THEN s.last_anomaly "
                    "ELSE t.last_anomaly END",
    "batch_id": "s.batch_id",
}


class DeltaFilesWriter:
    """The required writer, on the executors: each table's rows of a task as Parquet data files in
    the table's directory (one file per partition value; the partition columns live in the path, as
    Delta keeps them). The driver commits them (:meth:`DeltaAppender.commit_files`)."""

    name = "delta"
    required = True

    def __init__(self, location: "TablesLocation", tables: tuple[str, ...]) -> None:
        self.location = location
        self.tables = tables

    def write(self, batch: "BatchOutput") -> "WriteOutcome":
        from jobs.stream.writers import WriteOutcome

        files = [{**described, "table": name} for name in self.tables
                 for described in write_data_files(self.location, name, batch.tables[name], batch.batch_id,
                                                   batch.partition)]
        return WriteOutcome(written=sum(f["records"] for f in files), files=tuple(files))

    def close(self) -> None:
        pass


# A data file's name: its batch, the Spark task partition that wrote it (the slot of its InfluxDB
# aggregates: ``iomt-ad influx-backfill`` rebuilds the very same points from it), the writer, a random id.
DATA_FILE = re.compile(r"part-(?P<batch>\d{8})-t(?P<task>\d{5})-[^/]*\.snappy\.parquet$")


def task_partition(path: str) -> int | None:
    """The task partition a data file's name records (None: a file of an older version, or one
    OPTIMIZE rewrote)."""
    match = DATA_FILE.search(path)
    return int(match.group("task")) if match else None


def write_data_files(location: "TablesLocation", name: str, rows: pa.Table, batch_id: int,
                     partition: int = 0) -> list[dict]:
    """Parquet files of ``rows`` under table ``name``'s directory, one per partition value; a
    description of each (its path relative to the table, size, partition values, record count).
    ``partition``: the Spark task's, kept in the file names (:data:`DATA_FILE`)."""
    import json
    import os
    import socket
    import time
    import uuid

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if rows.num_rows == 0:
        return []
    spec = TABLES[name]
    filesystem, root = table_filesystem(location)
    table_root = f"{root.rstrip('/')}/{name}"
    groups: list[tuple[dict, pa.Table]] = [({}, rows)]
    for column in spec.partition_by:
        split = []
        for values, part in groups:
            for key in part[column].unique().to_pylist():
                chosen = pc.is_null(part[column]) if key is None else pc.equal(part[column], pa.scalar(key, part[column].type))
                split.append(({**values, column: None if key is None else str(key)}, part.filter(chosen)))
        groups = split
    described = []
    for values, part in groups:
        directory = "/".join(f"{column}={values[column]}" for column in spec.partition_by)
        # the batch, and the process that wrote it (the cluster test checks executors write the files)
        writer = f"{socket.gethostname()}.{os.getpid()}".replace("-", "_")
        relative = (f"{directory + '/' if directory else ''}part-{batch_id:08d}-t{partition % 100_000:05d}-"
                    f"{writer}-{uuid.uuid4().hex}.snappy.parquet")
        path = f"{table_root}/{relative}"
        if location.is_local:  # an object store has no directories to create
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(part.drop_columns(list(spec.partition_by)), path, filesystem=filesystem, compression="snappy")
        described.append({"path": relative, "size": filesystem.get_file_info(path).size, "partition_values": values,
                          "modification_time": int(time.time() * 1000),
                          "stats": json.dumps(file_stats(part.drop_columns(list(spec.partition_by)))),
                          "records": part.num_rows})
    return described


def _stat_value(value: object) -> object:
    """A min or max as Delta's statistics write it (timestamps in UTC with milliseconds)."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def file_stats(rows: pa.Table) -> dict:
    """Delta statistics of one data file: its record count, and the null count, minimum and maximum of
    its timestamp, date and integer columns, so that readers skip the files a filter on
    ``event_time``, ``minute`` or ``batch_id`` excludes (Spark, delta-rs, the operator dashboard).
    Timestamps are kept to the millisecond: the minimum rounded down, the maximum up, so that a
    file's range always covers its rows. Strings and floats get no bounds (a truncated string or a
    NaN would need care that no query here needs)."""
    import pyarrow.compute as pc

    stats: dict = {"numRecords": rows.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    for field in rows.schema:
        kind = field.type
        if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_integer(kind)):
            continue
        column = rows[field.name]
        stats["nullCount"][field.name] = column.null_count
        if column.null_count == len(column):
            continue
        bounds = pc.min_max(column)
        low, high = bounds["min"], bounds["max"]
        try:
            if pa.types.is_timestamp(kind):
                low = pc.floor_temporal(low, unit="millisecond")
                high = pc.ceil_temporal(high, unit="millisecond")
            low, high = _stat_value(low.as_py()), _stat_value(high.as_py())
        except (ValueError, OverflowError, pa.ArrowInvalid):  # beyond what a datetime holds: no bounds
            continue
        stats["minValues"][field.name], stats["maxValues"][field.name] = low, high
    return stats


_FILESYSTEMS: dict = {}


def table_filesystem(location: "TablesLocation"):
    """One pyarrow filesystem per Python worker and location (an S3 client keeps its connections)."""
    key = (location.root, repr(location.storage), location.credentials)
    if key not in _FILESYSTEMS:
        _FILESYSTEMS[key] = location.filesystem()
    return _FILESYSTEMS[key]
