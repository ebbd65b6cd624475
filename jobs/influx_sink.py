"""Write scored records to InfluxDB 2.x as deterministic points (see ``schemas.influx``).

Points are written in batches with retries and exponential backoff. When InfluxDB stays down the
write gives up for this micro-batch and reports how many points failed: Delta already holds the
records, and the stream goes on.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.config import ConfigError, InfluxConfig, read_secret
from schemas import influx as schema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InfluxWriteResult:
    written: int
    failed: int
    error: str | None = None


def influx_token(config: InfluxConfig) -> str:
    token = read_secret(config.token_env, config.token_file, "influxdb token")
    if not token:
        raise ConfigError(
            f"influxdb is enabled but no token was found: set the environment variable "
            f"{config.token_env or '(influxdb.token_env)'} or influxdb.token_file")
    return token


def to_line(row: dict[str, Any]) -> str:
    """One record -> one line of InfluxDB line protocol."""
    from influxdb_client import Point

    point = Point(schema.MEASUREMENT)
    for tag in schema.TAGS:
        value = schema.source_tag(row.get("source_id")) if tag == "source" else row.get(tag)
        if isinstance(value, bool):
            value = "true" if value else "false"
        point = point.tag(tag, "unknown" if value is None or value == "" else str(value))
    for name in (*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS):
        value = row.get(name)
        if value is not None and math.isfinite(float(value)):
            point = point.field(name, float(value))
    for name in schema.STRING_FIELDS:
        if row.get(name):
            point = point.field(name, str(row[name]))
    point = point.time(schema.point_time_ns(row["event_time"], str(row["record_id"])))
    return point.to_line_protocol()


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class InfluxWriter:
    def __init__(self, config: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self.client = InfluxDBClient(url=config.url, token=influx_token(config), org=config.org,
                                     timeout=config.timeout_ms)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def _write_chunk(self, chunk: list[str]) -> None:
        delay = 0.5
        for attempt in range(self.config.max_retries + 1):
            try:
                self.write_api.write(bucket=self.config.bucket, org=self.config.org, record=chunk,
                                     write_precision="ns")
                return
            except Exception as exc:  # noqa: BLE001 - any client/network error is retried
                if attempt >= self.config.max_retries:
                    raise
                log.warning("InfluxDB write failed (attempt %d/%d): %s; retrying in %.1f s",
                            attempt + 1, self.config.max_retries + 1, exc, delay)
                time.sleep(delay)
                delay *= 2

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> InfluxWriteResult:
        written = failed = 0
        error: str | None = None
        for chunk in _chunks((to_line(row) for row in rows), self.config.batch_size):
            if error is not None:  # InfluxDB is down: don't wait on it again for this batch
                failed += len(chunk)
                continue
            try:
                self._write_chunk(chunk)
                written += len(chunk)
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"[:500]
                failed += len(chunk)
                log.error("InfluxDB unreachable after retries, %d points not written: %s", len(chunk), error)
        return InfluxWriteResult(written=written, failed=failed, error=error)

    def write_frame(self, scored: "DataFrame") -> InfluxWriteResult:
        columns = ["record_id", "source_id", "event_time", *schema.TAGS[:-1], *schema.SCORE_FIELDS,
                   *schema.FEATURE_FIELDS, *schema.STRING_FIELDS]
        rows = (row.asDict() for row in scored.select(*columns).toLocalIterator())
        return self.write_rows(rows)

    def close(self) -> None:
        self.client.close()
