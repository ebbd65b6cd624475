"""Write scored records to InfluxDB 2.x as deterministic points (see ``schemas.influx``).

Points are written in batches with retries and exponential backoff. When InfluxDB stays down the
write gives up for this micro-batch and reports how many points failed: Delta already holds the
records, and the stream goes on.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.config import ConfigError, InfluxConfig, read_secret
from schemas import influx as schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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


def point_times_ns(event_times: "pd.Series", record_ids: "pd.Series") -> "np.ndarray":
    """:func:`schemas.influx.point_time_ns` for whole columns (naive times are UTC)."""
    import numpy as np
    import pandas as pd

    times = pd.to_datetime(event_times)
    times = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    nanos = times.dt.as_unit("ns").astype("int64").to_numpy()
    offsets = np.fromiter((schema.record_offset_ns(str(r)) for r in record_ids), dtype=np.int64,
                          count=len(record_ids))
    return (nanos // 1_000_000) * 1_000_000 + offsets


def to_lines(rows: "pd.DataFrame") -> list[str]:
    """Scored records (one per row, the columns of ``schemas.influx``) -> InfluxDB line protocol,
    through influxdb-client's DataFrame serializer: missing tag values become ``unknown``,
    ``is_anomaly`` is ``true``/``false``, non-finite and null fields are left out."""
    import numpy as np
    import pandas as pd
    from influxdb_client.client.write.dataframe_serializer import data_frame_to_list_of_points
    from influxdb_client.client.write_api import PointSettings

    frame = pd.DataFrame(index=rows.index)
    for tag in schema.TAGS:
        if tag == "source":
            values = rows["source_id"].map(schema.source_tag).astype("string")
        elif tag == schema.ANOMALY_TAG:
            values = rows[tag].map({True: schema.TRUE, False: "false"})
        else:
            values = rows[tag].astype("string")
        frame[tag] = values.mask(values.isna() | (values == ""), schema.UNKNOWN).astype(object)
    for name in (*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS):
        values = pd.to_numeric(rows[name], errors="coerce").astype("float64")
        frame[name] = values.where(np.isfinite(values))
    for name in schema.STRING_FIELDS:
        values = rows[name].astype("string")
        frame[name] = values.mask(values.isna() | (values == "")).astype(object)
    frame["_time"] = point_times_ns(rows["event_time"], rows["record_id"])
    return data_frame_to_list_of_points(
        frame, PointSettings(), precision="ns", data_frame_measurement_name=schema.MEASUREMENT,
        data_frame_tag_columns=list(schema.TAGS), data_frame_timestamp_column="_time")


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
        import pandas as pd

        return self.write_lines(to_lines(pd.DataFrame(list(rows))))

    def write_lines(self, lines: list[str]) -> InfluxWriteResult:
        written = failed = 0
        error: str | None = None
        for chunk in _chunks(lines, self.config.batch_size):
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

    def write_table(self, scored: "pa.Table") -> InfluxWriteResult:
        """Scored records as an Arrow table (the columns of ``flows_scored``)."""
        columns = ["record_id", "source_id", "event_time", *schema.TAGS[:-1], *schema.SCORE_FIELDS,
                   *schema.FEATURE_FIELDS, *schema.STRING_FIELDS]
        if scored.num_rows == 0:
            return InfluxWriteResult(0, 0)
        return self.write_lines(to_lines(scored.select(columns).to_pandas()))

    def close(self) -> None:
        self.client.close()
