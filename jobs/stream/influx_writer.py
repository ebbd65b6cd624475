"""Write scored records to InfluxDB 2.x as deterministic points (see ``schemas.influx``).

Points are written in batches with retries and exponential backoff. When InfluxDB stays down the
write gives up for this micro-batch and reports how many points failed: Delta already holds the
records, and the stream goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.config import ConfigError, InfluxConfig, read_secret
from schemas import influx as schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from jobs.stream.writers import BatchOutput, WriteOutcome

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


def _utc_nanos(times: "pd.Series") -> "np.ndarray":
    """Times (text or datetimes; naive ones are UTC) as ns since the epoch."""
    import pandas as pd

    times = pd.to_datetime(times)
    times = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    return times.dt.as_unit("ns").astype("int64").to_numpy()


# the escaping rules of the line protocol, as influxdb_client.client.write.point applies them
_ESCAPE_MEASUREMENT = ((",", r"\,"), (" ", r"\ "), ("\n", r"\n"), ("\t", r"\t"), ("\r", r"\r"))
_ESCAPE_KEY = (*_ESCAPE_MEASUREMENT[:1], ("=", r"\="), *_ESCAPE_MEASUREMENT[1:])
_ESCAPE_STRING = (("\\", "\\\\"), ('"', '\\"'))  # the backslash first


def _escaped(values, rules) -> "Any":
    import pyarrow.compute as pc

    for plain, escaped in rules:
        values = pc.replace_substring(values, plain, escaped)
    return values


def _escaped_few(values: "pa.Array", rules) -> "pa.Array":
    """:func:`_escaped` for a column of few distinct values (a tag): each distinct value once."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    return _escaped(encoded.dictionary, rules).take(encoded.indices)


def _escaped_text(text: str, rules) -> str:
    for plain, escaped in rules:
        text = text.replace(plain, escaped)
    return text


def point_columns(table: "pa.Table") -> dict[str, "pa.Array"]:
    """The point of each scored record, column by column: tag values as strings (``unknown`` when missing or
    empty), numeric fields as float64 with non-finite values nulled, string fields with empty
    values nulled, and ``_time`` in ns (:func:`schemas.influx.point_time_ns`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: dict[str, pa.Array] = {}
    for tag in schema.TAGS:
        if tag == "source":  # schemas.influx.source_tag on the whole column
            values = pc.list_element(pc.split_pattern(_strings(table, "source_id"), ":", max_splits=1), 0)
            if "device_id" in table.column_names:
                device = _strings(table, "device_id")
                values = pc.if_else(pc.fill_null(pc.not_equal(device, ""), False), device, values)
            values = pc.replace_substring_regex(pc.utf8_slice_codeunits(values, 0, schema.SOURCE_TAG_MAX),
                                                schema.SOURCE_TAG_UNSAFE, "_")
        elif tag == schema.ANOMALY_TAG:
            values = pc.if_else(_array(table, tag).cast(pa.bool_()), schema.TRUE, "false")
        else:
            values = _strings(table, tag)
        columns[tag] = pc.if_else(pc.fill_null(pc.equal(values, ""), True), schema.UNKNOWN, values)
    for name in (*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS):
        values = _numbers(table, name)
        columns[name] = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    for name in schema.STRING_FIELDS:
        values = _strings(table, name)
        columns[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    # ids to Python via NumPy: a third of to_pylist's time (same values, so the same offsets)
    offsets = schema.record_offsets_ns(_array(table, "record_id").to_numpy(zero_copy_only=False))
    columns["_time"] = pa.array((_event_time_ns(table) // 1_000_000) * 1_000_000 + offsets)
    return columns


def _array(table: "pa.Table", name: str) -> "pa.Array":
    return table.column(name).combine_chunks()


def _strings(table: "pa.Table", name: str) -> "pa.Array":
    import pyarrow as pa

    return _array(table, name).cast(pa.string())


def _numbers(table: "pa.Table", name: str) -> "pa.Array":
    """A column as float64; values that are not numbers (text, in rows built from dicts) become null."""
    import pandas as pd
    import pyarrow as pa

    values = _array(table, name)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_null(values.type):
        return values.cast(pa.float64())
    return pa.array(pd.to_numeric(values.to_pandas(), errors="coerce"), pa.float64(), from_pandas=True)


def _event_time_ns(table: "pa.Table") -> "np.ndarray":
    """``event_time`` in ns since the epoch (a time without a zone is UTC)."""
    import pyarrow as pa

    values = _array(table, "event_time")
    if pa.types.is_timestamp(values.type):
        return values.cast(pa.timestamp("ns", tz=values.type.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return _utc_nanos(values.to_pandas())


def encode_table(table: "pa.Table") -> "pa.Array":
    """The line protocol of scored records (an Arrow table with the columns of ``flows_scored``),
    one newline-terminated line per point, built column by column with Arrow compute (the library's
    serializer took ~27 us a point: 2.2 s of an 80,000-record micro-batch). Tags and fields are
    sorted by key, as the library writes them; numbers use Arrow's shortest round-trip text (``1``
    for ``1.0``: a float in line protocol, without the ``i`` suffix); a point with no field is left
    out, as the library does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return pa.array([], pa.string())
    columns = point_columns(table)
    tags = [pc.binary_join_element_wise(f"{_escaped_text(tag, _ESCAPE_KEY)}=", _escaped_few(columns[tag], _ESCAPE_KEY), "")
            for tag in sorted(schema.TAGS)]
    numeric = set(schema.SCORE_FIELDS) | set(schema.FEATURE_FIELDS)
    fields = []  # ",key=value" per field, null where the value is missing
    for name in sorted((*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS, *schema.STRING_FIELDS)):
        key = _escaped_text(name, _ESCAPE_KEY)
        if name in numeric:
            fields.append(pc.binary_join_element_wise(f",{key}=", columns[name].cast(pa.string()), ""))
        else:
            fields.append(pc.binary_join_element_wise(f',{key}="', _escaped(columns[name], _ESCAPE_STRING), '"', ""))
    # missing fields joined as "" and the leading comma cut (null_handling="skip" would be simpler,
    # but pyarrow 21 drops a row whose values are all null from its result)
    field_set = pc.utf8_slice_codeunits(
        pc.binary_join_element_wise(*fields, "", null_handling="replace", null_replacement=""), 1)
    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(_escaped_text(schema.MEASUREMENT, _ESCAPE_MEASUREMENT), *tags, ","),
        field_set, pc.binary_join_element_wise(columns["_time"].cast(pa.string()), "\n", ""), " ")
    return pc.filter(lines, pc.not_equal(field_set, ""))


