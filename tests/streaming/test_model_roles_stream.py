"""Champion and challenger in the running stream (real Kafka -> Spark -> Delta), with the project's
two real bundles: v2 champion and v3 challenger in shadow, then v3 promoted and then rolled back,
both while the query runs. Every batch is scored by one version, the one the registry named when
the batch began; the challenger's verdicts land in flows_shadow only; `iomt-ad models compare`
reads them."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from jobs.cli import main
from jobs.config import load_config
from jobs.model_registry import CHALLENGER, CHAMPION, ModelRegistry
from jobs.storage import TablesLocation
from jobs.stream.score_stream import start_query
from models import DEFAULT_BUNDLE_PATH
from tests.helpers.streaming import good_messages, produce, read_table, stream_conf

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

V2, V3 = DEFAULT_BUNDLE_PATH.parent / "v2", DEFAULT_BUNDLE_PATH
ROUND = 150


def _wait_for_records(spark, tmp: Path, total: int, query, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert query.isActive, query.exception()
        try:
            if read_table(spark, tmp, "flows_scored").count() >= total:
                return
        except Exception:  # noqa: BLE001 - the table does not exist before the first batch
            pass
        time.sleep(1)
    raise TimeoutError(f"the stream did not write {total} records in {timeout_s:.0f} s")


def test_shadow_promote_and_rollback_while_the_stream_runs(spark, kafka_broker, sample_dir, tmp_path, capsys) -> None:
    topic = "flows-model-roles"
    kafka_broker.create_topic(topic, partitions=2)
    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, trigger="1 second", max_offsets=60)
    raw = yaml.safe_load(conf.read_text())
    raw["stream"]["model_role"] = CHAMPION
    conf.write_text(yaml.safe_dump(raw))
    config = load_config(conf)
    registry = ModelRegistry(TablesLocation.of(tmp_path / "delta"))
    registry.register(V2, "test")
    registry.register(V3, "test")
    registry.promote("v2", "test")
    registry.set_alias(CHALLENGER, "v3", "test")
    messages = good_messages(sample_dir, 3 * ROUND, seed=7)
    rounds = [messages[i * ROUND:(i + 1) * ROUND] for i in range(3)]
    query = start_query(spark, config)
    try:
        produce(kafka_broker.bootstrap, topic, rounds[0], [])
        _wait_for_records(spark, tmp_path, ROUND, query)
        registry.promote("v3", "test", "the challenger did better")  # the query keeps running
        produce(kafka_broker.bootstrap, topic, rounds[1], [])
        _wait_for_records(spark, tmp_path, 2 * ROUND, query)
        registry.rollback("test", "too many alerts")
        produce(kafka_broker.bootstrap, topic, rounds[2], [])
        _wait_for_records(spark, tmp_path, 3 * ROUND, query)
    finally:
        query.stop()
    scored = read_table(spark, tmp_path, "flows_scored")
    # one version per batch, whatever the switches
    per_batch = scored.groupBy("batch_id").agg(F.countDistinct("model_version").alias("versions")).collect()
    assert per_batch and all(r["versions"] == 1 for r in per_batch)
    version_of = {r["record_id"]: r["model_version"] for r in scored.select("record_id", "model_version").collect()}
    for expected, batch in zip(("v2", "v3", "v2"), rounds):
        assert {version_of[message["record_id"]] for _, message in batch} == {expected}
    # the challenger scored round one in shadow, beside the champion's verdicts; promote cleared it
    shadow = read_table(spark, tmp_path, "flows_shadow").collect()
    assert {r["record_id"] for r in shadow} == {message["record_id"] for _, message in rounds[0]}
    assert {(r["champion_version"], r["model_version"]) for r in shadow} == {("v2", "v3")}
    champion_verdict = {r["record_id"]: r["is_anomaly"] for r in scored.filter("model_version = 'v2'").collect()}
    assert all(r["champion_is_anomaly"] == champion_verdict[r["record_id"]] for r in shadow)
    alerts = read_table(spark, tmp_path, "alerts").select("model_version").distinct().collect()
    assert {r["model_version"] for r in alerts} <= {"v2", "v3"}
    assert main(["models", "compare", "--tables", str(tmp_path / "delta"), "--format", "json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert (summary["champion"], summary["challenger"], summary["records"]) == ("v2", "v3", ROUND)
    flagged_by_v2 = sum(1 for r in shadow if r["champion_is_anomaly"])
    assert summary["champion_alerts"] == flagged_by_v2
    assert summary["labelled_records"] == ROUND and len(summary["per_class"]) >= 2
