"""Delivers the ``outbox`` to the outputs, at least once, apart from the stream.

One thread per output reads the outbox (again only when the table has a new version), takes the
updates that output has not yet recorded in ``deliveries``, oldest batch first, and sends them in
order. A failed send stops that output's pass: it waits (``alerts.notify.retry_initial``, doubled on
each failure in a row up to ``retry_max``) and tries the same update again, so a receiver that is
down loses nothing and gets the updates in order when it returns. A delivery is recorded after the
receiver took it: one recorded late (a crash in between) is sent again, with the same update id.
A slow or dead receiver holds only its own thread: the stream only appends to the outbox.

What a long-running notifier holds stays bounded: the stream appends the outbox once per batch, in
batch order, so once every output has delivered (or suppressed) every update of the batches up to
some batch, those batches are forgotten (:meth:`OutboxStore.forget_through`): they are never read
again (a read filters on ``batch_id``; the table's statistics skip their files) and their update ids
leave the outputs' delivered sets. On disk, the forgotten batches whose last delivery was recorded
more than ``alerts.notify.keep_delivered`` ago (default 7 days) are deleted from ``outbox`` and ``deliveries``
(:meth:`OutboxStore.prune`, at most once every ``PRUNE_EVERY``), so a notifier started afresh reads
tables that hold only recent and pending updates.

``notify_filter`` says per update why it must not be sent, or None (:func:`notifier_for` uses the
analysts' mutes and maintenance windows, :class:`jobs.outputs.mutes.MuteFilter`); an update it turns
down is recorded as ``suppressed`` with that reason and not sent.
Run one notifier per tables directory: two would each deliver every update.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from jobs.outputs.base import Output
from schemas.tables import DELIVERIES, OUTBOX, TABLES

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

DELIVERED: Final[str] = "delivered"
SUPPRESSED: Final[str] = "suppressed"
DEFAULT_KEEP_DELIVERED: Final[timedelta] = timedelta(days=7)
PRUNE_EVERY: Final[float] = 3600.0  # seconds between deletions of delivered updates from the tables
NotifyFilter = Callable[[dict[str, Any]], "str | None"]  # why the update must not be sent, or None


def notify_all(update: dict[str, Any]) -> str | None:
    return None


class OutboxStore:
    """The ``outbox`` (read) and ``deliveries`` (appended) tables, shared by the output threads."""

    def __init__(self, tables: "TablesLocation", keep_delivered: timedelta = DEFAULT_KEEP_DELIVERED) -> None:
        self.tables = tables.resolved()
        self.options = self.tables.storage_options()
        self.keep_delivered = keep_delivered
        self._lock = threading.Lock()
        self._outbox = None
        self._version: int | None = None
        self._rows: list[dict[str, Any]] = []
        self.floor = -1  # every output has done every update of the batches up to this one
        # (batch id, its last delivery's time) of the batches forgotten but still in the tables, in batch order
        self._on_disk: deque[tuple[int, datetime]] = deque()
        self._done_at: dict[str, datetime] = {}  # update id -> when its last output recorded it

    def updates(self) -> list[dict[str, Any]]:
        """Every queued update, oldest batch first (read again only when the table changed)."""
        from deltalake import DeltaTable

        with self._lock:
            if self._outbox is None:
                if not DeltaTable.is_deltatable(self.tables.uri(OUTBOX), storage_options=self.options):
                    return []
                self._outbox = DeltaTable(self.tables.uri(OUTBOX), storage_options=self.options)
            else:
                self._outbox.update_incremental()
            if self._outbox.version() != self._version:
                import pyarrow.dataset as ds

                spec = TABLES[OUTBOX]
                table = self._outbox.to_pyarrow_dataset().to_table(filter=ds.field("batch_id") > self.floor)
                rows = table.select(list(spec.column_names)).cast(spec.arrow_schema()).to_pylist()
                self._rows = sorted(rows, key=lambda r: (r["batch_id"], r["queued_at"], r["update_id"]))
                self._version = self._outbox.version()
            return self._rows

    def forget_through(self, batch_id: int) -> None:
        """Every output has done every update of the batches up to ``batch_id``: drop them."""
        with self._lock:
            if batch_id > self.floor:
                self.floor = batch_id
                done_at: dict[int, datetime] = {}
                for row in self._rows:
                    if row["batch_id"] <= batch_id:
                        at = self._done_at.pop(row["update_id"], None) or row["queued_at"]
                        done_at[row["batch_id"]] = max(done_at.get(row["batch_id"], at), at)
                self._on_disk.extend(sorted(done_at.items()))
                self._rows = [row for row in self._rows if row["batch_id"] > batch_id]

    def prune(self, now: datetime) -> int | None:
        """Delete from ``outbox`` and ``deliveries`` the forgotten batches (every output has done
        them) whose last delivery was recorded more than ``keep_delivered`` before ``now``, in batch
        order (a batch done later holds back the ones after it); the last batch deleted, or None.
        The outbox goes first: a crash in between leaves deliveries of updates no longer queued,
        never an update whose deliveries are gone (that would be sent again)."""
        from deltalake import DeltaTable

        cutoff = now - self.keep_delivered
        with self._lock:
            through = None
            for batch_id, done_at in self._on_disk:
                if done_at >= cutoff:
                    break
                through = batch_id
            if through is None or self._outbox is None:
                return None
            predicate = f"batch_id <= {int(through)}"
            outbox = self._outbox.delete(predicate)
            deliveries = {}
            if DeltaTable.is_deltatable(self.tables.uri(DELIVERIES), storage_options=self.options):
                table = DeltaTable(self.tables.uri(DELIVERIES), storage_options=self.options)
                if "batch_id" in table.schema().to_arrow().names:  # tables of older notifiers lack it
                    deliveries = table.delete(predicate)
            while self._on_disk and self._on_disk[0][0] <= through:
                self._on_disk.popleft()
        log.info("notifier: delivered updates of batches up to %d pruned from %s (%s rows) and %s (%s rows)",
                 through, OUTBOX, outbox.get("num_deleted_rows"), DELIVERIES, deliveries.get("num_deleted_rows", 0))
        return through

    def recorded(self, output: str) -> set[str]:
        """The update ids ``output`` delivered or suppressed (and, for every output, when each
        update was last recorded: how long a forgotten batch is kept on disk counts from then)."""
        from deltalake import DeltaTable

        path = self.tables.uri(DELIVERIES)
        with self._lock:
            if not DeltaTable.is_deltatable(path, storage_options=self.options):
                return set()
            rows = DeltaTable(path, storage_options=self.options).to_pyarrow_dataset().to_table(
                columns=["update_id", "output", "recorded_at"]).to_pylist()
            self._note_done(rows)
        return {r["update_id"] for r in rows if r["output"] == output}

    def _note_done(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            at = row["recorded_at"]
            if at is not None and (row["update_id"] not in self._done_at or at > self._done_at[row["update_id"]]):
                self._done_at[row["update_id"]] = at

    def record(self, rows: list[dict[str, Any]]) -> None:
        from deltalake import write_deltalake

        if not rows:
            return
        spec = TABLES[DELIVERIES]
        table = pa.Table.from_pylist([{name: row.get(name) for name in spec.column_names} for row in rows],
                                     schema=spec.arrow_schema())
        with self._lock:  # one writer at a time: the output threads share the table
            write_deltalake(self.tables.uri(DELIVERIES), table, mode="append", schema_mode="merge",
                            storage_options=self.options)
            self._note_done(rows)


class Notifier:
    """Background delivery of the outbox to ``outputs`` (:func:`jobs.outputs.base.build_outputs`)."""

    def __init__(self, store: OutboxStore, outputs: Sequence[Output], poll_interval: timedelta,
                 retry_initial: timedelta, retry_max: timedelta, notify_filter: NotifyFilter = notify_all) -> None:
        self.store = store
        self.outputs = list(outputs)
        self.poll_interval = poll_interval.total_seconds()
        self.retry_initial = retry_initial.total_seconds()
        self.retry_max = retry_max.total_seconds()
        self.notify_filter = notify_filter
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._done: dict[str, set[str]] = {}
        self._done_through: dict[str, int] = {}  # per output: every update up to this batch is done
        self._done_lock = threading.Lock()  # the output threads share the delivered sets' pruning
        self._next_prune = 0.0  # time.monotonic() from which the tables may be pruned again
        self.failures: dict[str, int] = {output.name: 0 for output in self.outputs}  # failed sends so far

    def start(self) -> "Notifier":
        for output in self.outputs:
            thread = threading.Thread(target=self._run, args=(output,), name=f"iomt-notify-{output.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("notifier started: %s", ", ".join(o.name for o in self.outputs) or "no outputs")
        return self

    def stop(self, timeout_s: float = 30) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        for output in self.outputs:
            output.close()

    def wait(self) -> None:
        """Until :meth:`stop` (from another thread) or an interrupt."""
        self._stop.wait()

    def _run(self, output: Output) -> None:
        backoff = self.retry_initial
        while not self._stop.is_set():
            try:
                ok = self.deliver_pending(output)
            except Exception:  # a table read or write (object store down...): log, wait, go on
                log.exception("notifier %s: pass failed", output.name)
                ok = False
            if ok:
                backoff = self.retry_initial
                self._stop.wait(self.poll_interval)
            else:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.retry_max)

    def pending(self, output: Output) -> list[dict[str, Any]]:
        if output.name not in self._done:
            recorded = self.store.recorded(output.name)
            with self._done_lock:
                self._done.setdefault(output.name, recorded)
        with self._done_lock:
            done = set(self._done[output.name])
        return [u for u in self.store.updates() if u["update_id"] not in done]

    def _forget_done(self, output: Output) -> None:
        """Record how far ``output`` has done everything; when every output has passed a batch, the
        store forgets it and the delivered sets lose its update ids."""
        updates = self.store.updates()
        with self._done_lock:
            done = self._done.get(output.name, set())
            waiting = [u["batch_id"] for u in updates if u["update_id"] not in done]
            self._done_through[output.name] = (min(waiting) - 1 if waiting else
                                               max((u["batch_id"] for u in updates), default=self.store.floor))
            if len(self._done_through) < len(self.outputs):
                return
            floor = min(self._done_through.values())
            if floor <= self.store.floor:
                return
            forgotten = {u["update_id"] for u in updates if u["batch_id"] <= floor}
            self.store.forget_through(floor)
            for ids in self._done.values():
                ids.difference_update(forgotten)
        self._prune_tables()

    def _prune_tables(self) -> None:
        """At most once every ``PRUNE_EVERY``: the tables lose what every output did long enough ago."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY
        try:
            self.store.prune(datetime.now(timezone.utc))
        except Exception:  # a conflict with the stream's compaction, an object store hiccup: next time
            log.warning("notifier: pruning delivered updates failed (tried again in %.0f s)", PRUNE_EVERY,
                        exc_info=True)

    def deliver_pending(self, output: Output) -> bool:
        """One pass: send ``output``'s pending updates in order; False when a send failed (the rest wait)."""
        from jobs.outputs.base import OutputError

        records: list[dict[str, Any]] = []
        ok = True
        try:
            for update in self.pending(output):
                if self._stop.is_set():
                    break
                status, reason = DELIVERED, self.notify_filter(update)
                if reason is not None:
                    status = SUPPRESSED
                    log.info("notifier %s: update %s not sent: %s", output.name, update["update_id"], reason)
                else:
                    try:
                        output.send(update)
                    except OutputError as exc:
                        self.failures[output.name] += 1
                        log.warning("notifier %s: %s (update %s; retried later)", output.name, exc, update["update_id"])
                        ok = False
                        break
                records.append({"update_id": update["update_id"], "incident_id": update["incident_id"],
                                "batch_id": update["batch_id"], "output": output.name, "status": status, "reason": reason, "attempts": 1,
                                "recorded_at": datetime.now(timezone.utc)})
        finally:
            if records:
                self.store.record(records)
                with self._done_lock:
                    self._done[output.name].update(r["update_id"] for r in records)
                log.info("notifier %s: %d updates delivered or suppressed", output.name, len(records))
        self._forget_done(output)
        return ok

    def drain(self, timeout_s: float) -> bool:
        """Deliver everything pending now, in this thread, retrying with backoff until ``timeout_s``
        (``iomt-ad notify --once``); True when nothing is left."""
        deadline = time.monotonic() + timeout_s
        left = list(self.outputs)
        backoff = self.retry_initial
        while left and time.monotonic() < deadline:
            left = [o for o in left if not self.deliver_pending(o) or self.pending(o)]
            if left:
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self.retry_max)
        return not left


def notifier_for(config, notify_filter: NotifyFilter | None = None) -> Notifier | None:
    """The notifier ``config`` (:class:`jobs.config.AppConfig`) asks for, not started; None without
    outputs. Updates of muted incidents are suppressed unless another ``notify_filter`` is given."""
    from jobs.config import duration
    from jobs.outputs.base import build_outputs
    from jobs.outputs.mutes import MuteFilter

    outputs = build_outputs(config)
    if not outputs:
        return None
    notify = config.alerts.notify
    return Notifier(OutboxStore(config.stream.tables, duration(notify.keep_delivered, "alerts.notify.keep_delivered")),
                    outputs,
                    poll_interval=duration(notify.poll_interval, "alerts.notify.poll_interval"),
                    retry_initial=duration(notify.retry_initial, "alerts.notify.retry_initial"),
                    retry_max=duration(notify.retry_max, "alerts.notify.retry_max"),
                    notify_filter=notify_filter or MuteFilter(config.stream.tables))
