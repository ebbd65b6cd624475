"""``iomt-ad influx-backfill``: send InfluxDB the points of stream batches again, rebuilt from Delta.

Delta holds every scored record (``flows_scored``); InfluxDB gets the per-device aggregates and the
anomalous records' points, and a batch whose InfluxDB write failed (InfluxDB down, slow past
``influxdb.max_batch_delay_s``) says so in ``batch_log`` (``influx_failed``). This command rebuilds
those batches' points with the stream's own writer (:class:`jobs.stream.influx_writer.InfluxPointsWriter`,
the same encoders, each task's records under its task slot) and
writes them again. The points are the very ones the stream would have written (same series, same
times), so points that did land are overwritten, never doubled, and running the command twice
changes nothing. Each batch sent is recorded in ``influx_backfills``; a batch stays pending until a
run sent all its points. The ``model_drift`` points of the hours those batches' records fall in are
sent again too, from the ``drift`` table (:func:`resend_drift`).

Which batches: by default every pending one (``batch_log.influx_failed > 0``, no successful
backfill yet); ``--batches 12-40`` or ``--from T1 --to T2`` (the batches holding records of that
event-time range, sent whole) send others again on purpose.

Each record keeps the task slot of its aggregates (``flows_scored.task_slot``), so compaction (the
stream's own, or ``iomt-ad maintain``) changes nothing here. Records written before that column
existed take the task their data file's name records; those in files OPTIMIZE rewrote go out as one
partial per batch, exact for a batch whose write failed whole (``influx_written`` 0), and the
command says so.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from jobs.config import AppConfig, ConfigError, load_config
from jobs.errors import UserError
from schemas.influx import PARTITION_SLOTS
from schemas.tables import BATCH_LOG, DRIFT, FLOWS_SCORED, INFLUX_BACKFILLS, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

COMPACTED_SLOT = PARTITION_SLOTS - 1  # the aggregates' slot of records whose data file names no task
DEFAULT_MAX_DELAY_S = 60.0


class BackfillError(UserError, ValueError):
    """Arguments that cannot be used; the message says why."""


@dataclass(frozen=True)
class BatchBackfill:
    batch_id: int
    records: int
    written: int
    failed: int
    error: str | None
    hours: tuple[datetime, ...] = ()  # the hours of event time its records fall in (their drift rows')


def _dataset(tables: "TablesLocation", name: str):
    if not tables.is_table(name):
        return None
    return tables.delta_table(name).to_pyarrow_dataset()


def pending_batches(tables: "TablesLocation", app_id: str) -> list[int]:
    """Batches of ``app_id`` that ``batch_log`` recorded with failed InfluxDB points and no backfill
    has sent whole since."""
    import pyarrow.dataset as ds

    log_rows = _dataset(tables, BATCH_LOG)
    if log_rows is None:
        raise ConfigError(f"{tables.uri(BATCH_LOG)}: no Delta table there; check stream.tables_dir (the streaming "
                          "job writes it)")
    failed = log_rows.to_table(columns=["batch_id"], filter=(ds.field("app_id") == app_id)
                               & (ds.field("influx_failed") > 0)).column("batch_id").to_pylist()
    done: set[int] = set()
    backfills = _dataset(tables, INFLUX_BACKFILLS)
    if backfills is not None:
        done = set(backfills.to_table(columns=["batch_id"], filter=(ds.field("app_id") == app_id)
                                      & (ds.field("points_failed") == 0)).column("batch_id").to_pylist())
    return sorted(set(failed) - done)


def batches_in_range(tables: "TablesLocation", start: datetime, end: datetime) -> list[int]:
    """The batches holding records whose event time is in ``[start, end)``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    flows = _dataset(tables, FLOWS_SCORED)
    if flows is None:
        return []
    kind = pa.timestamp("us", tz="UTC")
    condition = (ds.field("event_time") >= pa.scalar(start, kind)) & (ds.field("event_time") < pa.scalar(end, kind))
    ids = flows.to_table(columns=["batch_id"], filter=condition).column("batch_id")
    return sorted(pc.unique(ids).to_pylist())


def _files_holding(table, batch_ids: list[int]) -> list[str]:
    """The URIs of the table's data files that may hold rows of ``batch_ids``: by their ``batch_id``
    statistics where they have them (files OPTIMIZE wrote may not), else every file."""
    import pyarrow as pa

    from jobs.window_reader import may_hold

    files = pa.table(table.get_add_actions(flatten=True))
    uris = table.file_uris()
    if not batch_ids:
        return uris
    kept = set(map(str, files.filter(may_hold(files, "batch_id", min(batch_ids), max(batch_ids)))["path"].to_pylist()))
    depth = len(TABLES[FLOWS_SCORED].partition_by) + 1  # a file's path under the table: partition dirs, name
    return [uri for uri in uris if "/".join(uri.rsplit("/", depth)[1:]) in kept]


