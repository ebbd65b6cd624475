"""Write scored records to InfluxDB 2.x as deterministic points (see ``schemas.influx``).

Points are written in batches with retries and exponential backoff. When InfluxDB stays down the
write gives up for this micro-batch and reports how many points failed: Delta already holds the
records, and the stream goes on.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
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


def point_frame(rows: "pd.DataFrame") -> "pd.DataFrame":
    """Scored records (one per row, the columns of ``schemas.influx``) -> one column per tag and
    field plus ``_time`` (ns): missing tag values become ``unknown``, ``is_anomaly`` is
    ``true``/``false``, non-finite numbers and empty strings become nulls (left out of the point)."""
    import numpy as np
    import pandas as pd

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
    return frame


def to_lines(rows: "pd.DataFrame") -> list[str]:
    """Line protocol for scored records through influxdb-client's DataFrame serializer (one Python
    format call per row): the reference that :func:`encode_lines` is tested against."""
    from influxdb_client.client.write.dataframe_serializer import data_frame_to_list_of_points
    from influxdb_client.client.write_api import PointSettings

    return data_frame_to_list_of_points(
        point_frame(rows), PointSettings(), precision="ns", data_frame_measurement_name=schema.MEASUREMENT,
        data_frame_tag_columns=list(schema.TAGS), data_frame_timestamp_column="_time")


# the escaping rules of the line protocol, as influxdb_client.client.write.point applies them
_ESCAPE_MEASUREMENT = ((",", r"\,"), (" ", r"\ "), ("\n", r"\n"), ("\t", r"\t"), ("\r", r"\r"))
_ESCAPE_KEY = (*_ESCAPE_MEASUREMENT[:1], ("=", r"\="), *_ESCAPE_MEASUREMENT[1:])
_ESCAPE_STRING = (("\\", "\\\\"), ('"', '\\"'))  # the backslash first


def _escaped(values, rules) -> "Any":
    import pyarrow.compute as pc

    for plain, escaped in rules:
        values = pc.replace_substring(values, plain, escaped)
    return values


def _escaped_text(text: str, rules) -> str:
    for plain, escaped in rules:
        text = text.replace(plain, escaped)
    return text


def encode_lines(rows: "pd.DataFrame") -> list[str]:
    """The same points as :func:`to_lines`, built column by column with Arrow compute instead of
    one Python call per row (influxdb-client's serializer took ~27 us a point: 2.2 s of an
    80,000-record micro-batch). Tags and fields are sorted by key, as the library writes them;
    numbers use Arrow's shortest round-trip text (``1`` for ``1.0``: a float in line protocol,
    without the ``i`` suffix); a point with no field is left out, as the library does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    frame = point_frame(rows)
    if frame.empty:
        return []
    table = pa.Table.from_pandas(frame, preserve_index=False)
    tags = [pc.binary_join_element_wise(f"{_escaped_text(tag, _ESCAPE_KEY)}=",
                                        _escaped(table[tag].cast(pa.string()), _ESCAPE_KEY), "")
            for tag in sorted(schema.TAGS)]
    numeric = set(schema.SCORE_FIELDS) | set(schema.FEATURE_FIELDS)
    fields = []
    for name in sorted((*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS, *schema.STRING_FIELDS)):
        key = _escaped_text(name, _ESCAPE_KEY)
        if name in numeric:
            fields.append(pc.binary_join_element_wise(f"{key}=", table[name].cast(pa.float64()).cast(pa.string()), ""))
        else:
            text = _escaped(table[name].cast(pa.string()), _ESCAPE_STRING)
            fields.append(pc.binary_join_element_wise(f'{key}="', text, '"', ""))
    field_set = pc.binary_join_element_wise(*fields, ",", null_handling="skip")
    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(_escaped_text(schema.MEASUREMENT, _ESCAPE_MEASUREMENT), *tags, ","),
        field_set, table["_time"].cast(pa.string()), " ")
    return pc.filter(lines, pc.not_equal(field_set, "")).to_pylist()


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
        """Scored records as dicts (the columns of ``flows_scored``), encoded as :meth:`write_table` does."""
        import pandas as pd

        return self.write_lines(encode_lines(pd.DataFrame(list(rows))))

    def write_lines(self, lines: list[str]) -> InfluxWriteResult:
        return self._write_parts(list(_chunks(lines, self.config.batch_size)), lambda chunk: chunk, workers=1)

    def write_table(self, scored: "pa.Table") -> InfluxWriteResult:
        """Scored records as an Arrow table (the columns of ``flows_scored``). Each request's points
        are encoded (:func:`encode_lines`) just before it is sent, up to ``parallel_writes`` requests at once, so the
        line-protocol work (Python) overlaps the requests in flight."""
        columns = ["record_id", "source_id", "event_time", *schema.TAGS[:-1], *schema.SCORE_FIELDS,
                   *schema.FEATURE_FIELDS, *schema.STRING_FIELDS]
        table = scored.select(columns)
        size = self.config.batch_size
        parts = [table.slice(start, size) for start in range(0, table.num_rows, size)]
        return self._write_parts(parts, lambda part: encode_lines(part.to_pandas()),
                                 workers=max(1, self.config.parallel_writes))

    def _write_parts(self, parts: list, to_request: Callable[[Any], list[str]], workers: int) -> InfluxWriteResult:
        """Write each part as one request. Once a request has failed after its retries, InfluxDB is
        taken as down for this micro-batch: the parts not yet sent are counted failed, not tried."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        down = threading.Event()
        errors: list[str] = []

        def send(part: Any) -> tuple[int, int]:
            if down.is_set():
                return 0, len(part)
            lines = to_request(part)
            if down.is_set():
                return 0, len(lines)
            try:
                self._write_chunk(lines)
                return len(lines), 0
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"[:500]
                errors.append(error)
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
