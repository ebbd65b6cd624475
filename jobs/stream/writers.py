"""The interface every destination of a micro-batch implements, so a writer can be replaced, added
(alert outputs) and tested alone. On the executors, each task builds its partition's table rows once
(:mod:`jobs.stream.executor`) and hands the same :class:`BatchOutput` to every writer.

A writer must be idempotent per batch id: a batch replayed after a crash is handed over again. A
*required* writer (the Delta data files) raises on failure, and the batch fails and is retried from
the checkpoint; any other writer (InfluxDB, later alert outputs) must never raise: it reports what it
could not write in its :class:`WriteOutcome`, which ``batch_log`` records. Data files a writer
leaves for the driver to commit are described in ``WriteOutcome.files``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class BatchOutput:
    """One micro-batch's rows per table (``flows_scored``, ``alerts``, ``quarantine``,
    ``traffic_1m``), each conformed to its definition in :mod:`schemas.tables`: on the executors, the
    rows of one task, whose ``partition`` tells its output from the other tasks' (InfluxDB's
    aggregates) the same way when the batch is replayed."""

    batch_id: int
    tables: Mapping[str, "pa.Table"]
    partition: int = 0


@dataclass(frozen=True)
class WriteOutcome:
    written: int = 0
    failed: int = 0
    error: str | None = None
    files: tuple[dict, ...] = ()   # data files written for the driver to commit: table, path, size...


class BatchWriter(Protocol):
    name: str
    required: bool

    def write(self, batch: BatchOutput) -> WriteOutcome:
        """Write the batch (idempotently); a writer that is not ``required`` never raises."""
        ...

    def close(self) -> None:
        ...