def request_body(lines: "pa.Array") -> bytes:
    """The newline-terminated lines of :func:`encode_table` as one request body: the bytes the
    array already holds back to back, with no Python object per line."""
    if len(lines) == 0:
        return b""
    import numpy as np
    import pyarrow as pa

    if lines.type != pa.string():
        lines = lines.cast(pa.string())
    _, offsets_buffer, data = lines.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)  # string (not large_string): int32 offsets
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return data.slice(first, last - first).to_pybytes()


def _refused(exc: Exception) -> bool:
    """A 4xx answer other than 429 (too many requests): the request itself is wrong, and sending it
    again cannot help."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status != 429


class InfluxWriter:
    def __init__(self, config: InfluxConfig, token: str | None = None) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self.client = InfluxDBClient(url=config.url, token=token or influx_token(config), org=config.org,
                                     timeout=config.timeout_ms, **influx_tls(config))
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def _write_request(self, body: bytes) -> None:
        delay = 0.5
        for attempt in range(self.config.max_retries + 1):
            try:
                self.write_api.write(bucket=self.config.bucket, org=self.config.org, record=body,
                                     write_precision="ns")
                return
            except Exception as exc:  # noqa: BLE001 - any client/network error is retried
                if attempt >= self.config.max_retries or _refused(exc):
                    raise
                log.warning("InfluxDB write failed (attempt %d/%d): %s; retrying in %.1f s",
                            attempt + 1, self.config.max_retries + 1, exc, delay)
                time.sleep(delay)
                delay *= 2

    def write_table(self, scored: "pa.Table") -> InfluxWriteResult:
        """Scored records as an Arrow table (the columns of ``flows_scored``), ``batch_size`` points
        a request. Each request's body is encoded (:func:`encode_table`) just before it is sent, up
        to ``parallel_writes`` requests at once, so the encoding overlaps the requests in flight."""
        if scored.num_rows == 0:
            return InfluxWriteResult(written=0, failed=0)
        size = self.config.batch_size
        parts = [scored.slice(start, size) for start in range(0, scored.num_rows, size)]
        return self._write_parts(parts, workers=max(1, self.config.parallel_writes))

    def _write_parts(self, parts: list["pa.Table"], workers: int) -> InfluxWriteResult:
        """Write each part as one request. Once a request has failed after its retries, InfluxDB is
        taken as down for this micro-batch: the parts not yet sent are counted failed, not tried."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        down = threading.Event()
        errors: list[str] = []

        def send(part: "pa.Table") -> tuple[int, int]:
            if down.is_set():
                return 0, part.num_rows
            lines = encode_table(part)
            if down.is_set():
                return 0, len(lines)
            try:
                self._write_request(request_body(lines))
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
    """The InfluxDB writer of the stream: one point per record of ``flows_scored``. It never raises:
    InfluxDB trouble is logged and counted (Delta already holds the records)."""

    name = "influxdb"
    required = False

    def __init__(self, config: InfluxConfig, token: str | None = None) -> None:
        self.config = config
        self.token = token  # resolved on the driver when the writer runs on the executors
        self._writer: InfluxWriter | None = None
        self.failures = 0  # points not written since start

    def write(self, batch: "BatchOutput") -> "WriteOutcome":
        from jobs.stream.writers import WriteOutcome
        from schemas.tables import FLOWS_SCORED

        scored = batch.tables[FLOWS_SCORED]
        if scored.num_rows == 0:
            return WriteOutcome()
        try:
            if self._writer is None:
                self._writer = InfluxWriter(self.config, self.token)
            result = self._writer.write_table(scored)
        except Exception as exc:  # noqa: BLE001 - InfluxDB must never stop the stream
            log.error("InfluxDB writer failed for this batch: %s", exc)
            result = InfluxWriteResult(written=0, failed=scored.num_rows, error=f"{type(exc).__name__}: {exc}"[:500])
        if result.failed:
            self.failures += result.failed
            log.error("InfluxDB: %d points failed in this batch (%d since start)", result.failed, self.failures)
        return WriteOutcome(written=result.written, failed=result.failed, error=result.error)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
