"""Write scored records to InfluxDB 2.x as deterministic points (``schemas.influx``; the lines are
built by :mod:`jobs.stream.influx_points`).

Points are written in batches with retries and exponential backoff, all within one deadline per
task (``influxdb.max_batch_delay_s``): each request's time-out and each backoff is cut to the time
left, and what is not sent by then is counted failed. When InfluxDB stays down (or is slow, or a
host accepts connections and never answers) the write gives up for this micro-batch and reports how
many points failed: Delta already holds the records, the stream goes on, and ``batch_log`` says
which batches ``iomt-ad influx-backfill`` must send again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.config import ConfigError, InfluxConfig, read_secret
from jobs.stream.influx_points import encode_table, request_body

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.stream.writers import BatchOutput, WriteOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Part:
    """The points of one request: how many, and their lines (encoded when called)."""

    points: int
    lines: Callable[[], "pa.Array"]


@dataclass(frozen=True)
class InfluxWriteResult:
    written: int
    failed: int
    error: str | None = None


class DeadlineExceeded(TimeoutError):
    """The batch's time for InfluxDB (``influxdb.max_batch_delay_s``) ran out before a request was sent."""


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (``time.monotonic()``), or None without a deadline."""
    return None if deadline is None else deadline - time.monotonic()


def influx_token(config: InfluxConfig) -> str:
    token = read_secret(config.token_env, config.token_file, "influxdb token")
    if not token:
        raise ConfigError(
            f"influxdb is enabled but no token was found: set the environment variable "
            f"{config.token_env or '(influxdb.token_env)'} or influxdb.token_file")
    return token


def influx_tls(config: InfluxConfig) -> dict[str, str]:
    """The client's TLS arguments: the CA file of an internal CA (the system's CAs otherwise)."""
    from pathlib import Path

    from jobs.config import check_influx_tls

    check_influx_tls(config)
    if not config.ssl_ca_file:
        return {}
    path = Path(config.ssl_ca_file).expanduser()
    if not path.is_file():
        raise ConfigError(f"influxdb.ssl_ca_file: {config.ssl_ca_file} is not a file (on a cluster it must exist at "
                          "this path on every executor too)")
    return {"ssl_ca_cert": str(path.resolve())}


def _refused(exc: Exception) -> bool:
    """A 4xx answer other than 429 (too many requests): the request itself is wrong, and sending it
    again cannot help."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status != 429


