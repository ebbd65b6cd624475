"""The alert outputs deliver the outbox to real receivers: rsyslogd (plain TCP and TLS with client
certificates), HTTP servers (OCSF webhook, Slack webhook) and the Kafka broker. Each receiver is
down when the notifier starts (its port closed): the notifier fails, backs off, and once the
receiver is up everything arrives, in order, each update once or repeated with the same id. A
notifier started again resumes from the ``deliveries`` table: it sends only what is new. A receiver
that hangs holds its own output only."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.config import config_from_mapping
from jobs.outputs.base import build_outputs
from jobs.outputs.notifier import DELIVERED, SUPPRESSED, Notifier, OutboxStore
from jobs.outputs.outbox import update_id
from jobs.storage import TablesLocation
from schemas.tables import DELIVERIES
from tests.helpers.http_receiver import HttpReceiver
from tests.helpers.incident_updates import HOSTILE_EXPLANATION, incident, parse_cef, queue_batches

FAST = {"poll_interval": timedelta(seconds=0.2), "retry_initial": timedelta(seconds=0.2),
        "retry_max": timedelta(seconds=1)}
# batch 1 opens incidents 1 and 2; batch 2 extends 1 and closes 2: four updates
BATCHES = {1: [incident(1, 1), incident(2, 1)],
           2: [incident(1, 2, opened_batch=1, alerts=99), incident(2, 2, opened_batch=1, state="closed")]}
EXPECTED = [update_id(f"{1:032x}", 1), update_id(f"{2:032x}", 1), update_id(f"{1:032x}", 2),
            update_id(f"{2:032x}", 2)]


def _notifier(tables: Path, outputs: dict, **filter_hook) -> Notifier:
    config = config_from_mapping({"stream": {"tables_dir": str(tables)}, "alerts": {"outputs": outputs}})
    return Notifier(OutboxStore(TablesLocation.of(tables)), build_outputs(config), **FAST, **filter_hook)


def _wait_failing(notifier: Notifier, name: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while notifier.failures[name] < 2:
        assert time.monotonic() < deadline, f"{name} never failed against a closed port"
        time.sleep(0.1)


def _in_order_without_loss(ids: list[str]) -> None:
    """Every expected update arrived; a repeat only ever carries an id already seen; first arrivals in order."""
    assert set(ids) == set(EXPECTED), ids
    firsts = list(dict.fromkeys(ids))
    assert firsts == EXPECTED


@pytest.mark.rsyslog
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_syslog_cef_reaches_rsyslog_after_it_comes_back(tmp_path: Path, tls: bool) -> None:
    from tests.helpers.tls import make_pki
    from tests.services.rsyslog_server import RsyslogServer

    pki = make_pki(tmp_path / "pki") if tls else None
    server = RsyslogServer(pki)
    queue_batches(tmp_path / "delta", BATCHES)
    syslog = {"enabled": True, "host": "localhost" if tls else "127.0.0.1", "port": server.port, "tls": tls,
              "hostname": "iomt-test"}
    if pki is not None:
        syslog |= {"ca_file": str(pki.ca_cert), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    notifier = _notifier(tmp_path / "delta", {"syslog": syslog}).start()
    try:
        _wait_failing(notifier, "syslog")  # rsyslogd not started: the port is closed
        assert server.received() == []
        server.start()
        rows = server.wait_for(len(EXPECTED))
        time.sleep(1.0)  # nothing more than the four (or repeats of them) may arrive
        rows = server.received()
    finally:
        notifier.stop()
        server.close()
    ids = []
    for row in rows:
        assert (row["app-name"], row["msgid"], row["hostname"], row["protocol-version"]) == \
            ("iomt-ad", "incident", "iomt-test", "1")
        header, pairs = parse_cef(row["msg"])
        assert header[:3] == ["CEF:0", "IoMT-AD", "iomt-ad"]
        assert f'updateId="{pairs["externalId"]}"' in row["structured-data"]
        assert pairs["msg"] == HOSTILE_EXPLANATION
        assert int(row["pri"]) == 16 * 8 + 3  # local0, high -> error
        ids.append(pairs["externalId"])
    _in_order_without_loss(ids)
    closed = [parse_cef(r["msg"]) for r in rows if parse_cef(r["msg"])[1]["externalId"] == EXPECTED[3]][0]
    assert closed[1]["act"] == "closed" and closed[1]["outcome"] == "closed"


def test_webhooks_deliver_ocsf_and_slack_after_an_outage_and_resume(tmp_path: Path) -> None:
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding

    ocsf, slack = HttpReceiver(), HttpReceiver()
    tables = tmp_path / "delta"
    appender = queue_batches(tables, BATCHES)
    outputs = {"ocsf_webhook": {"enabled": True, "url": ocsf.url, "token_env": "IOMT_TEST_HOOK_TOKEN"},
               "slack_webhook": {"enabled": True, "url_env": "IOMT_TEST_SLACK_URL", "timeout_seconds": 2}}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IOMT_TEST_HOOK_TOKEN", "s3cret")
        env.setenv("IOMT_TEST_SLACK_URL", slack.url)
        notifier = _notifier(tables, outputs).start()
        try:
            _wait_failing(notifier, "ocsf_webhook")
            _wait_failing(notifier, "slack_webhook")
            ocsf.start()
            slack.start()
            ocsf.wait_for(len(EXPECTED))
            slack.wait_for(len(EXPECTED))
        finally:
            notifier.stop()
        # started again: it resumes from the deliveries table and sends only the new update
        queue_batches(tables, {3: [incident(1, 3, opened_batch=1, alerts=120)]})
        notifier = _notifier(tables, outputs).start()
        try:
            ocsf.wait_for(len(EXPECTED) + 1)
            slack.wait_for(len(EXPECTED) + 1)
            time.sleep(1.0)
        finally:
            notifier.stop()
            ocsf.stop()
            slack.stop()
    expected = [*EXPECTED, update_id(f"{1:032x}", 3)]
    for receiver in (ocsf, slack):
        keys = [r["headers"]["Idempotency-Key"] for r in receiver.received()]
        assert set(keys) == set(expected) and list(dict.fromkeys(keys)) == expected
    for request in ocsf.received():
        assert request["headers"]["Authorization"] == "Bearer s3cret"
        finding = request["json"]
        DetectionFinding.model_validate(finding)
        assert finding["metadata"]["uid"] == request["headers"]["Idempotency-Key"]
        assert finding["class_uid"] == 2004
    assert "Authorization" not in slack.received()[0]["headers"]
    assert all(r["json"]["text"].startswith("IoMT incident") and r["json"]["blocks"] for r in slack.received())
    recorded = appender.read(DELIVERIES).to_pylist()
    assert {(r["output"], r["update_id"]) for r in recorded} == {(o, u) for o in ("ocsf_webhook", "slack_webhook")
                                                                 for u in expected}


def test_a_hanging_receiver_holds_only_its_own_output_and_the_filter_suppresses(tmp_path: Path) -> None:
    hanging, fine = HttpReceiver().start(), HttpReceiver().start()
    hanging.hang.set()
    tables = tmp_path / "delta"
    appender = queue_batches(tables, BATCHES)
    muted = f"{2:032x}"
    outputs = {"ocsf_webhook": {"enabled": True, "url": hanging.url, "timeout_seconds": 30},
               "slack_webhook": {"enabled": True, "url": fine.url}}
    notifier = _notifier(tables, outputs, notify_filter=lambda u: "muted" if u["incident_id"] == muted else None).start()
    try:
        started = time.monotonic()
        received = fine.wait_for(2, timeout_s=10)
        assert time.monotonic() - started < 10
        time.sleep(0.5)
        assert [r["headers"]["Idempotency-Key"] for r in fine.received()] == [EXPECTED[0], EXPECTED[2]]
        assert hanging.received() == []  # its first request still hangs
        hanging.release()
        hanging.wait_for(2, timeout_s=20)
    finally:
        notifier.stop()
        hanging.stop()
        fine.stop()
    assert len(received) == 2
    statuses = {(r["output"], r["update_id"]): r["status"] for r in appender.read(DELIVERIES).to_pylist()}
    assert statuses[("slack_webhook", EXPECTED[1])] == SUPPRESSED
    assert statuses[("slack_webhook", EXPECTED[0])] == DELIVERED


@pytest.mark.kafka
def test_kafka_output_sends_ocsf_keyed_by_incident(kafka_broker, tmp_path: Path) -> None:
    from confluent_kafka import Consumer
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding

    topic = "incident-findings"
    kafka_broker.create_topic(topic, partitions=2)
    queue_batches(tmp_path / "delta", BATCHES)
    notifier = _notifier(tmp_path / "delta", {"kafka": {"enabled": True, "bootstrap_servers": kafka_broker.bootstrap,
                                                        "topic": topic}})
    assert notifier.drain(60)
    notifier.stop()
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "outputs-test",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + 60
    while len(messages) < len(EXPECTED) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            messages.append(message)
    consumer.close()
    assert len(messages) == len(EXPECTED)
    by_incident: dict[str, list[str]] = {}
    for message in messages:
        finding = json.loads(message.value())
        DetectionFinding.model_validate(finding)
        header = dict(message.headers())["update_id"].decode()
        assert finding["metadata"]["uid"] == header
        assert message.key().decode() == finding["finding_info"]["uid"]
        by_incident.setdefault(message.key().decode(), []).append(header)
    assert by_incident == {f"{1:032x}": [EXPECTED[0], EXPECTED[2]], f"{2:032x}": [EXPECTED[1], EXPECTED[3]]}


def test_a_long_running_notifier_forgets_what_every_output_has_done(tmp_path: Path) -> None:
    """Once every output has delivered every update of some batches, the notifier no longer holds
    them (nor their ids) and never reads them again; what comes after is delivered once, in order,
    also by a notifier started afresh."""
    tables, sent = tmp_path / "delta", tmp_path / "incidents.ocsf.jsonl"
    outputs = {"file": {"enabled": True, "path": str(sent)}}
    queue_batches(tables, BATCHES)
    notifier = _notifier(tables, outputs)
    assert notifier.drain(timeout_s=20)
    assert notifier.store.floor == 2 and notifier.store.updates() == []
    assert notifier._done == {"file": set()}

    more = {3: [incident(3, 3)], 4: [incident(3, 4, opened_batch=3, state="closed")]}
    queue_batches(tables, more)
    assert notifier.drain(timeout_s=20)
    assert notifier.store.floor == 4 and notifier.store.updates() == []
    again = _notifier(tables, outputs)  # a restart resumes from the deliveries table
    assert again.drain(timeout_s=20) and again.store.floor == 4
    ids = [json.loads(line)["metadata"]["uid"] for line in sent.read_text().splitlines()]
    assert ids == EXPECTED + [update_id(f"{3:032x}", 3), update_id(f"{3:032x}", 4)]


def test_the_tables_lose_what_every_output_did_long_enough_ago(tmp_path: Path) -> None:
    """Batches every output has done leave outbox and deliveries keep_delivered after their last
    delivery, in batch order; pending and recent ones stay, and a notifier started afresh sends
    nothing twice."""
    tables, sent = tmp_path / "delta", tmp_path / "incidents.ocsf.jsonl"
    config = config_from_mapping({"stream": {"tables_dir": str(tables)},
                                  "alerts": {"outputs": {"file": {"enabled": True, "path": str(sent)}}}})

    def notifier(keep: timedelta) -> Notifier:
        return Notifier(OutboxStore(TablesLocation.of(tables), keep_delivered=keep), build_outputs(config), **FAST)

    def batches(name: str) -> list[int]:
        return sorted(r["batch_id"] for r in DeltaTable(str(tables / name)).to_pyarrow_table().to_pylist())

    queue_batches(tables, BATCHES)  # queued in March: what counts is when they were delivered
    first = notifier(timedelta(days=7))
    assert first.drain(timeout_s=20)  # delivered now: kept
    assert batches("outbox") == [1, 1, 2, 2] and batches("deliveries") == [1, 1, 2, 2]
    done: dict[int, datetime] = {}  # each batch's last delivery
    for row in DeltaTable(str(tables / "deliveries")).to_pyarrow_table().to_pylist():
        done[row["batch_id"]] = max(done.get(row["batch_id"], row["recorded_at"]), row["recorded_at"])

    queue_batches(tables, {3: [incident(3, 3)], 4: [incident(3, 4, opened_batch=3, state="closed")]})
    assert first.drain(timeout_s=20)
    assert first.store.prune(done[1] + timedelta(days=7)) is None  # not yet
    # a week after the first two batches' deliveries and before the later ones': those two go
    assert first.store.prune(done[2] + timedelta(days=7, microseconds=1)) == 2
    assert batches("outbox") == [3, 4] and batches("deliveries") == [3, 4]
    assert DeltaTable(str(tables / "outbox")).history(1)[0]["operation"] == "DELETE"
    assert first.store.prune(datetime.now(timezone.utc) + timedelta(days=8)) == 4
    assert batches("outbox") == [] and batches("deliveries") == []
    assert first.store.prune(datetime.now(timezone.utc) + timedelta(days=8)) is None  # nothing left

    again = notifier(timedelta(0))  # afresh: nothing to read, nothing sent twice
    assert again.drain(timeout_s=20)
    ids = [json.loads(line)["metadata"]["uid"] for line in sent.read_text().splitlines()]
    assert ids == EXPECTED + [update_id(f"{3:032x}", 3), update_id(f"{3:032x}", 4)]

    # with keep_delivered 0 the notifier prunes as it goes (the first pass of the hour)
    queue_batches(tables, {5: [incident(4, 5)]})
    assert again.drain(timeout_s=20)
    assert batches("outbox") == [] and batches("deliveries") == []
    assert json.loads(sent.read_text().splitlines()[-1])["metadata"]["uid"] == update_id(f"{4:032x}", 5)


def test_a_pending_update_is_never_pruned(tmp_path: Path) -> None:
    """An output that has not delivered a batch holds it in the tables, however old."""
    tables = tmp_path / "delta"
    queue_batches(tables, BATCHES)
    config = config_from_mapping({"stream": {"tables_dir": str(tables)}, "alerts": {"outputs": {
        "file": {"enabled": True, "path": str(tmp_path / "sent.jsonl")},
        "ocsf_webhook": {"enabled": True, "url": "http://127.0.0.1:9/never"}}}})
    notifier = Notifier(OutboxStore(TablesLocation.of(tables), keep_delivered=timedelta(0)), build_outputs(config), **FAST)
    assert not notifier.drain(timeout_s=2)  # the webhook's port is closed: nothing it owes is done
    assert DeltaTable(str(tables / "outbox")).to_pyarrow_table().num_rows == 4
    assert notifier.store.floor == 0  # done through the batch before the first one it owes
