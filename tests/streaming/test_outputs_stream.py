"""End to end: real Kafka -> the streaming job -> incidents -> outbox -> a real HTTP receiver, with
the notifier in the driver as ``iomt-ad stream`` runs it. The receiver hangs (it answers after
minutes) while the stream runs: the batches must not wait for it (were sending synchronous, the
first batch with incidents would take the receiver's whole hang). Released, it gets every queued
update, each with its stable id."""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.outputs.notifier import notifier_for
from jobs.stream.score_stream import start_query
from tests.helpers.http_receiver import HttpReceiver
from tests.helpers.streaming import produce, read_table, stream_conf
from tests.streaming.test_incidents_stream import DEVICE_A, DEVICE_B, _alerting_rows, _messages

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

HANG_S = 540  # the receiver's hang (and the output's timeout): far longer than any batch may take


def test_stream_queues_incident_updates_and_a_hanging_receiver_does_not_hold_batches(
        spark, kafka_broker, sample_dir, tmp_path: Path) -> None:
    topic = "flows-outputs"
    kafka_broker.create_topic(topic, partitions=2)
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    produce(kafka_broker.bootstrap, topic,
            _messages(_alerting_rows(sample_dir, "DDoS", 20, seed=1), DEVICE_A, t0)
            + _messages(_alerting_rows(sample_dir, "Spoofing", 20, seed=2), DEVICE_B, t0), [])
    receiver = HttpReceiver(hang_limit_s=HANG_S).start()
    receiver.hang.set()
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=10)
    conf.write_text(conf.read_text() + "\n".join([
        "alerts:", "  outputs:", "    ocsf_webhook:", "      enabled: true", f"      url: {receiver.url}",
        f"      timeout_seconds: {HANG_S}", "  notify:", "    poll_interval: 0.2 seconds",
        "    retry_initial: 0.2 seconds", "    retry_max: 1 second"]) + "\n")
    config = load_config(conf)
    notifier = notifier_for(config).start()
    try:
        query = start_query(spark, config, available_now=True)
        query.awaitTermination(HANG_S - 30)
        assert not query.isActive, "the stream did not finish while the receiver hung"
        batches = read_table(spark, tmp_path, "batch_log").collect()
        assert len(batches) >= 4
        assert max(row["seconds"] for row in batches) < HANG_S - 60
        assert receiver.received() == []  # the first update is still hanging
        outbox = read_table(spark, tmp_path, "outbox").collect()
        incidents = read_table(spark, tmp_path, "incidents").collect()
        assert {r["subject"] for r in incidents} == {DEVICE_A, DEVICE_B}
        assert {r["incident_id"] for r in outbox} == {r["incident_id"] for r in incidents}
        assert len({r["update_id"] for r in outbox}) == len(outbox)
        receiver.release()
        received = receiver.wait_for(len(outbox), timeout_s=60)
    finally:
        notifier.stop(timeout_s=5)
        receiver.release()
        receiver.stop()
    keys = [r["headers"]["Idempotency-Key"] for r in received]
    assert set(keys) == {r["update_id"] for r in outbox}
    assert all(r["json"]["metadata"]["uid"] == r["headers"]["Idempotency-Key"] for r in received)
