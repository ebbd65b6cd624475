"""The incident rules on hand-made alerts: grouping per subject and category, the quiet time, closing
on the stream's event time, late alerts, splitting over tasks, and the table's exactly-once merge."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from jobs.stream import incidents
from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.executor import to_text
from jobs.stream.incident_store import commit_incidents, read_incidents
from schemas.tables import ALERTS, TABLES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
QUIET = timedelta(minutes=10)
NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)  # the wall clock: never used for the rules


def alerts(*rows: tuple) -> pa.Table:
    """``alerts`` rows from (minutes after T0, device_id, source_id, category, class, severity, score)."""
    spec = TABLES[ALERTS]
    n = len(rows)
    table = pa.table({c.name: pa.nulls(n, c.type) for c in spec.columns}).cast(spec.arrow_schema())
    given = {"event_time": [T0 + timedelta(minutes=r[0]) for r in rows], "device_id": [r[1] for r in rows],
             "source_id": [r[2] for r in rows], "predicted_category": [r[3] for r in rows],
             "predicted_class": [r[4] for r in rows], "severity": [r[5] for r in rows],
             "ensemble_score": [float(r[6]) for r in rows], "explanation": [f"why {r[6]}" for r in rows],
             "model_version": ["v3"] * n, "is_anomaly": [True] * n}
    for name, values in given.items():
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, spec.arrow_schema().field(name).type))
    return table


def run(batches: list[list[pa.Table]], now_minutes: list[float | None]) -> dict[str, dict]:
    """The rules over several batches (each a list of tasks' alerts), without a table: the open
    incidents carried from batch to batch as the table would hold them."""
    table: dict[str, dict] = {}
    for batch_id, (tasks, minutes) in enumerate(zip(batches, now_minutes)):
        latest = T0 + timedelta(minutes=minutes) if minutes is not None else None
        rows = [r for task in tasks for r in incidents.episodes(task, QUIET, latest).to_pylist()]
        open_rows = [dict(r) for r in table.values() if r["state"] == incidents.OPEN]
        for row in incidents.update(open_rows, rows, latest, QUIET, batch_id, NOW):
            table[row["incident_id"]] = row
    return table


def by_subject(table: dict[str, dict]) -> list[tuple]:
    return sorted((r["subject"], r["category"], r["alerts"], r["state"], r["first_seen"], r["last_seen"])
                  for r in table.values())


def test_subject_is_the_device_else_the_source_up_to_its_first_colon() -> None:
    rows = alerts((0, "mac:aa", "mac:aa", "DDoS", "DDoS-SYN", "high", 5),
                  (0, None, "TCP_IP-DDoS-SYN_test.pcap.csv:17", "DDoS", "DDoS-SYN", "high", 5),
                  (0, "", "pump-9", "DDoS", "DDoS-SYN", "high", 5))
    assert incidents.subjects(rows).to_pylist() == ["mac:aa", "TCP_IP-DDoS-SYN_test.pcap.csv", "pump-9"]


def test_two_devices_and_two_categories_give_one_incident_each_with_the_right_counts() -> None:
    a = alerts((0, "mac:a", "s", "DDoS", "DDoS-SYN", "low", 2), (1, "mac:a", "s", "DDoS", "DDoS-UDP", "critical", 30),
               (2, "mac:a", "s", "Recon", "Recon-Port_Scan", "low", 1.5), (3, "mac:b", "s", "DDoS", "DDoS-SYN", "high", 9))
    b = alerts((4, "mac:a", "s", "DDoS", "DDoS-SYN", "medium", 4), (5, "mac:b", "s", "DDoS", "DDoS-SYN", "low", 2))
    table = run([[a, b]], [5])  # two tasks of one batch
    assert by_subject(table) == [
        ("mac:a", "DDoS", 3, "open", T0, T0 + timedelta(minutes=4)),
        ("mac:a", "Recon", 1, "open", T0 + timedelta(minutes=2), T0 + timedelta(minutes=2)),
        ("mac:b", "DDoS", 2, "open", T0 + timedelta(minutes=3), T0 + timedelta(minutes=5))]
    ddos_a = next(r for r in table.values() if r["subject"] == "mac:a" and r["category"] == "DDoS")
    assert ddos_a["predicted_classes"] == ["DDoS-SYN", "DDoS-UDP"]
    assert (ddos_a["max_severity"], ddos_a["max_ensemble_score"], ddos_a["explanation"]) == ("critical", 30.0, "why 30")


def test_alerts_keep_an_incident_open_across_batches_and_a_quiet_gap_closes_it() -> None:
    batches = [[alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))],
               [alerts((8, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))],        # 8 min later: the same incident
               [alerts((17, "mac:a", "s", "DoS", "DoS-TCP", "high", 9))],      # 9 min later: still the same
               [alerts((40, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))]]       # 23 min of quiet: a new one
    table = run(batches, [0, 8, 17, 40])
    first, second = sorted(table.values(), key=lambda r: r["first_seen"])
    assert (first["alerts"], first["state"], first["closed_at"]) == (3, "closed", T0 + timedelta(minutes=27))
    assert (first["opened_batch"], first["batch_id"]) == (0, 3)
    assert (second["alerts"], second["state"], second["opened_batch"]) == (1, "open", 3)


def test_an_incident_closes_when_later_records_show_the_quiet_time_passed() -> None:
    quiet_device = alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))
    table = run([[quiet_device], [], []], [0, 10, 10.01])  # other records' times: 10 min is not past yet
    (only,) = table.values()
    assert only["state"] == "closed" and only["batch_id"] == 2
    assert run([[quiet_device], []], [0, 10])[only["incident_id"]]["state"] == "open"
    assert run([[quiet_device], []], [0, None])[only["incident_id"]]["state"] == "open"  # no records: no time


def test_a_gap_inside_one_task_splits_and_tasks_merge_back() -> None:
    one_task = alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2), (30, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))
    assert by_subject(run([[one_task]], [30]))[0][2:4] == (1, "closed")
    # the same alerts spread over tasks, with alerts between them in another task: one incident
    spread = [alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2), (18, "mac:a", "s", "DoS", "DoS-TCP", "low", 2)),
              alerts((9, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))]
    assert [r[2:4] for r in by_subject(run([spread], [18]))] == [(3, "open")]


def test_late_alerts_join_within_the_quiet_time_else_form_a_closed_incident() -> None:
    batches = [[alerts((60, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))],
               [alerts((55, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))],   # 5 min before: joins, first_seen moves
               [alerts((10, "mac:a", "s", "DoS", "DoS-TCP", "low", 2))]]   # long before: its own, closed
    table = run(batches, [60, 60, 60])
    assert by_subject(table) == [
        ("mac:a", "DoS", 1, "closed", T0 + timedelta(minutes=10), T0 + timedelta(minutes=10)),
        ("mac:a", "DoS", 2, "open", T0 + timedelta(minutes=55), T0 + timedelta(minutes=60))]


def _payload(rows: pa.Table, minutes: float) -> str:
    return to_text(incidents.episodes(rows, QUIET, T0 + timedelta(minutes=minutes)))


def test_the_table_counts_each_batch_once(tmp_path) -> None:
    appender = DeltaAppender(tmp_path, "app-1")
    first = [_payload(alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2), (1, "mac:b", "s", "DoS", "DoS-TCP", "low", 2)), 1)]
    assert commit_incidents(appender, first, 0, QUIET, NOW)
    second = [_payload(alerts((3, "mac:a", "s", "DoS", "DoS-TCP", "high", 9)), 3),
              _payload(alerts((2, "mac:b", "s", "DoS", "DoS-TCP", "low", 2)), 2)]
    assert commit_incidents(appender, second, 1, QUIET, NOW)
    assert not commit_incidents(appender, second, 1, QUIET, NOW)  # the batch replayed: nothing counted twice
    restarted = DeltaAppender(tmp_path, "app-1")  # a restarted driver reads the transaction from the table
    assert not commit_incidents(restarted, second, 1, QUIET, NOW)
    assert commit_incidents(restarted, [_payload(alerts(), 30)], 2, QUIET, NOW)  # only time passes: both close
    rows = sorted(read_incidents(restarted).to_pylist(), key=lambda r: r["subject"])
    assert [(r["subject"], r["alerts"], r["state"], r["max_severity"], r["explanation"]) for r in rows] == [
        ("mac:a", 2, "closed", "high", "why 9"), ("mac:b", 2, "closed", "low", "why 2")]
    assert all(r["batch_id"] == 2 and r["opened_batch"] == 0 for r in rows)


def test_the_driver_keeps_the_open_incidents_between_its_own_commits(tmp_path, monkeypatch) -> None:
    """The open incidents kept from the driver's last commit are the table's; the table is read once
    (the first batch that finds it), and again only after a commit not the driver's own."""
    from deltalake import DeltaTable

    from jobs.stream.incident_store import open_incidents

    reads: list[DeltaAppender] = []
    real_read = DeltaAppender.read
    monkeypatch.setattr(DeltaAppender, "read", lambda self, name: reads.append(self) or real_read(self, name))
    appender = DeltaAppender(tmp_path, "app-1")
    low, high = ("DoS", "DoS-TCP", "low", 2), ("DoS", "DoS-TCP", "high", 9)
    batches = [[_payload(alerts((0, "mac:a", "s", *low), (1, "mac:b", "s", *low)), 1)],   # two open
               [_payload(alerts((3, "mac:a", "s", *high)), 3)],                            # one extended
               [_payload(alerts((14, "mac:a", "s", *low)), 14)],                           # mac:b closes
               [_payload(alerts((40, "mac:c", "s", *low)), 40)],                           # mac:a closes, mac:c opens
               [_payload(alerts(), 41)]]                                                  # nothing changes

    def by_id(rows: list[dict]) -> list[dict]:
        return sorted(rows, key=lambda r: r["incident_id"])

    driver_reads = []
    for batch_id, payloads in enumerate(batches):
        before = len(reads)
        commit_incidents(appender, payloads, batch_id, QUIET, NOW)
        driver_reads.append(len(reads) - before)
        version = appender.version("incidents")
        kept = open_incidents(appender, version)
        read = open_incidents(DeltaAppender(tmp_path, "app-1"), version)  # a fresh driver reads the table
        assert by_id(kept) == by_id(read) and read
    assert [r["subject"] for r in kept] == ["mac:c"]
    assert driver_reads == [0, 1, 0, 0, 0]  # batch 1 read what batch 0 created; later batches kept it

    # another commit (a maintenance tool's): the next batch reads the table again
    DeltaTable(str(tmp_path / "incidents")).alter.set_table_properties({"delta.logRetentionDuration": "interval 30 days"})
    before = len(reads)
    assert commit_incidents(appender, [_payload(alerts((42, "mac:c", "s", *high)), 42)], 5, QUIET, NOW)
    assert len(reads) - before == 1
    assert [(r["subject"], r["alerts"], r["max_severity"]) for r in read_incidents(appender).to_pylist()
            if r["state"] == "open"] == [("mac:c", 2, "high")]


def test_quiet_time_is_configured_and_must_be_positive() -> None:
    from jobs.config import ConfigError, config_from_mapping

    assert config_from_mapping({}).stream.incident_quiet == timedelta(minutes=10)
    assert config_from_mapping({"stream": {"incident_quiet_time": "90s"}}).stream.incident_quiet == timedelta(seconds=90)
    with pytest.raises(ConfigError, match="incident_quiet_time"):
        config_from_mapping({"stream": {"incident_quiet_time": "0s"}})


def test_outputs_hear_of_an_incident_when_it_opens_worsens_closes_and_every_so_often() -> None:
    """Rule 4: an incident that takes alerts every minute for 40 minutes is queued for the outputs
    when it opens, when its severity rises, every 15 minutes of alert time, and when it closes;
    the other changes are in the incidents table only."""
    every = timedelta(minutes=15)
    table: dict[str, dict] = {}
    notified: list[tuple[int, str, str]] = []
    for minute in range(41):
        severity = "high" if minute >= 20 else "low"
        task = alerts((minute, "mac:a", "s", "DoS", "DoS-TCP", severity, 2 + minute))
        rows = incidents.episodes(task, QUIET, T0 + timedelta(minutes=minute)).to_pylist()
        open_rows = [dict(r) for r in table.values() if r["state"] == incidents.OPEN]
        for row in incidents.update(open_rows, rows, T0 + timedelta(minutes=minute), QUIET, minute, NOW, every):
            table[row["incident_id"]] = row
            if row.get("notified_batch") == minute:
                notified.append((minute, row["max_severity"], row["state"]))
    closing = incidents.update([dict(r) for r in table.values()], [], T0 + timedelta(minutes=60), QUIET, 41, NOW, every)
    assert [(r["notified_batch"], r["state"]) for r in closing] == [(41, "closed")]
    # opened at 0; 15 minutes later; more severe at 20; 15 minutes after that at 35; closed
    assert notified == [(0, "low", "open"), (15, "low", "open"), (20, "high", "open"), (35, "high", "open")]
    # without update_every (0), every change is worth a message
    every_change = incidents.update([dict(r) for r in table.values()], incidents.episodes(
        alerts((40, "mac:a", "s", "DoS", "DoS-TCP", "high", 2)), QUIET, None).to_pylist(), None, QUIET, 42, NOW)
    assert [(r["notified_batch"], r["state"]) for r in every_change] == [(42, "open")]


def test_an_incidents_table_from_before_notifications_gains_their_columns(tmp_path) -> None:
    """A table written by an earlier version (no notified_* columns) takes the merge that brings them."""
    from deltalake import DeltaTable

    appender = DeltaAppender(tmp_path, "app-1")
    first = [_payload(alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2)), 1)]
    old = incidents.incident_rows(incidents.update([], [r for p in first for r in incidents.episodes(
        alerts((0, "mac:a", "s", "DoS", "DoS-TCP", "low", 2)), QUIET, None).to_pylist()], None, QUIET, 0, NOW))
    appender.append("incidents", old.drop_columns(["notified_batch", "notified_severity", "notified_seen"]), 0)
    later = [_payload(alerts((1, "mac:a", "s", "DoS", "DoS-TCP", "high", 9)), 1)]
    assert commit_incidents(appender, later, 1, QUIET, NOW, timedelta(minutes=15))
    rows = DeltaTable(str(tmp_path / "incidents")).to_pyarrow_table().to_pylist()
    assert [(r["alerts"], r["max_severity"], r["notified_batch"], r["notified_severity"]) for r in rows] == [
        (2, "high", 1, "high")]  # the table had no record of a notification: this update is one
