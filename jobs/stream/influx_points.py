"""InfluxDB points of a task's scored records as line protocol (pure pyarrow: no I/O), after
``schemas.influx``: the per-device aggregates (``device_traffic``) and the per-record points
(``flow_scores``), both through one column-wise encoder (:func:`encode_points`).

The encoder builds each line with Arrow compute, column by column (the library's serializer took
~27 us a point: 2.2 s of an 80,000-record micro-batch). Tags and fields are sorted by key, as the
library writes them; numbers use Arrow's shortest round-trip text (``1`` for ``1.0``: a float in
line protocol, without the ``i`` suffix); a point with no field is left out, as the library does.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schemas import influx as schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


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


def encode_points(measurement: str, tags: Mapping[str, "pa.Array"], fields: Mapping[str, "pa.Array"],
                  times: "pa.Array") -> "pa.Array":
    """The line protocol of points given column by column, one newline-terminated line per point:
    ``tags`` as strings (never null), ``fields`` as float64 (written as numbers) or strings (written
    quoted), a null field left out of its point, ``times`` in ns (int64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(times) == 0:
        return pa.array([], pa.string())
    tag_set = [pc.binary_join_element_wise(f"{_escaped_text(tag, _ESCAPE_KEY)}=",
                                           _escaped_few(tags[tag], _ESCAPE_KEY), "") for tag in sorted(tags)]
    field_parts = []  # ",key=value" per field, null where the value is missing
    for name in sorted(fields):
        key, values = _escaped_text(name, _ESCAPE_KEY), fields[name]
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            field_parts.append(pc.binary_join_element_wise(f',{key}="', _escaped(values, _ESCAPE_STRING), '"', ""))
        else:
            field_parts.append(pc.binary_join_element_wise(f",{key}=", values.cast(pa.string()), ""))
    # missing fields joined as "" and the leading comma cut (null_handling="skip" would be simpler,
    # but pyarrow 21 drops a row whose values are all null from its result)
    field_set = pc.utf8_slice_codeunits(
        pc.binary_join_element_wise(*field_parts, "", null_handling="replace", null_replacement=""), 1)
    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(_escaped_text(measurement, _ESCAPE_MEASUREMENT), *tag_set, ","),
        field_set, pc.binary_join_element_wise(pa.array(times, pa.int64()).cast(pa.string()), "\n", ""), " ")
    return pc.filter(lines, pc.not_equal(field_set, ""))


# --- the columns of scored records ----------------------------------------------------------------

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


def _finite(table: "pa.Table", name: str) -> "pa.Array":
    """:func:`_numbers` with values that are not finite nulled (InfluxDB has no inf or NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = _numbers(table, name)
    return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))


def _or_unknown(values: "pa.Array") -> "pa.Array":
    import pyarrow.compute as pc

    return pc.if_else(pc.fill_null(pc.equal(values, ""), True), schema.UNKNOWN, values)


def _source_tags(table: "pa.Table") -> "pa.Array":
    """:func:`schemas.influx.source_tag` on the whole column."""
    import pyarrow.compute as pc

    values = pc.list_element(pc.split_pattern(_strings(table, "source_id"), ":", max_splits=1), 0)
    if "device_id" in table.column_names:
        device = _strings(table, "device_id")
        values = pc.if_else(pc.fill_null(pc.not_equal(device, ""), False), device, values)
    encoded = pc.dictionary_encode(values)  # made safe once per distinct value (few: devices, files)
    safe = pc.replace_substring_regex(pc.utf8_slice_codeunits(encoded.dictionary, 0, schema.SOURCE_TAG_MAX),
                                      schema.SOURCE_TAG_UNSAFE, "_")
    return _or_unknown(safe.take(encoded.indices))


def _label_tags(table: "pa.Table") -> "pa.Array":
    """:func:`schemas.influx.label_tag` on the whole column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from schemas.classes import CLASSES

    labels = _strings(table, "label") if "label" in table.column_names else pa.nulls(table.num_rows, pa.string())
    known = pc.if_else(pc.is_in(labels, value_set=pa.array(CLASSES)), labels, schema.OTHER)
    return pc.if_else(pc.fill_null(pc.equal(labels, ""), True), schema.UNKNOWN, known)


