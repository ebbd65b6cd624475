"""The per-table rows of one micro-batch, built on the driver from its scored Arrow table."""
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from jobs.stream import table_rows
from jobs.stream.delta_writer import DeltaAppender
from schemas.tables import TABLES

UTC = timezone.utc
BERLIN = "Europe/Berlin"
NOW = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)


def _collected() -> pa.Table:
    """A batch as Spark's toArrow hands it over: session time zone Europe/Berlin, one bad record;
    the columns this test does not look at are null."""
    times = [datetime(2026, 2, 28, 23, 59, 30, tzinfo=UTC), datetime(2026, 2, 28, 23, 59, 50, tzinfo=UTC),
             datetime(2026, 3, 1, 0, 0, 10, tzinfo=UTC), None]
    given = {
        "raw_value": pa.array([None, None, None, "{not json"]),
        "raw_bytes": pa.array([None, None, None, 9], pa.int32()),
        "raw_sha256": pa.array([None, None, None, "0b5d3b9a"]),  # any text: carried, not computed, here
        "origin": ["t", "t", "t", "t"], "partition": pa.array([0, 1, 0, 1], pa.int32()),
        "offset": pa.array([1, 2, 3, 4], pa.int64()),
        "ingest_time": pa.array([None, None, None, None], pa.timestamp("us", tz=BERLIN)),
        "quarantine_reason": pa.array([None, None, None, "malformed JSON"]),
        "record_id": ["a", "b", "c", None],
        "event_time": pa.array(times, pa.timestamp("us", tz=BERLIN)),
        "rate": [1.0, 3.0, 5.0, None], "tot_size": [10.0, None, 30.0, None],
        "protocol": ["TCP", "TCP", "TCP", "other"],
        "ensemble_score": [0.2, 0.6, 0.9, 0.1], "is_anomaly": [False, True, True, False],
        "predicted_class": ["Benign", "Benign", "Benign", "Benign"],
        "predicted_category": ["Benign", "Benign", "Benign", "Benign"],
        "model_version": ["v1"] * 4,
    }
    spec = TABLES["flows_scored"]
    scored = [c for c in spec.columns if c.name not in ("batch_id", "scored_at", "task_slot", "event_date")]
    return pa.table({**{c.name: pa.nulls(4, c.type) for c in scored}, **given})


def test_split_and_flows_scored_are_in_utc_with_every_field_nullable() -> None:
    good, bad = table_rows.split(_collected())
    assert good["record_id"].to_pylist() == ["a", "b", "c"] and bad["raw_value"].to_pylist() == ["{not json"]
    scored = table_rows.flows_scored(good, 7, NOW)
    assert not {"raw_value", "raw_bytes", "raw_sha256", "quarantine_reason"} & set(scored.column_names)
    assert scored.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert all(field.nullable for field in scored.schema)
    # 23:59:50 UTC is already 1 March in Berlin: the partition date is the UTC date
    assert [d.isoformat() for d in scored["event_date"].to_pylist()] == ["2026-02-28", "2026-02-28", "2026-03-01"]
    assert scored["batch_id"].to_pylist() == [7, 7, 7] and scored["scored_at"].to_pylist() == [NOW] * 3
    assert table_rows.alerts(scored)["record_id"].to_pylist() == ["b", "c"]


def test_quarantine_keeps_the_payload_and_falls_back_to_the_quarantine_date() -> None:
    _, bad = table_rows.split(_collected())
    rows = table_rows.quarantine(bad, 7, NOW).to_pylist()
    assert rows == [{"record_id": None, "reason": "malformed JSON", "raw_value": "{not json", "raw_bytes": 9,
                     "raw_sha256": "0b5d3b9a", "origin": "t",
                     "partition": 1, "offset": 4, "ingest_time": None, "batch_id": 7, "quarantined_at": NOW,
                     "ingest_date": NOW.date()}]


def test_traffic_per_minute_counts_averages_and_sums_each_group() -> None:
    good, _ = table_rows.split(_collected())
    rows = table_rows.traffic_per_minute(table_rows.flows_scored(good, 7, NOW), 7).to_pylist()
    by_key = {(r["minute"], r["is_anomaly"]): r for r in rows}
    assert len(rows) == 3
    first = by_key[(datetime(2026, 2, 28, 23, 59, tzinfo=UTC), False)]
    assert (first["records"], first["mean_rate"], first["sum_tot_size"]) == (1, 1.0, 10.0)
    second = by_key[(datetime(2026, 2, 28, 23, 59, tzinfo=UTC), True)]
    assert second["records"] == 1 and second["sum_tot_size"] is None  # a null sum stays null, as in SQL
    third = by_key[(datetime(2026, 3, 1, 0, 0, tzinfo=UTC), True)]
    assert (third["records"], third["mean_ensemble_score"], third["batch_id"]) == (1, 0.9, 7)


