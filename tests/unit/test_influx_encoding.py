"""The column-wise line-protocol encoder writes the same points as influxdb-client's serializer."""
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tests.helpers.influx import encode_lines, parse_line as _point, to_lines
from models import DEFAULT_BUNDLE_PATH
from schemas.flow_record import FEATURES, column_name

REPO = Path(__file__).resolve().parents[2]


def _rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "record_id": [f"rec-{i}" for i in range(n)],
        "source_id": [f"pump-{i % 4}:{i}" for i in range(n)],
        "event_time": pd.Timestamp("2026-01-02 03:04:05.123456", tz="UTC") + pd.to_timedelta(np.arange(n), "s"),
        "protocol": "TCP", "predicted_class": "Benign", "predicted_category": "Benign",
        "is_anomaly": rng.random(n) > 0.5, "severity": "none", "model_version": "v1",
        "ae_error": rng.random(n) * 1e-3, "if_score": rng.random(n), "clf_attack_proba": rng.random(n),
        "ensemble_score": rng.normal(size=n) * 1e6, "rate": rng.random(n) * 1e5, "header_length": 20.0,
        "tot_size": np.round(rng.random(n) * 1500), "iat": rng.random(n) * 1e8, "number": 9.5,
        "protocol_type": 6.0, "label": "Benign",
    })


def test_the_same_points_as_the_library_on_ordinary_rows() -> None:
    rows = _rows(300)
    expected, actual = to_lines(rows), encode_lines(rows)
    assert len(actual) == len(expected) == 300
    assert [_point(line) for line in actual] == [_point(line) for line in expected]


def test_escaping_missing_values_and_extreme_numbers_match_the_library() -> None:
    rows = _rows(6)
    rows["predicted_class"] = ["a b", "c,d", "e=f", "g\\h", "", None]
    rows["source_id"] = ["x y:1", None, "", "p,q:3", "r=s:4", "t"]
    rows["label"] = ['say "hi"', "back\\slash", None, "", "comma, space", "tab\tin"]
    rows["rate"] = [math.inf, -math.inf, math.nan, None, 1e-300, 1e300]
    rows["number"] = [-0.0, 5.0, 123456789.125, 1e20, 1e-7, 2 ** 60]
    expected, actual = to_lines(rows), encode_lines(rows)
    assert [_point(line) for line in actual] == [_point(line) for line in expected]
    assert "class=a\\ b" in actual[0] and 'label="say \\"hi\\""' in actual[0]
    assert "rate=" not in actual[0] and "rate=" not in actual[2]  # non-finite and null fields are left out


def test_real_scored_rows_match_the_library() -> None:
    from models.training.datasets import load_flows_pandas
    from udfs.model_cache import get_bundle
    from udfs.scoring import score_frame

    flows = load_flows_pandas([REPO / "data" / "ciciomt2024-sample"]).sample(500, random_state=1)
    flows = flows.reset_index(drop=True)
    scored = score_frame(flows[list(FEATURES)], get_bundle(DEFAULT_BUNDLE_PATH))
    rows = pd.concat([flows.rename(columns={f: column_name(f) for f in FEATURES}), scored], axis=1)
    rows["record_id"] = [f"r{i}" for i in range(len(rows))]
    rows["source_id"] = "Benign_test.pcap.csv:1"
    rows["event_time"] = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    rows["protocol"] = "TCP"
    if "label" not in rows:
        rows["label"] = "Benign"
    assert [_point(line) for line in encode_lines(rows)] == [_point(line) for line in to_lines(rows)]


def test_no_rows_no_lines() -> None:
    assert encode_lines(_rows(0)) == []


def test_a_request_body_is_the_lines_back_to_back_each_ending_in_a_newline() -> None:
    import pyarrow as pa

    from jobs.stream.influx_points import encode_table, request_body

    rows = _rows(40)
    for name in ("ae_error", "if_score", "clf_attack_proba", "ensemble_score", "rate", "header_length", "tot_size",
                 "iat", "number", "protocol_type", "label"):
        rows.loc[5, name] = None  # a point with no field is left out of the body too
    rows.loc[7, "label"] = 'new\nline "quoted"'
    lines = encode_lines(rows)
    assert len(lines) == 39
    table = pa.Table.from_pandas(rows, preserve_index=False)
    assert request_body(encode_table(table)) == ("\n".join(lines) + "\n").encode()
    encoded = encode_table(table)
    assert request_body(encoded.slice(10, 5)) == ("\n".join(lines[10:15]) + "\n").encode()  # offsets not at 0
    assert request_body(encode_table(table.slice(0, 0))) == b""


def test_times_without_a_zone_are_utc_and_text_numbers_are_read() -> None:
    rows = _rows(3)
    rows["event_time"] = rows["event_time"].dt.tz_localize(None)  # naive: UTC
    rows["rate"] = ["12.5", "not a number", "1e3"]
    expected, actual = to_lines(rows), encode_lines(rows)
    assert [_point(line) for line in actual] == [_point(line) for line in expected]
    assert "rate=12.5" in actual[0] and "rate=" not in actual[1] and "rate=1000" in actual[2]


def test_event_times_given_as_text_are_read_as_the_library_reads_them() -> None:
    rows = _rows(3)
    rows["event_time"] = ["2026-01-02T03:04:05.123456+00:00", "2026-01-02T03:04:05.500000+00:00",
                          "2026-01-02T03:04:07.000000+00:00"]
    expected, actual = to_lines(rows), encode_lines(rows)
    assert [_point(line) for line in actual] == [_point(line) for line in expected]
    # 03:04:05.123 and 03:04:05.500 UTC: 377 ms apart
    assert _point(actual[1])[3] // 1_000_000 - _point(actual[0])[3] // 1_000_000 == 377


def test_point_times_of_a_sliced_table_of_several_chunks_are_each_records_own() -> None:
    import pyarrow as pa

    from jobs.stream.influx_points import point_columns
    from schemas.influx import point_time_ns

    rows = _rows(40)
    rows["record_id"] = [f"rec-é-中-{i}" if i % 3 else f"r{i}" for i in range(40)]
    whole = pa.Table.from_pandas(rows, preserve_index=False)
    table = pa.concat_tables([whole.slice(0, 15), whole.slice(15)]).slice(5, 30)  # 2 chunks, offset 5
    assert table.column("record_id").num_chunks == 2
    expected = [point_time_ns(t.to_pydatetime(), r) for t, r in zip(rows["event_time"][5:35], rows["record_id"][5:35])]
    assert point_columns(table)["_time"].to_pylist() == expected