def anomalous(table: "pa.Table") -> "pa.Array":
    """``is_anomaly`` as booleans, a missing value false."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(_array(table, schema.ANOMALY_TAG).cast(pa.bool_()), False)


def _event_time_ns(table: "pa.Table") -> "np.ndarray":
    """``event_time`` in ns since the epoch (a time without a zone is UTC)."""
    import pyarrow as pa

    values = _array(table, "event_time")
    if pa.types.is_timestamp(values.type):
        return values.cast(pa.timestamp("ns", tz=values.type.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return _utc_nanos(values.to_pandas())


# --- flow_scores: a point per record ----------------------------------------------------------------

def point_columns(table: "pa.Table") -> dict[str, "pa.Array"]:
    """The point of each scored record, column by column: tag values as strings (``unknown`` when missing or
    empty), numeric fields as float64 with non-finite values nulled, string fields with empty
    values nulled, and ``_time`` in ns (:func:`schemas.influx.point_time_ns`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: dict[str, pa.Array] = {}
    for tag in schema.TAGS:
        if tag == "source":
            columns[tag] = _source_tags(table)
        elif tag == schema.ANOMALY_TAG:
            columns[tag] = _or_unknown(pc.if_else(_array(table, tag).cast(pa.bool_()), schema.TRUE, "false"))
        else:
            columns[tag] = _or_unknown(_strings(table, tag))
    for name in (*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS):
        columns[name] = _finite(table, name)
    for name in schema.STRING_FIELDS:
        values = _strings(table, name)
        columns[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    # ids to Python via NumPy: a third of to_pylist's time (same values, so the same offsets)
    offsets = schema.record_offsets_ns(_array(table, "record_id").to_numpy(zero_copy_only=False))
    columns["_time"] = pa.array((_event_time_ns(table) // 1_000_000) * 1_000_000 + offsets)
    return columns


def encode_table(table: "pa.Table") -> "pa.Array":
    """The ``flow_scores`` points of scored records (an Arrow table with the columns of
    ``flows_scored``), one newline-terminated line per record."""
    import pyarrow as pa

    if table.num_rows == 0:
        return pa.array([], pa.string())
    columns = point_columns(table)
    fields = (*schema.SCORE_FIELDS, *schema.FEATURE_FIELDS, *schema.STRING_FIELDS)
    return encode_points(schema.MEASUREMENT, {tag: columns[tag] for tag in schema.TAGS},
                         {name: columns[name] for name in fields}, columns["_time"])


# --- device_traffic: partial aggregates per task ---------------------------------------------------

def aggregate_columns(table: "pa.Table", interval_ns: int, batch_id: int, partition: int) -> dict[str, "pa.Array"]:
    """The ``device_traffic`` points of one task's scored records: one per (interval of event time,
    source, protocol, model version, label), each tag and field a column, ``_time`` the interval's
    start plus :func:`schemas.influx.aggregate_offset_ns` of (``batch_id``, ``partition``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    event_ns = _event_time_ns(table)
    null = pa.scalar(None, pa.float64())
    benign = pc.fill_null(pc.equal(_strings(table, "predicted_class"), "Benign"), False)
    rate = _finite(table, "rate")
    benign_rate = pc.if_else(benign, rate, null)
    keyed = pa.table({
        "_start": pa.array((event_ns // interval_ns) * interval_ns, pa.int64()),
        "source": _source_tags(table), "protocol": _or_unknown(_strings(table, "protocol")),
        "model_version": _or_unknown(_strings(table, "model_version")), "label": _label_tags(table),
        "anomaly": anomalous(table).cast(pa.float64()), "benign": benign.cast(pa.float64()),
        **{name: _finite(table, name) for name in ("ensemble_score", "ae_error", "if_score", "clf_attack_proba",
                                                   "tot_size")},
        "rate": rate, "rate_known": pc.is_valid(rate).cast(pa.float64()), "benign_rate": benign_rate,
        "benign_rate_sq": pc.multiply(benign_rate, benign_rate),
        "benign_rate_known": pc.is_valid(benign_rate).cast(pa.float64()),
        "event_ns": pa.array(event_ns, pa.int64()),
    })
    grouped = keyed.group_by(["_start", *schema.AGGREGATE_TAGS], use_threads=False).aggregate([
        ([], "count_all"), ("anomaly", "sum"), ("ensemble_score", "sum"), ("ensemble_score", "max"),
        ("ae_error", "max"), ("if_score", "max"), ("clf_attack_proba", "max"), ("rate", "sum"), ("rate", "max"),
        ("rate_known", "sum"), ("tot_size", "sum"), ("benign", "sum"), ("benign_rate", "sum"),
        ("benign_rate_sq", "sum"), ("benign_rate_known", "sum"),
        ("event_ns", "max")])
    fields = {
        "records": grouped["count_all"], "anomalies": grouped["anomaly_sum"],
        "ensemble_score_sum": grouped["ensemble_score_sum"], "ensemble_score_max": grouped["ensemble_score_max"],
        "ae_error_max": grouped["ae_error_max"], "if_score_max": grouped["if_score_max"],
        "clf_attack_proba_max": grouped["clf_attack_proba_max"], "rate_sum": grouped["rate_sum"],
        "rate_max": grouped["rate_max"], "rate_records": grouped["rate_known_sum"],
        "tot_size_sum": grouped["tot_size_sum"], "benign_records": grouped["benign_sum"],
        "benign_rate_sum": grouped["benign_rate_sum"], "benign_rate_sq_sum": grouped["benign_rate_sq_sum"],
        "benign_rate_records": grouped["benign_rate_known_sum"],
        "last_seen": pc.divide(pc.cast(grouped["event_ns_max"], pa.float64(), safe=False), 1e9),  # ~0.3 us steps
    }
    offset = schema.aggregate_offset_ns(batch_id, partition, interval_ns)
    columns = {tag: grouped[tag].combine_chunks() for tag in schema.AGGREGATE_TAGS}
    columns.update({name: values.combine_chunks().cast(pa.float64()) for name, values in fields.items()})
    columns["_time"] = pc.add(grouped["_start"], offset).combine_chunks()
    return columns


def encode_aggregates(table: "pa.Table", interval_ns: int, batch_id: int, partition: int) -> "pa.Array":
    """The ``device_traffic`` lines of one task's scored records (:func:`aggregate_columns`)."""
    import pyarrow as pa

    if table.num_rows == 0:
        return pa.array([], pa.string())
    columns = aggregate_columns(table, interval_ns, batch_id, partition)
    return encode_points(schema.AGGREGATE_MEASUREMENT, {tag: columns[tag] for tag in schema.AGGREGATE_TAGS},
                         {name: columns[name] for name in schema.AGGREGATE_FIELDS}, columns["_time"])


def request_body(lines: "pa.Array") -> bytes:
    """Newline-terminated lines (:func:`encode_points`) as one request body: the bytes the array
    already holds back to back, with no Python object per line."""
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
