"""On the driver: a micro-batch's drift counts (each task's, :mod:`jobs.drift.counts`) added to the
hour's, the PSI of every measure against the champion's reference, written to the ``drift`` Delta
table (one row per hour, device group, model version and measure, merged under the batch's
transaction: a replayed batch adds nothing twice) and to InfluxDB's ``model_drift`` (a point per
row at the start of its hour, overwritten as the hour fills; sent from a thread of its own, so a slow
InfluxDB never holds a batch longer than its own points do).

An hour and group has *drifted* when it holds at least ``drift.min_records`` records and a measure's
PSI reaches ``drift.threshold``; the first batch that makes it so logs a WARNING naming the score's
PSI and the features furthest from the reference. Grafana's drift rule alerts on the same figures
(:mod:`jobs.grafana.alerts`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.drift.counts import COUNTS_SCHEMA, measure_column
from models.drift import SCORE_MEASURE
from schemas.tables import DRIFT, TABLES, TIMESTAMP

if TYPE_CHECKING:
    from jobs.config import AppConfig
    from jobs.stream.delta_writer import DeltaAppender
    from jobs.stream.model_roles import BatchModel
    from models.drift import DriftReference

log = logging.getLogger(__name__)

READ_COLUMNS = ["drift_id", "bin_counts", "drifted"]


def drift_id(hour: datetime, device_group: str, model_version: str, measure: str) -> str:
    """The key of a ``drift`` row."""
    return f"{hour.astimezone(timezone.utc):%Y-%m-%dT%H}Z|{device_group}|{model_version}|{measure}"


def _group_of(key: str) -> str:
    """The hour, device group and model version of a ``drift_id`` (its measure cut off)."""
    return key.rsplit("|", 1)[0]


def combine_counts(payloads: Sequence[pa.Table]) -> pa.Table:
    """The tasks' counts of a batch as one count per (hour, device group, version, measure, bin)."""
    if not payloads:
        return COUNTS_SCHEMA.empty_table()
    keys = ["hour", "device_group", "model_version", "measure", "bin"]
    summed = pa.concat_tables(payloads).group_by(keys, use_threads=False).aggregate([("count", "sum")])
    return summed.rename_columns([*keys, "count"]).select(COUNTS_SCHEMA.names).cast(COUNTS_SCHEMA)


def drift_rows(counts: pa.Table, reference: "DriftReference", previous: dict[str, list[int]],
               threshold: float, min_records: int, batch_id: int, updated_at: datetime) -> pa.Table:
    """The ``drift`` rows of every (hour, group, version, measure) in ``counts``: ``previous`` (the
    bin counts the table holds, by ``drift_id``) plus the batch's, and their PSI."""
    from jobs.stream.table_rows import conform

    distributions = {measure_column(name): d for name, d in reference.measures.items()}
    totals: dict[tuple, np.ndarray] = {}
    for row in counts.to_pylist():
        distribution = distributions.get(row["measure"])
        if distribution is None or not 0 <= row["bin"] < distribution.bins:
            continue  # counted with another reference than the driver's: left out rather than misread
        key = (row["hour"], row["device_group"], row["model_version"], row["measure"])
        totals.setdefault(key, np.zeros(distribution.bins, dtype=np.int64))[row["bin"]] += row["count"]
    out: dict[str, list] = {name: [] for name in TABLES[DRIFT].column_names}
    for (hour, group, version, measure), added in sorted(totals.items()):
        key = drift_id(hour, group, version, measure)
        before = previous.get(key)
        if before is not None and len(before) == len(added):
            added = added + np.asarray(before, dtype=np.int64)
        records = int(added.sum())
        value = distributions[measure].psi(added)
        for name, item in (("drift_id", key), ("hour", hour), ("device_group", group), ("model_version", version),
                           ("measure", measure), ("records", records), ("bin_counts", added.tolist()),
                           ("psi", value), ("threshold", float(threshold)), ("min_records", int(min_records)),
                           ("drifted", bool(records >= min_records and value >= threshold)),
                           ("batch_id", batch_id), ("updated_at", updated_at)):
            out[name].append(item)
    rows = pa.table({name: out[name] for name in out}) if out["drift_id"] else None
    return conform(rows, DRIFT) if rows is not None else _empty()