class InfluxWriter:
    def __init__(self, config: InfluxConfig, token: str | None = None) -> None:
        from influxdb_client import InfluxDBClient, WriteService

        self.config = config
        self.client = InfluxDBClient(url=config.url, token=token or influx_token(config), org=config.org,
                                     timeout=config.timeout_ms, **influx_tls(config))
        self.write_service = WriteService(self.client.api_client)

    def _post(self, body: bytes, timeout_ms: int) -> None:
        """One write request with its own time-out (the client's ``write`` takes none per call)."""
        self.write_service.post_write(org=self.config.org, bucket=self.config.bucket, body=body, precision="ns",
                                      content_type="text/plain; charset=utf-8", _request_timeout=timeout_ms)

    def _write_request(self, body: bytes, deadline: float | None = None) -> None:
        """Send ``body``, retried with backoff while attempts and the time before ``deadline`` last."""
        delay = 0.5
        for attempt in range(self.config.max_retries + 1):
            left = _remaining(deadline)
            if left is not None and left <= 0.05:
                raise DeadlineExceeded(f"influxdb.max_batch_delay_s ({self.config.max_batch_delay_s:g} s) ran out")
            timeout_ms = self.config.timeout_ms if left is None else max(50, min(self.config.timeout_ms,
                                                                                int(left * 1000)))
            try:
                self._post(body, timeout_ms)
                return
            except Exception as exc:  # noqa: BLE001 - any client/network error is retried
                left = _remaining(deadline)
                if attempt >= self.config.max_retries or _refused(exc) or (left is not None and left <= delay):
                    raise
                log.warning("InfluxDB write failed (attempt %d/%d): %s; retrying in %.1f s",
                            attempt + 1, self.config.max_retries + 1, exc, delay)
                time.sleep(delay)
                delay *= 2

    def write_table(self, records: "pa.Table", aggregates: "pa.Array | None" = None,
                    deadline: float | None = None) -> InfluxWriteResult:
        """The lines ``aggregates`` (``device_traffic``, already encoded), then the ``flow_scores``
        points of ``records`` (an Arrow table with the columns of ``flows_scored``), ``batch_size``
        points a request, up to ``parallel_writes`` requests at once. Each request's records are
        encoded (:func:`encode_table`) just before it is sent, so the encoding overlaps the requests
        in flight. Nothing is sent after ``deadline`` (``time.monotonic()``): what is left is counted failed."""
        size = self.config.batch_size
        parts: list[_Part] = []
        if aggregates is not None:
            parts += [_Part(len(piece), lambda piece=piece: piece)
                      for piece in (aggregates.slice(start, size) for start in range(0, len(aggregates), size))]
        parts += [_Part(piece.num_rows, lambda piece=piece: encode_table(piece))
                  for piece in (records.slice(start, size) for start in range(0, records.num_rows, size))]
        if not parts:
            return InfluxWriteResult(written=0, failed=0)
        return self._write_parts(parts, workers=max(1, self.config.parallel_writes), deadline=deadline)

    def _write_parts(self, parts: list["_Part"], workers: int, deadline: float | None = None) -> InfluxWriteResult:
        """Write each part as one request. Once a request has failed after its retries, InfluxDB is
        taken as down for this micro-batch: the parts not yet sent are counted failed, not tried."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        down = threading.Event()
        errors: list[str] = []

        def send(part: _Part) -> tuple[int, int]:
            if down.is_set():
                return 0, part.points
            lines = part.lines()
            if down.is_set():
                return 0, len(lines)
            try:
                self._write_request(request_body(lines), deadline)
                return len(lines), 0
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"[:500]
                errors.append(error)
                if _refused(exc):  # this request's points were refused; InfluxDB itself is up
                    log.error("InfluxDB refused a request, %d points not written: %s", len(lines), error)
                else:
                    down.set()
                    log.error("InfluxDB unreachable after retries, %d points not written: %s", len(lines), error)
                return 0, len(lines)

        if workers == 1 or len(parts) <= 1:
            results = [send(part) for part in parts]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iomt-influx") as pool:
                results = list(pool.map(send, parts))
        return InfluxWriteResult(written=sum(ok for ok, _ in results), failed=sum(bad for _, bad in results),
                                 error=errors[0] if errors else None)

    def close(self) -> None:
        self.client.close()


class InfluxPointsWriter:
    """The InfluxDB writer of the stream, one task's records at a time: the per-device aggregates of
    every record (``device_traffic``) and a point per anomalous record (per record with
    ``influxdb.record_points: all``) in ``flow_scores``. It never raises: InfluxDB trouble is
    logged and counted (Delta already holds the records). A task spends at most
    ``influxdb.max_batch_delay_s`` on InfluxDB; once a task's time ran out, the later tasks of the
    same batch in this Python worker count their points failed at once, so a dead InfluxDB delays a
    batch by about that bound, not by the bound per task."""

    name = "influxdb"
    required = False

    def __init__(self, config: InfluxConfig, token: str | None = None) -> None:
        self.config = config
        self.token = token  # resolved on the driver when the writer runs on the executors
        self._writer: InfluxWriter | None = None
        self.failures = 0  # points not written since start
        self._timed_out_batch: int | None = None  # a batch whose time for InfluxDB ran out in this worker

    def write(self, batch: "BatchOutput") -> "WriteOutcome":
        """Write the points of ``batch``: one task's records, whose aggregates' times are set apart by
        ``batch.batch_id`` and ``batch.partition`` (the same on a replay: an overwrite)."""
        from jobs.stream.influx_points import anomalous, encode_aggregates
        from jobs.stream.writers import WriteOutcome
        from schemas.tables import FLOWS_SCORED

        scored = batch.tables[FLOWS_SCORED]
        if scored.num_rows == 0:
            return WriteOutcome()
        deadline = time.monotonic() + self.config.max_batch_delay_s
        points = 0
        try:
            records = scored if self.config.record_points == "all" else scored.filter(anomalous(scored))
            points = records.num_rows
            aggregates = encode_aggregates(scored, self.config.aggregate_interval_ns, batch.batch_id,
                                           batch.partition)
            points += len(aggregates)
            if self._timed_out_batch == batch.batch_id:  # this batch already waited its time in this worker
                result = InfluxWriteResult(written=0, failed=points, error="DeadlineExceeded: an earlier task "
                                           "of this batch ran out of influxdb.max_batch_delay_s")
            else:
                if self._writer is None:
                    self._writer = InfluxWriter(self.config, self.token)
                result = self._writer.write_table(records, aggregates, deadline=deadline)
                if result.failed and time.monotonic() >= deadline:
                    self._timed_out_batch = batch.batch_id
        except Exception as exc:  # noqa: BLE001 - InfluxDB must never stop the stream
            log.error("InfluxDB writer failed for this batch: %s", exc)
            result = InfluxWriteResult(written=0, failed=points, error=f"{type(exc).__name__}: {exc}"[:500])
        if result.failed:
            self.failures += result.failed
            log.error("InfluxDB: %d points failed in this batch (%d since start)", result.failed, self.failures)
        return WriteOutcome(written=result.written, failed=result.failed, error=result.error)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
