"""``iomt-ad incidents`` on real Delta tables: alerts and incidents written by the stream's own
writers (DeltaAppender, commit_incidents), then every lifecycle command through ``jobs.cli.main``,
checked in the ``incident_actions`` and ``mutes`` tables read back with delta-rs."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from jobs.cli import main
from jobs.incidents.actions_store import IncidentBook
from jobs.incidents.lifecycle import notification_suppressed
from jobs.storage import TablesLocation
from schemas.tables import INCIDENT_ACTIONS, MUTES
from tests.helpers.incidents import write_incidents


@pytest.fixture()
def tables(tmp_path: Path) -> Path:
    return write_incidents(tmp_path)


def cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["incidents", *argv])
    return code, capsys.readouterr().out


def book_of(tables: Path) -> IncidentBook:
    return IncidentBook(TablesLocation.of(tables))


def ids(tables: Path) -> dict[tuple[str, str, str], str]:
    return {(r["subject"], r["category"], r["state"]): r["incident_id"] for r in book_of(tables).incidents()}


def test_list_shows_the_open_incidents_most_severe_first_and_all_with_all(tables, capsys) -> None:
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["subject"], r["category"], r["max_severity"], r["alerts"], r["status"]) for r in rows] == [
        ("mac:a", "DDoS", "critical", 3, "new"), ("mac:b", "Recon", "low", 1, "new")]
    code, out = cli(capsys, "list", "--tables", str(tables), "--all", "--format", "json")
    assert sorted(json.loads(line)["state"] for line in out.splitlines()) == ["closed", "open", "open"]
    code, out = cli(capsys, "list", "--tables", str(tables))
    assert code == 0 and "mac:a" in out and "critical" in out


def test_show_prints_the_incident_and_exactly_its_alerts(tables, capsys) -> None:
    ddos = ids(tables)[("mac:a", "DDoS", "open")]
    code, out = cli(capsys, "show", ddos[:8], "--tables", str(tables), "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["incident"]["incident_id"] == ddos and shown["status"]["status"] == "new"
    # its three alerts, newest first: not mac:b's Recon alert between them, nor the closed incident's
    assert [(a["severity"], a["predicted_class"]) for a in shown["alerts"]] == [
        ("high", "DDoS-SYN"), ("critical", "DDoS-UDP"), ("medium", "DDoS-SYN")]
    closed = ids(tables)[("mac:a", "DDoS", "closed")]
    code, out = cli(capsys, "show", closed, "--tables", str(tables))
    assert code == 0 and "alerts (newest 1 of 1)" in out


def test_ack_resolve_reopen_and_comment_are_recorded_with_who_and_the_status_follows(tables, capsys) -> None:
    ddos = ids(tables)[("mac:a", "DDoS", "open")]
    assert cli(capsys, "ack", ddos[:10], "--tables", str(tables), "--who", "alice", "--note", "on it")[0] == 0
    assert cli(capsys, "comment", ddos, "--tables", str(tables), "--who", "bob", "--note", "pump 7, ward B")[0] == 0
    assert cli(capsys, "resolve", ddos, "--tables", str(tables), "--who", "alice")[0] == 0
    table = DeltaTable(str(tables / INCIDENT_ACTIONS)).to_pyarrow_table().sort_by("at")
    assert [(r["incident_id"], r["action"], r["who"], r["note"], r["incident_alerts"], r["via"])
            for r in table.to_pylist()] == [(ddos, "ack", "alice", "on it", 3, "cli"),
                                            (ddos, "comment", "bob", "pump 7, ward B", 3, "cli"),
                                            (ddos, "resolve", "alice", None, 3, "cli")]
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    # resolved: no longer listed; listed again once reopened
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert ddos not in out
    assert cli(capsys, "reopen", ddos, "--tables", str(tables), "--who", "carol")[0] == 0
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert {json.loads(line)["incident_id"]: json.loads(line)["status"] for line in out.splitlines()}[ddos] == "reopened"


def test_unknown_or_ambiguous_ids_and_missing_reasons_are_user_errors(tables, capsys) -> None:
    assert cli(capsys, "ack", "ffffffffff", "--tables", str(tables))[0] == 2
    assert cli(capsys, "ack", "abc", "--tables", str(tables))[0] == 2  # too short to be sure
    assert cli(capsys, "mute", "--device", "mac:a", "--for", "0m", "--reason", "x", "--tables", str(tables))[0] == 2
    assert cli(capsys, "mute", "--device", "mac:a", "--for", "2h", "--reason", " ", "--tables", str(tables))[0] == 2
    assert cli(capsys, "maintenance", "--device", "mac:a", "--from", "2026-03-01T10:00", "--to", "2026-03-01T09:00",
               "--reason", "x", "--tables", str(tables))[0] == 2
    assert cli(capsys, "unmute", "--device", "mac:zz", "--tables", str(tables))[0] == 2
    assert not (tables / INCIDENT_ACTIONS).exists() and not (tables / MUTES).exists()


def test_mute_a_device_then_unmute_it_and_a_maintenance_window(tables, capsys) -> None:
    code, out = cli(capsys, "mute", "--device", "mac:a", "--for", "2h", "--reason", "firmware update",
                    "--who", "alice", "--tables", str(tables))
    assert code == 0 and "muted device mac:a" in out
    rows = DeltaTable(str(tables / MUTES)).to_pyarrow_table().to_pylist()
    assert [(r["kind"], r["scope"], r["value"], r["reason"], r["who"]) for r in rows] == [
        ("mute", "device", "mac:a", "firmware update", "alice")]
    assert rows[0]["ends"] - rows[0]["starts"] == timedelta(hours=2)
    now = datetime.now(timezone.utc)
    book = book_of(tables)
    ddos = next(r for r in book.incidents() if r["subject"] == "mac:a" and r["state"] == "open")
    recon = next(r for r in book.incidents() if r["subject"] == "mac:b")
    mutes, windows = book.suppressions(now)
    assert notification_suppressed(ddos, mutes, windows, now).startswith("muted device mac:a")
    assert notification_suppressed(recon, mutes, windows, now) is None
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert [bool(json.loads(line)["muted"]) for line in out.splitlines()] == [True, False]

    assert cli(capsys, "unmute", "--device", "MAC:A", "--tables", str(tables), "--who", "bob")[0] == 0
    mutes, windows = book.suppressions(datetime.now(timezone.utc))
    assert mutes == [] and notification_suppressed(ddos, mutes, windows, datetime.now(timezone.utc)) is None

    start, end = now + timedelta(hours=1), now + timedelta(hours=3)
    assert cli(capsys, "maintenance", "--device", "mac:b", "--from", start.isoformat(), "--to", end.isoformat(),
               "--reason", "ward B rewiring", "--tables", str(tables))[0] == 0
    assert book.suppressions(datetime.now(timezone.utc)) == ([], [])  # the mute ended, the window not begun
    mutes, windows = book.suppressions(start + timedelta(minutes=1))
    assert notification_suppressed(recon, mutes, windows, start).startswith("maintenance window of device mac:b")
    code, out = cli(capsys, "mutes", "--tables", str(tables))
    assert "maintenance" in out and "mac:a" not in out  # the ended mute is listed only with --all
    code, out = cli(capsys, "mutes", "--tables", str(tables), "--all")
    assert "mac:a" in out
    kinds = pc.value_counts(DeltaTable(str(tables / MUTES)).to_pyarrow_table()["kind"]).to_pylist()
    assert sorted((k["values"], k["counts"]) for k in kinds) == [("maintenance", 1), ("mute", 1), ("unmute", 1)]