def batch_tasks(tables: "TablesLocation", batch_ids: list[int]) -> dict[int, dict[int, "pa.Table"]]:
    """batch id -> task slot -> the ``flows_scored`` rows that task wrote. The slot is each row's
    ``task_slot``; rows written before that column existed take the task their data file's name
    records, and rows of such files OPTIMIZE rewrote go under :data:`COMPACTED_SLOT`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from jobs.stream.delta_writer import DATA_FILE, task_partition

    spec = TABLES[FLOWS_SCORED]
    schema = pa.schema([f for f in spec.arrow_schema() if f.name not in spec.partition_by])  # older files: nulls
    table = tables.delta_table(FLOWS_SCORED)
    store, _ = tables.filesystem()
    wanted = set(batch_ids)
    pieces: list[pa.Table] = []
    for uri in _files_holding(table, batch_ids):
        path = uri.removeprefix("s3://")  # the object store's key as pyarrow's S3 filesystem takes it
        match = DATA_FILE.search(path)
        if match is not None and int(match.group("batch")) not in wanted:
            continue  # a file the stream wrote for another batch
        rows = ds.dataset(path, filesystem=store, format="parquet", schema=schema).to_table(
            filter=ds.field("batch_id").isin(batch_ids))
        if rows.num_rows:
            named = task_partition(path) if match is not None else COMPACTED_SLOT
            slots = pc.fill_null(rows["task_slot"], pa.scalar(named, pa.int32()))
            pieces.append(rows.set_column(rows.schema.get_field_index("task_slot"), "task_slot", slots))
    if not pieces:
        return {}
    rows = pa.concat_tables(pieces)
    parts: dict[int, dict[int, pa.Table]] = {}
    for batch_id in sorted(set(rows["batch_id"].to_pylist())):
        of_batch = rows.filter(pc.equal(rows["batch_id"], batch_id))
        for slot in sorted(set(of_batch["task_slot"].to_pylist())):
            if slot == COMPACTED_SLOT:
                log.warning("batch %d: some of its records (written before flows_scored.task_slot) are in data "
                            "files OPTIMIZE rewrote; their aggregates go out as one partial, exact unless "
                            "InfluxDB had some of this batch's points", batch_id)
            parts.setdefault(batch_id, {})[slot] = of_batch.filter(pc.equal(of_batch["task_slot"], slot))
    return parts


def backfill(config: AppConfig, batch_ids: list[int], reason: str,
             max_delay_s: float = DEFAULT_MAX_DELAY_S) -> list[BatchBackfill]:
    """Send the points of ``batch_ids`` again and record each batch in ``influx_backfills``."""
    from jobs.stream.influx_writer import InfluxPointsWriter, influx_token
    from jobs.stream.writers import BatchOutput

    if not config.influxdb.enabled:
        raise ConfigError("influxdb.enabled is false in this configuration: nothing to send InfluxDB")
    tables = config.stream.tables.resolved()
    influx = dataclasses.replace(config.influxdb, max_batch_delay_s=max_delay_s)
    writer = InfluxPointsWriter(influx, influx_token(influx))
    results: list[BatchBackfill] = []
    try:
        for batch_id, tasks in batch_tasks(tables, batch_ids).items():
            written = failed = records = 0
            error = None
            for task, rows in tasks.items():
                outcome = writer.write(BatchOutput(batch_id=batch_id, partition=task, tables={FLOWS_SCORED: rows}))
                written, failed, records = written + outcome.written, failed + outcome.failed, records + rows.num_rows
                error = error or outcome.error
            results.append(BatchBackfill(batch_id, records, written, failed, error, _hours(tasks.values())))
            log.info("batch %d: %d records, %d points sent again, %d failed", batch_id, records, written, failed)
    finally:
        writer.close()
    missing = sorted(set(batch_ids) - {r.batch_id for r in results})
    if missing:
        log.warning("no records in flows_scored for batches %s: nothing to send", missing)
    _record(tables, config.stream.app_id, results, reason)
    return results


def _hours(pieces: Iterable["pa.Table"]) -> tuple[datetime, ...]:
    """The hours of event time the rows of ``pieces`` (``flows_scored`` tables) fall in."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hours: set[datetime] = set()
    for rows in pieces:
        hours.update(hour for hour in pc.unique(pc.floor_temporal(rows["event_time"], unit="hour"))
                     .cast(pa.timestamp("us", tz="UTC")).to_pylist() if hour is not None)
    return tuple(sorted(hours))