def _rows(start: int, n: int) -> pa.Table:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    return table_rows.in_utc(pa.table({
        "record_id": pa.array([f"r{i}" for i in range(start, start + n)], pa.string()),
        "event_time": pa.array([day + timedelta(seconds=i) for i in range(start, start + n)],
                               pa.timestamp("us", tz="UTC")),
        "event_date": pa.array([day.date()] * n, pa.date32()),
    }))


def test_appends_are_idempotent_per_batch_and_an_empty_batch_only_creates(tmp_path) -> None:
    from deltalake import DeltaTable

    appender = DeltaAppender(tmp_path, "app-1")
    assert appender.append("alerts", _rows(0, 0), 0) is True  # creates the table, no rows
    assert appender.append("alerts", _rows(0, 0), 1) is False  # exists and nothing to add: no commit
    assert appender.append("alerts", _rows(0, 3), 2) is True
    assert appender.append("alerts", _rows(0, 3), 2) is False  # the same batch again (a replay)
    assert appender.committed("alerts", 2) and not appender.committed("alerts", 3)
    # a fresh appender (a restarted job) reads the recorded transaction from the table
    restarted = DeltaAppender(tmp_path, "app-1")
    assert restarted.append("alerts", _rows(0, 3), 1) is False
    assert restarted.append("alerts", _rows(3, 2), 3) is True
    table = DeltaTable(str(tmp_path / "alerts"))
    assert table.version() == 2 and table.to_pyarrow_table().num_rows == 5
    assert table.metadata().partition_columns == ["event_date"]
    assert DeltaAppender(tmp_path, "another-app").append("alerts", _rows(5, 1), 0) is True


def test_a_table_of_an_earlier_version_gains_new_columns(tmp_path) -> None:
    from deltalake import DeltaTable

    appender = DeltaAppender(tmp_path, "app-1")
    appender.append("alerts", _rows(0, 2), 0)
    appender.append("alerts", _rows(2, 2).append_column("raw_bytes", pa.array([7, 8], pa.int64())), 1)
    rows = DeltaTable(str(tmp_path / "alerts")).to_pyarrow_table().sort_by("record_id").to_pylist()
    assert [(r["record_id"], r["raw_bytes"]) for r in rows] == [("r0", None), ("r1", None), ("r2", 7), ("r3", 8)]


def test_committed_files_bring_their_new_columns_into_an_older_table(tmp_path) -> None:
    """An alerts table from before ``explanation`` existed: files committed with it show it."""
    from deltalake import DeltaTable, write_deltalake

    from jobs.stream.delta_writer import write_data_files

    def alert_rows(ids: list[str], explanation: list) -> pa.Table:
        spec = TABLES["alerts"]
        rows = pa.table({c.name: pa.nulls(len(ids), c.type) for c in spec.columns}).cast(spec.arrow_schema())
        for name, values in (("record_id", ids), ("explanation", explanation),
                             ("event_date", [datetime(2026, 3, 1).date()] * len(ids))):
            rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, spec.arrow_schema().field(name).type))
        return rows

    write_deltalake(str(tmp_path / "alerts"), alert_rows(["r0", "r1"], [None, None]).drop_columns(["explanation"]),
                    partition_by=["event_date"])
    appender = DeltaAppender(tmp_path, "app-1")
    newer = alert_rows(["r2"], ["ensemble 9 > 1.03"])
    assert appender.commit_files("alerts", write_data_files(appender.tables, "alerts", newer, 1), 1)
    rows = DeltaTable(str(tmp_path / "alerts")).to_pyarrow_table().sort_by("record_id").to_pylist()
    assert [(r["record_id"], r["explanation"]) for r in rows] == [("r0", None), ("r1", None),
                                                                   ("r2", "ensemble 9 > 1.03")]


def test_a_batch_that_does_not_fit_the_table_fails_loudly(tmp_path) -> None:
    appender = DeltaAppender(tmp_path, "app-1")
    appender.append("alerts", _rows(0, 2), 0)
    wrong_type = _rows(2, 2).set_column(0, "record_id", pa.array([{"a": 1}, {"a": 2}]))
    with pytest.raises(Exception, match="(?i)schema|cast|type"):
        appender.append("alerts", wrong_type, 1)