def _empty() -> pa.Table:
    from jobs.stream.table_rows import empty

    return empty(DRIFT)


class DriftRecorder:
    """The stream driver's drift bookkeeping: one per query (holds references, not records)."""

    def __init__(self, config: "AppConfig", delta: "DeltaAppender") -> None:
        self.config = config
        self.delta = delta
        self._references: dict[tuple[str, str | None], "DriftReference | None"] = {}
        self._pending: pa.Table | None = None  # rows committed by the last batch, for InfluxDB
        self._queued: pa.Table | None = None   # rows waiting for the sender thread
        self._sending = None                   # the sender's future while it runs
        self._pool = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.config.drift.enabled

    def reference(self, model: "BatchModel") -> "DriftReference | None":
        """The champion's drift reference, read once per bundle and manifest (None: drift off for it)."""
        from models.bundle import read_manifest
        from models.drift import drift_reference_of
        from udfs.model_cache import driver_bundle_dir

        key = (model.bundle_dir, model.manifest_sha256)
        if key not in self._references:
            reference = drift_reference_of(read_manifest(driver_bundle_dir(model.bundle_dir)))
            if reference is None:
                log.warning("drift is off while bundle %s scores: its manifest has no drift reference (`iomt-ad "
                            "reference --model DIR --data TRAINING_FILES` adds one)", model.version or model.bundle_dir)
            self._references[key] = reference
        return self._references[key]

    def commit(self, payloads: Sequence[pa.Table], batch_id: int, champion: "BatchModel") -> pa.Table:
        """Add a batch's counts to the ``drift`` table (once per batch); returns the rows now holding
        the batch's hours (also when the table already held the batch: a replay), kept for
        :meth:`send_points`."""
        self._pending = None
        reference = self.reference(champion)
        if reference is None:
            return _empty()
        counts = combine_counts(payloads)
        if self.delta.committed(DRIFT, batch_id):
            log.info("%s already holds batch %d: its drift figures are not added again", DRIFT, batch_id)
            rows = self._current(counts)
        else:
            settings = self.config.drift
            previous = self._previous(counts)
            rows = drift_rows(counts, reference, {k: v for k, (v, _) in previous.items()}, settings.threshold,
                              settings.min_records, batch_id, datetime.now(timezone.utc))
            self.delta.upsert(DRIFT, rows, batch_id, key="drift_id")
            self._warn_new_drift(rows, {_group_of(k) for k, (_, drifted) in previous.items() if drifted})
        self._pending = rows
        return rows

    def _read(self, counts: pa.Table, columns: list[str]) -> pa.Table | None:
        """``columns`` of the table's rows of the hours in ``counts`` (None: no table, no counts)."""
        from jobs.window_reader import read_window

        if counts.num_rows == 0:
            return None
        first = pc.min(counts["hour"]).as_py()
        rows = read_window(self.delta.tables, DRIFT, columns, since=first, time_column="hour")
        return rows

    def _previous(self, counts: pa.Table) -> dict[str, tuple[list[int], bool]]:
        """drift_id -> (its bin counts, whether it had drifted) for the rows of the batch's hours."""
        rows = self._read(counts, READ_COLUMNS)
        if rows is None:
            return {}
        return {r["drift_id"]: (r["bin_counts"] or [], bool(r["drifted"])) for r in rows.to_pylist()}

    def _current(self, counts: pa.Table) -> pa.Table:
        """The table's rows of the keys in ``counts`` as they are (a replayed batch's)."""
        rows = self._read(counts, list(TABLES[DRIFT].column_names))
        if rows is None or rows.num_rows == 0:
            return _empty()
        keys = {drift_id(r["hour"], r["device_group"], r["model_version"], r["measure"])
                for r in counts.select(["hour", "device_group", "model_version", "measure"]).to_pylist()}
        return rows.filter(pc.is_in(rows["drift_id"], pa.array(sorted(keys), pa.string())))

    def _warn_new_drift(self, rows: pa.Table, drifted_before: set[str]) -> None:
        """A WARNING for each hour and group (and model version) that drifted with this batch: once,
        however many of its measures pass the threshold later."""
        newly: dict[tuple, list[dict]] = {}
        for row in rows.filter(pc.fill_null(rows["drifted"], False)).to_pylist():
            if _group_of(row["drift_id"]) not in drifted_before:
                newly.setdefault((row["hour"], row["device_group"], row["model_version"]), []).append(row)
        for (hour, group, version), measures in sorted(newly.items()):
            score = next((m for m in measures if m["measure"] == SCORE_MEASURE), None)
            features = sorted((m for m in measures if m["measure"] != SCORE_MEASURE), key=lambda m: -m["psi"])
            named = ", ".join(f"{m['measure']} {m['psi']:.2f}" for m in features[:3])
            log.warning("drift: hour %s, devices %s, model %s (%d records): %s%s%s", f"{hour:%Y-%m-%d %H}:00Z", group,
                        version, measures[0]["records"],
                        f"ensemble_score PSI {score['psi']:.2f}" if score else "the score has not drifted",
                        f"; features at or above PSI {self.config.drift.threshold:g}: {len(features)}"
                        if features else "",
                        f" ({named})" if named else "")

    def send_points(self, token: str | None) -> None:
        """Hand the last committed rows to InfluxDB (``model_drift``) from a thread of their own: the
        batch never waits on InfluxDB for them (its own points already had ``max_batch_delay_s``).
        Rows queued while a send is in flight are merged, the newest figures of each row kept; a
        failed send is logged (the table has the figures, and the hour's next batch sends them again)."""
        rows, self._pending = self._pending, None
        if token is None or rows is None or rows.num_rows == 0:
            return
        with self._lock:
            self._queued = rows if self._queued is None else newest_rows(self._queued, rows)
            if self._sending is None:
                self._sending = self._sender().submit(self._send_queued, token)

    def _sender(self):
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iomt-drift-influx")
        return self._pool

    def _send_queued(self, token: str) -> None:
        from jobs.stream.influx_writer import InfluxWriter

        while True:
            with self._lock:
                rows, self._queued = self._queued, None
                if rows is None:
                    self._sending = None
                    return
            try:
                writer = InfluxWriter(self.config.influxdb, token)
                try:
                    result = writer.write_table(pa.table({}), drift_lines(rows),
                                                deadline=time.monotonic() + self.config.influxdb.max_batch_delay_s)
                finally:
                    writer.close()
            except Exception:  # noqa: BLE001 - never let the sender die: the hour's next batch sends again
                log.exception("InfluxDB: the drift points were not written; the drift table has them")
                continue
            if result.failed:
                log.error("InfluxDB: %d drift points were not written (%s); the drift table has them", result.failed,
                          result.error)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the queued drift points were sent (or failed); False when still sending."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._sending is None:
                    return True
            time.sleep(0.05)
        return False


