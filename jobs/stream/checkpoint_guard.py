"""The checkpoint and the tables must belong together, or the job does not start.

Exactly-once output rests on two records of progress: the query's checkpoint (which source offsets
each micro-batch covers) and the Delta transaction each table carries, ``(app id, batch id)``. A batch
whose id the tables already hold is skipped. If the checkpoint is lost, or replaced by an older
backup, batch ids restart below what the tables hold, and the new batches, holding other records,
would be skipped as "already written": records lost without a word. So before the query starts, the
checkpoint is compared with what ``batch_log`` recorded last:

- tables that hold no batch of this app: a new run, nothing to compare;
- a checkpoint that is missing or empty, that another query wrote (its query id differs from the
  one recorded with the last batch), or whose last planned batch is below the tables' last batch:
  refuse to start, saying what to do;
- otherwise the checkpoint continues where the tables stand (a batch written but not yet marked
  done in the checkpoint is planned again with the same offsets, and skipped).

The checkpoint's own files are read directly (Spark's long-standing layout: ``metadata`` holds the
query id, ``offsets/<batch id>`` one file per planned batch).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import UserError
from jobs.storage import TablesLocation

log = logging.getLogger(__name__)


class CheckpointMismatchError(UserError, RuntimeError):
    """The checkpoint does not belong to the tables; the message says what to do."""


@dataclass(frozen=True)
class CheckpointState:
    """What a checkpoint directory says about the query's progress."""

    path: str
    query_id: str | None        # None: no checkpoint (missing or empty directory)
    last_planned: int | None    # the highest batch id in offsets/, None when none was planned


@dataclass(frozen=True)
class TablesState:
    """What ``batch_log`` recorded for one app id."""

    app_id: str
    last_batch: int | None      # None: the tables hold no batch of this app
    query_id: str | None        # the query that wrote the last batch (None when not recorded)


def read_checkpoint(checkpoint: TablesLocation | Path | str) -> CheckpointState:
    """What the checkpoint at ``checkpoint`` (a local path, or a location on an object store) says."""
    from pyarrow import fs

    location = checkpoint if isinstance(checkpoint, TablesLocation) else TablesLocation.of(checkpoint)
    store, root = location.filesystem()
    query_id = None
    metadata = f"{root}/metadata"
    if store.get_file_info(metadata).type == fs.FileType.File:
        try:
            with store.open_input_stream(metadata) as stream:
                query_id = json.loads(stream.read().decode("utf-8").splitlines()[0])["id"]
        except (IndexError, KeyError, ValueError) as exc:
            raise CheckpointMismatchError(
                f"the checkpoint's metadata file {location.uri('metadata')} cannot be read ({exc}): restore the "
                "checkpoint from a backup, or see `iomt-ad stream --help` for starting a new run") from exc
    entries = store.get_file_info(fs.FileSelector(f"{root}/offsets", allow_not_found=True))
    planned = [int(entry.base_name) for entry in entries if entry.base_name.isdigit()]
    return CheckpointState(path=location.root, query_id=query_id, last_planned=max(planned) if planned else None)


def query_id_of(checkpoint: TablesLocation | Path | str) -> str | None:
    """The id of the query a checkpoint belongs to (None before the query first started)."""
    return read_checkpoint(checkpoint).query_id


def check_resume(checkpoint: CheckpointState, tables: TablesState, tables_dir: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``checkpoint`` continues ``tables``."""
    if tables.last_batch is None:
        return
    held = f"the Delta tables under {tables_dir} hold batches up to {tables.last_batch} of app '{tables.app_id}'"
    remedy = (f"Restore the checkpoint that belongs to these tables to {checkpoint.path}; or, to start a new run "
              f"on purpose, give the job a new stream.app_id (for example '{tables.app_id}-2') and choose where "
              "the source starts (stream.kafka.starting_offsets; a files source reads every file again), "
              "knowing that records already in the tables may be written again.")
    if checkpoint.query_id is None:
        problem = f"{held}, but the checkpoint {checkpoint.path} is missing or empty (lost or moved?)"
    elif tables.query_id is not None and checkpoint.query_id != tables.query_id:
        problem = (f"{held}, written by query {tables.query_id}, but the checkpoint {checkpoint.path} belongs to "
                   f"query {checkpoint.query_id}")
    elif checkpoint.last_planned is None or checkpoint.last_planned < tables.last_batch:
        planned = "no batch" if checkpoint.last_planned is None else f"batch {checkpoint.last_planned}"
        problem = (f"{held}, but the checkpoint {checkpoint.path} ends at {planned} (restored from an older "
                   "backup?)")
    else:
        log.info("checkpoint %s (query %s, last planned batch %s) continues the tables (last batch %d)",
                 checkpoint.path, checkpoint.query_id, checkpoint.last_planned, tables.last_batch)
        return
    raise CheckpointMismatchError(
        f"refusing to start: {problem}. Starting now would number new batches from there: those the tables "
        f"already hold would be skipped as written, and the records they now carry lost. {remedy}")
