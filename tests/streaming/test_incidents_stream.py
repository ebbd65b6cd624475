"""Incidents from the streaming job: real Kafka -> Spark -> Delta. Two devices send alerts over
several micro-batches; one goes quiet longer than the quiet time and comes back (two incidents, the
first closed), the other keeps one open incident. A batch replayed after a crash between its table
commits and its batch_log row (its checkpoint commit and batch_log entry removed, as a kill -9 there
leaves them) counts no alert twice."""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs.config import load_config
from jobs.ops.replay import ReplayOptions, iter_messages
from models.bundle import load_bundle
from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURES
from tests.helpers.streaming import BUNDLE, produce, read_table, run_to_end, stream_conf
from udfs.scoring import score_frame

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

DEVICE_A, DEVICE_B = "mac:02:00:00:00:00:0a", "mac:02:00:00:00:00:0b"
PER_PHASE = 30


def _alerting_rows(sample_dir: Path, category: str, n: int, seed: int):
    """``n`` real sample rows the bundle flags and files under ``category`` (chosen with the bundle
    the stream uses, so each is an alert of that category there too)."""
    flows = load_flows_pandas([sample_dir]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    scored = score_frame(flows[list(FEATURES)], load_bundle(BUNDLE))
    chosen = flows[scored["is_anomaly"].to_numpy() & (scored["predicted_category"] == category).to_numpy()]
    assert len(chosen) >= n, f"the sample has only {len(chosen)} {category} alerts"
    return chosen.head(n)


def _messages(rows, device: str, start: datetime) -> list[tuple[str, dict]]:
    """The rows as the sensor would send them for ``device``, one a second from ``start``."""
    out = []
    for i, (_, message) in enumerate(iter_messages(rows, ReplayOptions(rate=0))):
        message.update(device_id=device, source_id=device, event_time=(start + timedelta(seconds=i)).isoformat())
        out.append((device, message))
    return out


def _sum_per_pair(frame, count: str) -> dict[tuple[str, str], int]:
    return {(r["subject"], r["category"]): r["n"] for r in frame.groupBy("subject", "category")
            .agg(F.sum(count).alias("n")).collect()}


def test_incidents_per_device_close_after_quiet_time_and_replay_counts_once(spark, kafka_broker, sample_dir,
                                                                           tmp_path) -> None:
    topic = "flows-incidents"
    kafka_broker.create_topic(topic, partitions=2)
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    ddos = _alerting_rows(sample_dir, "DDoS", 2 * PER_PHASE, seed=1)
    spoofing = _alerting_rows(sample_dir, "Spoofing", PER_PHASE, seed=2)
    a_first = _messages(ddos.head(PER_PHASE), DEVICE_A, t0)
    b_all = _messages(spoofing, DEVICE_B, t0 + timedelta(minutes=28))  # still open at the end
    a_again = _messages(ddos.tail(PER_PHASE), DEVICE_A, t0 + timedelta(minutes=30))  # 29 quiet minutes later
    produce(kafka_broker.bootstrap, topic, a_first + b_all + a_again, [])
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=25)
    conf.write_text(conf.read_text().replace("  trigger:", "  incident_quiet_time: 5 minutes\n  trigger:"))
    config = load_config(conf)

    run_to_end(spark, config)
    batches = read_table(spark, tmp_path, "batch_log").count()
    assert batches >= 4  # 90 records, at most 25 a batch

    incidents = read_table(spark, tmp_path, "incidents")
    rows = sorted(incidents.collect(), key=lambda r: (r["subject"], r["first_seen"]))
    assert [(r["subject"], r["category"], r["alerts"], r["state"]) for r in rows] == [
        (DEVICE_A, "DDoS", PER_PHASE, "closed"), (DEVICE_A, "DDoS", PER_PHASE, "open"),
        (DEVICE_B, "Spoofing", PER_PHASE, "open")]
    first_a = rows[0]
    assert first_a["last_seen"].replace(tzinfo=timezone.utc) == t0 + timedelta(seconds=PER_PHASE - 1)
    assert first_a["closed_at"] - first_a["last_seen"] == timedelta(minutes=5)
    for row in rows:
        assert row["device_id"] == row["subject"] and row["max_severity"] in ("low", "medium", "high", "critical")
        assert row["explanation"].startswith("ensemble ") and "; class " in row["explanation"]
    alerts = read_table(spark, tmp_path, "alerts").withColumn("subject", F.col("device_id")) \
        .withColumn("category", F.col("predicted_category")).withColumn("one", F.lit(1))
    assert alerts.filter(F.col("explanation").isNull()).count() == 0
    assert _sum_per_pair(incidents, "alerts") == _sum_per_pair(alerts, "one")

    # a kill -9 after the last batch's table commits, before its batch_log row and checkpoint commit
    from deltalake import DeltaTable

    last = batches - 1
    assert DeltaTable(str(tmp_path / "delta" / "incidents")).transaction_version(config.stream.app_id) == last
    commits = Path(config.stream.checkpoint) / "commits"
    for name in (str(last), f".{last}.crc"):
        (commits / name).unlink(missing_ok=True)
    log_dir = tmp_path / "delta" / "batch_log" / "_delta_log"
    newest = max(log_dir.glob("*.json"))
    for path in log_dir.glob(newest.stem + ".*"):
        path.unlink()
    assert read_table(spark, tmp_path, "batch_log").count() == batches - 1

    run_to_end(spark, config, timeout_s=300)
    assert read_table(spark, tmp_path, "batch_log").count() == batches  # the batch ran again
    again = read_table(spark, tmp_path, "incidents")
    assert sorted((r["subject"], r["alerts"], r["state"]) for r in again.collect()) == \
        sorted((r["subject"], r["alerts"], r["state"]) for r in rows)
    assert read_table(spark, tmp_path, "alerts").count() == int(np.sum([r["alerts"] for r in rows]))