def test_rows_are_conformed_to_their_table_or_refused() -> None:
    from jobs.stream.table_rows import TableLayoutError, conform

    naive = pa.table({name: pa.nulls(1, TABLES["batch_log"].arrow_schema().field(name).type)
                      for name in reversed(TABLES["batch_log"].column_names)})
    naive = naive.set_column(naive.schema.get_field_index("logged_at"), "logged_at",
                             pa.array([datetime(2026, 3, 1, 0, 30)], pa.timestamp("ns")))
    naive = naive.set_column(naive.schema.get_field_index("records"), "records", pa.array([3], pa.int32()))
    row = conform(naive, "batch_log")
    assert row.schema == TABLES["batch_log"].arrow_schema()  # its order and types
    assert row.to_pylist()[0]["logged_at"] == NOW and row.to_pylist()[0]["records"] == 3
    with pytest.raises(TableLayoutError, match=r"missing \['query_id'\], not defined \[\]"):
        conform(naive.drop_columns(["query_id"]), "batch_log")
    with pytest.raises(TableLayoutError, match=r"not defined \['surplus'\]"):
        conform(naive.append_column("surplus", pa.array([1])), "batch_log")


def test_devices_rows_and_their_merge_count_each_batch_once(tmp_path) -> None:
    from deltalake import DeltaTable

    def scored(ids, anomalous, minutes, severities) -> pa.Table:
        spec = TABLES["flows_scored"]
        n = len(ids)
        base = {c.name: pa.nulls(n, c.type) for c in spec.columns}
        base.update({"device_id": pa.array(ids, pa.string()), "device_ip": pa.array([None if i is None else f"10.0.0.{len(i)}" for i in ids]),
                     "is_anomaly": pa.array(anomalous), "severity": pa.array(severities),
                     "event_time": pa.array([NOW + timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC"))})
        return pa.table(base)

    first = table_rows.devices(scored(["a", "a", "bb", None], [False, True, False, True], [0, 2, 1, 5],
                                      ["none", "high", "none", "low"]), 1)
    rows = {r["device_id"]: r for r in first.to_pylist()}
    assert set(rows) == {"a", "bb"}  # a record without a device is no device
    assert (rows["a"]["records"], rows["a"]["anomalies"], rows["a"]["last_severity"]) == (2, 1, "high")
    assert rows["a"]["first_seen"] == NOW and rows["a"]["last_anomaly"] == NOW + timedelta(minutes=2)

    appender = DeltaAppender(tmp_path, "app-1")
    appender.merge_devices("devices", first, 1)
    second = table_rows.devices(scored(["a", "cc"], [False, False], [-3, 9], ["none", "none"]), 2)
    assert appender.merge_devices("devices", second, 2) and not appender.merge_devices("devices", second, 2)
    merged = {r["device_id"]: r for r in DeltaTable(str(tmp_path / "devices")).to_pyarrow_table().to_pylist()}
    assert set(merged) == {"a", "bb", "cc"}
    a = merged["a"]
    assert (a["records"], a["anomalies"]) == (3, 1)  # the replayed batch 2 counted once
    assert a["first_seen"] == NOW - timedelta(minutes=3) and a["last_seen"] == NOW + timedelta(minutes=2)
    assert a["last_severity"] == "high" and a["last_anomaly"] == NOW + timedelta(minutes=2)  # batch 2's record is older


def test_committed_files_carry_bounds_that_let_readers_skip_them(tmp_path) -> None:
    """Each data file the executors write says its event_time and batch_id range: a reader
    filtering on event_time opens only the files that can hold matching rows, and reads every row
    that matches (the maximum is rounded up, so a row at .9995 ms is not skipped)."""
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

    from jobs.stream.delta_writer import write_data_files

    spec = TABLES["flows_scored"]

    def batch(times: list[datetime]) -> pa.Table:
        rows = pa.table({c.name: pa.nulls(len(times), c.type) for c in spec.columns}).cast(spec.arrow_schema())
        for name, values in (("record_id", [t.isoformat() for t in times]), ("event_time", times),
                             ("event_date", [t.date() for t in times])):
            rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, spec.arrow_schema().field(name).type))
        return rows

    appender = DeltaAppender(tmp_path, "app-1")
    early = [NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)]
    late = [NOW, NOW + timedelta(microseconds=999)]
    for batch_id, times in enumerate((early, late)):
        assert appender.commit_files("flows_scored", write_data_files(appender.tables, "flows_scored", batch(times),
                                                                      batch_id), batch_id)
    table = DeltaTable(str(tmp_path / "flows_scored"))
    actions = pa.table(table.get_add_actions(flatten=True)).sort_by("max.event_time").to_pylist()
    assert [(a["min.event_time"], a["max.event_time"]) for a in actions] == [
        (early[0], early[1]), (NOW, NOW + timedelta(milliseconds=1))]
    assert [a["null_count.event_time"] for a in actions] == [0, 0]
    wanted = pads.field("event_time") >= NOW + timedelta(microseconds=999)
    dataset = table.to_pyarrow_dataset()
    assert len(list(dataset.get_fragments(filter=wanted))) == 1  # the early batch's file is not opened
    assert dataset.to_table(filter=wanted)["record_id"].to_pylist() == [late[1].isoformat()]
