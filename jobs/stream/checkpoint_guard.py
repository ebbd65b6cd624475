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
query id, ``offsets/<batch id>`` one file per planned batch, ``commits/<batch id>`` one per batch
done, ``state/`` the stateful operators' state).

The query's plan must also be the one the checkpoint was written with (:func:`check_plan`): the
device context (``stream.sequence``) adds a stateful operator, and a checkpoint whose batches ran
without it has no state to continue (with it: state that the plan without it would leave behind,
stale, for a later switch back), so turning it on or off refuses to start on an existing checkpoint.
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
    last_committed: int | None = None  # the highest batch id in commits/, None when none is done
    has_state: bool = False     # state/ holds a stateful operator's state (the device context's)


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
    planned, committed = (_batch_ids(store, f"{root}/{log}") for log in ("offsets", "commits"))
    state = store.get_file_info(fs.FileSelector(f"{root}/state", allow_not_found=True))
    return CheckpointState(path=location.root, query_id=query_id, last_planned=max(planned) if planned else None,
                           last_committed=max(committed) if committed else None, has_state=bool(state))


def _batch_ids(store, directory: str) -> list[int]:
    """The batch ids of a checkpoint log (``offsets``, ``commits``): its files named by a number."""
    from pyarrow import fs

    entries = store.get_file_info(fs.FileSelector(directory, allow_not_found=True))
    return [int(entry.base_name) for entry in entries if entry.base_name.isdigit()]


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


def check_plan(checkpoint: CheckpointState, context_windows: int, app_id: str) -> None:
    """Raise :class:`CheckpointMismatchError` when the checkpoint was written by the other plan: with
    the device context (``stream.sequence.context_windows`` > 0: its state under ``state/``) and now
    without, or batches done without it and now with it. A new checkpoint may start either way."""
    if context_windows > 0 and checkpoint.last_committed is not None and not checkpoint.has_state:
        problem = (f"stream.sequence.context_windows is {context_windows}, but the checkpoint {checkpoint.path} "
                   f"holds batches up to {checkpoint.last_committed} done without the device context (no state): "
                   "Spark cannot add the context's stateful operator to a query that ran without it")
        back = "set stream.sequence.context_windows: 0 again"
    elif context_windows == 0 and checkpoint.has_state:
        problem = (f"stream.sequence.context_windows is 0 (off), but the checkpoint {checkpoint.path} was written "
                   "with the device context (its devices' windows are kept under state/): without it that state "
                   "would be left behind, stale for a later switch back")
        back = "set stream.sequence.context_windows back to the value it ran with"
    else:
        return
    raise CheckpointMismatchError(
        f"refusing to start: {problem}. Either {back}, or start a new run with the new setting: a new "
        f"stream.checkpoint_dir and a new stream.app_id (for example '{app_id}-2': the tables' batches are "
        "numbered per app id), choosing where the source starts (stream.kafka.starting_offsets; a files source "
        "reads every file again), knowing that records already in the tables may be written again.")
