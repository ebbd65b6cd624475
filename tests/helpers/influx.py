"""InfluxDB in tests: the reference encoders the fast point encoding is held against (influxdb-client's
own DataFrame serializer, one Python call per row), writing rows given as dicts, and queries of the
test server."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from jobs.stream.influx_points import _utc_nanos, encode_table
from jobs.stream.influx_writer import InfluxWriteResult, InfluxWriter
from schemas import influx as schema


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is neither escaped nor inside a quoted string."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current)]


def parse_line(line: str) -> tuple:
    """(measurement, sorted (tag, value) pairs, {field: float, or the quoted text}, time) of a line."""
    series, field_set, timestamp = _split(line, " ")
    measurement, *tags = _split(series, ",")
    fields = {}
    for pair in _split(field_set, ","):
        key, value = _split(pair, "=")
        fields[key] = value if value.startswith('"') else float(value)
    return measurement, tuple(sorted(tuple(_split(tag, "=")) for tag in tags)), fields, int(timestamp)


def point_times_ns(event_times: "pd.Series", record_ids: "pd.Series") -> "np.ndarray":
    """:func:`schemas.influx.point_time_ns` for whole columns (naive times are UTC)."""
    import numpy as np

    nanos = _utc_nanos(event_times)
    offsets = np.fromiter((schema.record_offset_ns(str(r)) for r in record_ids), dtype=np.int64,
                          count=len(record_ids))  # one by one: the reference for record_offsets_ns
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
            devices = rows["device_id"] if "device_id" in rows else pd.Series([None] * len(rows), index=rows.index)
            values = pd.Series([schema.source_tag(s, d) for s, d in zip(rows["source_id"], devices)],
                               index=rows.index, dtype="string")
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



def encode_lines(rows: "pd.DataFrame") -> list[str]:
    """The same points as :func:`to_lines`, from a pandas frame (:func:`encode_table`), one string a point."""
    import pyarrow as pa

    if rows.empty:
        return []
    return [line[:-1] for line in encode_table(pa.Table.from_pandas(rows, preserve_index=False)).to_pylist()]


def write_rows(writer: InfluxWriter, rows: Iterable[dict[str, Any]]) -> InfluxWriteResult:
    """Scored records as dicts (the columns of ``flows_scored``), written as the stream writes a batch."""
    import pyarrow as pa

    frame = pd.DataFrame(list(rows))
    return writer.write_table(pa.Table.from_pandas(frame, preserve_index=False) if len(frame) else pa.table({}))


def new_influx_bucket(server, name: str) -> str:
    """A bucket of its own for one test: the InfluxDB fixture is shared by the whole session."""
    from influxdb_client import InfluxDBClient

    from tests.services.influxdb_server import ORG, TOKEN

    with InfluxDBClient(url=server.url, token=TOKEN, org=ORG) as client:
        client.buckets_api().create_bucket(bucket_name=name, org=ORG)
    return name


def flux_total(server, flux: str) -> float:
    """The sum of every value a Flux query over the test server returns (a count, a sum)."""
    from influxdb_client import InfluxDBClient

    from tests.services.influxdb_server import ORG, TOKEN

    with InfluxDBClient(url=server.url, token=TOKEN, org=ORG) as client:
        return sum(record.get_value() for table in client.query_api().query(flux) for record in table.records)


def count_points(server, bucket: str, field: str = "ensemble_score") -> int:
    """Points of ``flow_scores`` in ``bucket`` carrying ``field`` (every point carries every score field):
    the anomalous records, or every record with ``influxdb.record_points: all``."""
    return flux_total(server, f'from(bucket:"{bucket}") |> range(start: -40d, stop: 1h) '
                              f'|> filter(fn: (r) => r._measurement == "flow_scores" and r._field == "{field}") '
                              '|> group() |> count()')


def drift_points(server, bucket: str) -> int:
    """Points of ``model_drift`` in ``bucket`` (one per drift row: hour, group, version, measure)."""
    return int(flux_total(server, f'from(bucket:"{bucket}") |> range(start: -40d, stop: 1h) '
                                  f'|> filter(fn: (r) => r._measurement == "{schema.DRIFT_MEASUREMENT}" '
                                  'and r._field == "records") |> group() |> count()'))


def aggregate_total(server, bucket: str, field: str = "records") -> float:
    """The sum of a ``device_traffic`` field over every point in ``bucket`` (events of the last 40 days):
    ``records`` is the number of records the job scored."""
    return flux_total(server, f'from(bucket:"{bucket}") |> range(start: -40d, stop: 1h) '
                              f'|> filter(fn: (r) => r._measurement == "{schema.AGGREGATE_MEASUREMENT}" '
                              f'and r._field == "{field}") |> group() |> sum()')


class SilentServer:
    """A TCP server on loopback that accepts every connection and never answers: a hung InfluxDB host
    (what a closed port cannot show: the client waits for its time-outs, not a refusal)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)  # kept open, never read, never answered

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()

    def __enter__(self) -> "SilentServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_total(server, bucket: str, measurement: str, field: str, total: float, timeout_s: float = 30.0) -> float:
    """Wait until the sum of ``field`` over ``measurement``'s points in ``bucket`` is ``total`` (what a
    background sender writes after the query ended: the stream's drift points, whose ``records`` only
    grow); returns the last sum seen."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        seen = flux_total(server, f'from(bucket:"{bucket}") |> range(start: -40d, stop: 1h) '
                                  f'|> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}") '
                                  '|> group() |> sum()')
        if seen == total or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)