def resend_drift(config: AppConfig, hours: list[datetime], max_delay_s: float = DEFAULT_MAX_DELAY_S) -> tuple[int, int]:
    """Send InfluxDB the ``model_drift`` points of the ``drift`` rows of ``hours`` again (the table
    keeps each hour's latest figures; InfluxDB overwrites a point of the same series and time, so
    nothing doubles). The stream sends them from a thread of its own and leaves the last figures of
    an hour unsent when InfluxDB was down then. (points written, points failed)"""
    import time

    import pyarrow as pa
    import pyarrow.compute as pc

    from jobs.drift.hourly import drift_lines
    from jobs.stream.influx_writer import InfluxWriter, influx_token

    tables = config.stream.tables.resolved()
    drift = _dataset(tables, DRIFT)
    if drift is None or not hours:
        return 0, 0
    schema = TABLES[DRIFT].arrow_schema()  # a merge may write string_view columns: back to the definition's types
    rows = drift.to_table().select(schema.names).cast(schema)  # small: a row per hour, group, version, measure
    wanted = pa.array(hours, pa.timestamp("us", tz="UTC"))
    rows = rows.filter(pc.is_in(rows["hour"].cast(pa.timestamp("us", tz="UTC")), value_set=wanted))
    if rows.num_rows == 0:
        return 0, 0
    writer = InfluxWriter(config.influxdb, influx_token(config.influxdb))
    try:
        result = writer.write_table(pa.table({}), drift_lines(rows), deadline=time.monotonic() + max_delay_s)
    finally:
        writer.close()
    log.info("drift: %d model_drift points of %d hours sent again, %d failed", result.written, len(hours), result.failed)
    return result.written, result.failed


def _record(tables: "TablesLocation", app_id: str, results: list[BatchBackfill], reason: str) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    if not results:
        return
    run_id, now = uuid.uuid4().hex, datetime.now(timezone.utc)
    rows = pa.Table.from_pylist([{
        "batch_id": r.batch_id, "app_id": app_id, "points_written": r.written, "points_failed": r.failed,
        "error": r.error, "reason": reason, "run_id": run_id, "backfilled_at": now} for r in results],
        schema=TABLES[INFLUX_BACKFILLS].arrow_schema())
    write_deltalake(tables.uri(INFLUX_BACKFILLS), rows, mode="append", schema_mode="merge",
                    storage_options=tables.storage_options())


def parse_batches(text: str) -> list[int]:
    """``12``, ``12-40`` or ``3,7,12-14`` as batch ids."""
    ids: set[int] = set()
    try:
        for piece in text.split(","):
            first, _, last = piece.strip().partition("-")
            low, high = int(first), int(last or first)
            if low < 0 or high < low:
                raise ValueError
            ids.update(range(low, high + 1))
    except ValueError as exc:
        raise BackfillError(f"--batches {text!r}: write batch ids as 12, 12-40 or 3,7,12-14") from exc
    return sorted(ids)


def _time(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BackfillError(f"{flag} {text!r} is not an ISO-8601 time (e.g. 2025-03-01T00:00:00Z)") from exc
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default="conf/local.yaml",
                        help="the stream's configuration: its tables, stream.app_id and influxdb (default "
                             "conf/local.yaml)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--batches", default=None, metavar="IDS",
                        help="send these batches again (12, 12-40, 3,7,12-14); default: every pending batch")
    chosen.add_argument("--from", dest="start", default=None, metavar="T1",
                        help="send the batches holding records of event time from T1 (with --to)")
    parser.add_argument("--to", dest="end", default=None, metavar="T2", help="... to T2 (exclusive)")
    parser.add_argument("--max-delay", type=float, default=DEFAULT_MAX_DELAY_S, metavar="S",
                        help=f"seconds InfluxDB may take per task of a batch (default {DEFAULT_MAX_DELAY_S:g})")
    parser.add_argument("--dry-run", action="store_true", help="list the batches, send nothing")
    parser.epilog = ("Exit status 1 when some points could not be sent (those batches stay pending: run it "
                     "again once InfluxDB is back).")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.conf)
    tables = config.stream.tables.resolved()
    if (args.start is None) != (args.end is None):
        raise BackfillError("--from and --to go together")
    if args.batches is not None:
        batch_ids, reason = parse_batches(args.batches), "batches"
    elif args.start is not None:
        start, end = _time(args.start, "--from"), _time(args.end, "--to")
        if start >= end:
            raise BackfillError(f"--from {args.start} must be before --to {args.end}")
        batch_ids, reason = batches_in_range(tables, start, end), "range"
    else:
        batch_ids, reason = pending_batches(tables, config.stream.app_id), "pending"
    if args.dry_run or not batch_ids:
        sys.stdout.write(f"{len(batch_ids)} batches to send ({reason}): {batch_ids}\n")
        return 0
    results = backfill(config, batch_ids, reason, args.max_delay)
    hours = sorted({hour for result in results for hour in result.hours})  # their drift rows' hours
    drift_written, drift_failed = resend_drift(config, hours, args.max_delay)
    failed = sum(r.failed for r in results)
    sys.stdout.write(f"{len(results)} batches, {sum(r.records for r in results)} records: "
                     f"{sum(r.written for r in results)} points sent, {failed} failed; "
                     f"drift of their hours: {drift_written} points sent, {drift_failed} failed\n")
    return 1 if failed or drift_failed else 0
