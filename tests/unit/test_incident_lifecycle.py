"""The lifecycle rules on hand-made incidents: status from the latest action, a resolved incident
reopened by new alerts, which mutes and maintenance windows match, expiry and early ends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from jobs.incidents import lifecycle
from jobs.incidents.lifecycle import Action, Mute, incident_status, mutes_from_rows, notification_suppressed
from jobs.incidents.overview import overview

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
INCIDENT = {"incident_id": "a" * 32, "subject": "mac:aa", "category": "DDoS", "device_id": "mac:aa",
            "device_mac": "AA:BB:CC:00:00:01", "device_ip": "10.0.0.7", "source_id": "mac:aa",
            "predicted_classes": ["DDoS-SYN", "DDoS-UDP"], "alerts": 5, "state": "open", "max_severity": "high",
            "max_ensemble_score": 9.0, "last_seen": T0}


def act(action: str, minutes: float, who: str = "alice", alerts: int = 5, incident: str = "a" * 32) -> Action:
    return Action(incident, action, who, T0 + timedelta(minutes=minutes), None, alerts)


def mute(scope: str, value: str, start: float = 0, end: float = 60, kind: str = "mute", ended: float | None = None,
         created: float = 0) -> Mute:
    return Mute(f"{scope}-{value}-{start}", kind, scope, value, T0 + timedelta(minutes=start),
                T0 + timedelta(minutes=end), "firmware update", "bob", T0 + timedelta(minutes=created),
                ended=None if ended is None else T0 + timedelta(minutes=ended))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_without_actions_an_incident_is_new_and_comments_change_nothing() -> None:
    assert incident_status(INCIDENT, []).status == "new"
    assert incident_status(INCIDENT, [act("comment", 1)]).status == "new"
    assert incident_status(INCIDENT, [act("ack", 1, incident="b" * 32)]).status == "new"  # another incident's


def test_the_latest_action_by_time_sets_the_status_whatever_the_row_order() -> None:
    status = incident_status(INCIDENT, [act("resolve", 5, "carol"), act("ack", 1), act("comment", 9)])
    assert (status.status, status.who, status.at) == ("resolved", "carol", at(5))
    assert incident_status(INCIDENT, [act("ack", 1), act("resolve", 2), act("reopen", 3, "dan")]).status == "reopened"
    # the same time: the later row wins
    assert incident_status(INCIDENT, [act("ack", 4), act("resolve", 4)]).status == "resolved"


def test_a_resolved_incident_the_stream_adds_alerts_to_is_reopened_by_the_stream() -> None:
    resolved = [act("resolve", 5, alerts=5)]
    assert incident_status(INCIDENT, resolved).status == "resolved"
    status = incident_status({**INCIDENT, "alerts": 7}, resolved)
    assert (status.status, status.who) == ("reopened", "stream")
    assert "2 alerts since alice resolved it" == status.note
    # acknowledged stays acknowledged when alerts come: someone is on it
    assert incident_status({**INCIDENT, "alerts": 7}, [act("ack", 5, alerts=5)]).status == "acknowledged"


def test_a_device_mute_matches_the_device_by_id_mac_or_ip_until_it_expires() -> None:
    for value in ("mac:aa", "aa:bb:cc:00:00:01", "10.0.0.7"):
        reason = notification_suppressed(INCIDENT, [mute("device", value)], [], at(30))
        assert reason == f"muted device {value} until 2026-03-01 13:00 UTC by bob: firmware update"
    assert notification_suppressed(INCIDENT, [mute("device", "mac:bb")], [], at(30)) is None
    assert notification_suppressed(INCIDENT, [mute("device", "mac:aa")], [], at(60)) is None  # expired
    assert notification_suppressed(INCIDENT, [mute("device", "mac:aa", start=10)], [], at(5)) is None  # not yet


def test_an_unmute_ends_a_mute_early() -> None:
    rows = [{"mute_id": "m1", "kind": "mute", "scope": "device", "value": "mac:aa", "starts": at(0), "ends": at(60),
             "reason": "r", "who": "bob", "created": at(0)},
            {"mute_id": "m1", "kind": "unmute", "scope": "device", "value": "mac:aa", "starts": None, "ends": None,
             "reason": None, "who": "carol", "created": at(20)}]
    mutes = mutes_from_rows(rows)
    assert [(m.mute_id, m.ended) for m in mutes] == [("m1", at(20))]
    assert notification_suppressed(INCIDENT, mutes, [], at(19)) is not None
    assert notification_suppressed(INCIDENT, mutes, [], at(20)) is None


def test_a_class_mute_silences_an_incident_only_when_all_its_classes_are_muted() -> None:
    assert notification_suppressed(INCIDENT, [mute("class", "DDoS-SYN")], [], at(1)) is None
    both = [mute("class", "DDoS-SYN"), mute("class", "ddos-udp")]
    assert notification_suppressed(INCIDENT, both, [], at(1)).startswith("muted class DDoS-SYN")
    assert notification_suppressed({**INCIDENT, "predicted_classes": []}, both, [], at(1)) is None


def test_category_and_source_mutes() -> None:
    assert notification_suppressed(INCIDENT, [mute("category", "ddos")], [], at(1)) is not None
    assert notification_suppressed(INCIDENT, [mute("category", "Recon")], [], at(1)) is None
    replayed = {**INCIDENT, "subject": "TCP_IP-DDoS-SYN_test.pcap.csv", "device_id": None, "device_mac": None,
                "device_ip": None, "source_id": "TCP_IP-DDoS-SYN_test.pcap.csv:17"}
    assert notification_suppressed(replayed, [mute("source", "TCP_IP-DDoS-SYN_test.pcap.csv")], [], at(1))
    assert notification_suppressed(replayed, [mute("device", "TCP_IP-DDoS-SYN_test.pcap.csv")], [], at(1))
    assert notification_suppressed(replayed, [mute("source", "TCP_IP")], [], at(1)) is None
    assert notification_suppressed(INCIDENT, [mute("scope-of-the-future", "mac:aa")], [], at(1)) is None


def test_a_maintenance_window_silences_only_between_its_times_and_a_mute_is_named_first() -> None:
    window = mute("device", "mac:aa", start=120, end=180, kind="maintenance")
    assert notification_suppressed(INCIDENT, [], [window], at(119)) is None
    assert notification_suppressed(INCIDENT, [], [window], at(120)).startswith("maintenance window of device mac:aa")
    assert notification_suppressed(INCIDENT, [], [window], at(180)) is None
    both = notification_suppressed(INCIDENT, [mute("category", "DDoS", end=200, created=150)], [window], at(150))
    assert both.startswith("muted category DDoS")


def test_the_overview_lists_open_unresolved_incidents_most_severe_first_with_status_and_mute() -> None:
    low = {**INCIDENT, "incident_id": "b" * 32, "max_severity": "low", "subject": "mac:bb", "device_id": "mac:bb",
           "device_mac": None, "device_ip": None}
    critical = {**INCIDENT, "incident_id": "c" * 32, "max_severity": "critical", "subject": "mac:cc",
                "device_id": "mac:cc", "device_mac": None, "device_ip": None}
    closed = {**INCIDENT, "incident_id": "d" * 32, "state": "closed"}
    resolved = {**INCIDENT, "incident_id": "e" * 32}
    actions = [act("ack", 1, "carol", incident="c" * 32), act("resolve", 2, incident="e" * 32)]
    rows = overview([low, INCIDENT, closed, critical, resolved], actions, [mute("device", "mac:aa")], at(5))
    assert [(r["incident_id"][0], r["status"], r["status_by"], bool(r["muted"])) for r in rows] == [
        ("c", "acknowledged", "carol", False), ("a", "new", "", True), ("b", "new", "", False)]
    everything = overview([low, INCIDENT, closed, critical, resolved], actions, [], at(5), everything=True)
    assert {r["incident_id"][0] for r in everything} == set("abcde")
    assert lifecycle.SCOPES == ("device", "source", "class", "category")