def newest_rows(older: pa.Table, newer: pa.Table) -> pa.Table:
    """``older`` and ``newer`` (``drift`` rows) with one row per ``drift_id``: the newer one's."""
    both = pa.concat_tables([older, newer])
    last = {key: index for index, key in enumerate(both["drift_id"].to_pylist())}
    return both.take(sorted(last.values()))


def drift_lines(rows: pa.Table) -> pa.Array:
    """``model_drift`` points (line protocol) of ``drift`` rows: one per row, at the start of its hour."""
    from jobs.stream.influx_points import encode_points
    from schemas import influx as schema

    hours = pc.cast(pc.cast(rows["hour"], TIMESTAMP), pa.int64()).combine_chunks()
    psi = pc.cast(rows["psi"], pa.float64()).combine_chunks()
    finite = pc.is_finite(psi)
    return encode_points(
        schema.DRIFT_MEASUREMENT,
        {"device_group": pa.array([schema.group_tag(g) for g in rows["device_group"].to_pylist()], pa.string()),
         "model_version": pa.array([v or schema.UNKNOWN for v in rows["model_version"].to_pylist()], pa.string()),
         "measure": rows["measure"].combine_chunks()},
        {"psi": pc.if_else(finite, psi, pa.scalar(None, pa.float64())),
         "records": pc.cast(rows["records"], pa.float64()).combine_chunks(),
         "drifted": pc.cast(pc.cast(pc.fill_null(rows["drifted"], False), pa.int8()), pa.float64()).combine_chunks()},
        pc.multiply(hours, 1000))
