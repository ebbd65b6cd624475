"""The benchmark's own parts against the real services, on a few thousand records: each figure
`iomt-ad bench` reports comes from code that runs here (only the sizes are smaller)."""
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from models import DEFAULT_BUNDLE_PATH
from tests.services.influxdb_server import TOKEN
from tests.helpers.influx import aggregate_total, new_influx_bucket

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow]

REPO = DEFAULT_BUNDLE_PATH.resolve().parent.parent


def test_scoring_throughput_is_measured_for_every_model_in_a_pinned_subprocess(sample_dir) -> None:
    from jobs.bench.scoring import MODELS, measure

    result = measure(DEFAULT_BUNDLE_PATH, sample_dir, threads=1, batch_sizes=(256,), min_seconds=0.05, repeats=1)
    assert set(result) == set(MODELS)
    assert all(result[model]["256"] > 0 for model in MODELS)


def test_a_drain_latency_run_and_baseline_on_the_real_broker_and_influxdb(
        spark, kafka_broker, influxdb, sample_dir, tmp_path, monkeypatch) -> None:
    from deltalake import DeltaTable

    from jobs.bench.e2e import ResourceSampler, baseline, capacity, latency

    monkeypatch.setenv("IOMT_AD_BENCH_INFLUX_TOKEN", TOKEN)
    influx = SimpleNamespace(url=influxdb.url, process=influxdb.process,
                             bucket=new_influx_bucket(influxdb, "bench-harness"))
    with ResourceSampler(interval_s=0.2, exclude={kafka_broker.process.pid, influxdb.process.pid}) as sampler:
        drain = capacity(spark, kafka_broker, tmp_path, DEFAULT_BUNDLE_PATH, sample_dir, records=3000,
                         max_offsets=1000, influx=influx)
    # every record of the backlog went through in several batches, to Delta and to InfluxDB
    assert drain["records"] == 3000 and drain["batches"] >= 3
    assert len(DeltaTable(str(tmp_path / drain["topic"] / "flows_scored")).to_pandas(columns=["record_id"])) == 3000
    assert drain["influx_points_failed"] == 0
    assert aggregate_total(influxdb, influx.bucket) == 3000
    assert drain["sustained_rps"] > 0
    cpu = drain["cpu_us_per_record"]
    assert cpu["spark_jvm"] > 0 and cpu["python_workers"] > 0 and cpu["influxdb"] > 0
    assert cpu["total"] == pytest.approx(sum(v for k, v in cpu.items() if k != "total"), abs=0.5)
    threads = drain["jvm_threads_us_per_record"]  # the driver's share of the one local-mode JVM
    # read while the drain ran; a short drain can fall between two readings of one role's threads
    assert set(threads) == {"driver", "executor", "jvm_runtime"} and sum(threads.values()) > 0
    resources = sampler.summary()
    assert resources["peak_rss_mb_by_process"].get("spark_jvm", 0) > 100
    assert resources["peak_rss_mb"] >= resources["peak_rss_mb_by_process"]["spark_jvm"]

    lat = latency(spark, kafka_broker, tmp_path, DEFAULT_BUNDLE_PATH, sample_dir, rate=200, seconds=4.0,
                  warmup_records=200, settle_s=2.0)
    assert lat["processed"] == lat["sent"] == 200 * 6
    assert lat["measured"] > 0
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]

    base = baseline(spark, kafka_broker, drain["topic"], DEFAULT_BUNDLE_PATH, records=20)
    assert base["records"] == 20 and base["rps"] > 0


def test_an_avro_drain_to_the_influxdb_stand_in_sends_it_every_point(spark, kafka_broker, sample_dir, tmp_path,
                                                                     monkeypatch) -> None:
    """The bench's drain with InfluxDB elsewhere, here with the messages in Avro (the replayer and
    the job both in the binary wire format): every record scored, every point received."""
    from deltalake import DeltaTable

    from jobs.bench.e2e import capacity
    from jobs.bench.influx_stand_in import DiscardingInfluxSink
    from schemas.influx import DRIFT_MEASUREMENT
    from tests.services.ports import free_port

    monkeypatch.setenv("IOMT_AD_BENCH_INFLUX_TOKEN", "unused-by-the-stand-in")
    with DiscardingInfluxSink(free_port()) as sink:
        drain = capacity(spark, kafka_broker, tmp_path, DEFAULT_BUNDLE_PATH, sample_dir, records=2000,
                         max_offsets=1000, influx=sink, wire_format="avro")
        assert drain["wire_format"] == "avro"
        assert len(DeltaTable(str(tmp_path / drain["topic"] / "flows_scored")).to_pandas(columns=["record_id"])) == 2000
        # the per-device aggregates and the anomalous records' points, all received; the drift
        # figures come from the driver's own thread (jobs.drift), beside the batches' count
        assert drain["records"] == 2000
        drift = sink.points_of(DRIFT_MEASUREMENT)
        assert 0 < sink.points() - drift == drain["influx_points_written"]
    assert drain["influx_points_failed"] == 0


def test_the_stand_in_is_counted_as_itself_not_as_the_job() -> None:
    """Its CPU goes to ``influxdb_sink``, never to the job's Python workers (it is a Python child of
    this process too). Checked on the process itself, not on a drain's figures, which other
    processes of the test session (the session's own InfluxDB) would also show."""
    from jobs.bench.e2e import process_kinds
    from jobs.bench.influx_stand_in import DiscardingInfluxSink
    from tests.services.ports import free_port

    with DiscardingInfluxSink(free_port()) as sink:
        unnamed = {proc.pid: kind for proc, kind, _ in process_kinds({})}
        named = {proc.pid: kind for proc, kind, _ in process_kinds({"influxdb_sink": sink.process.pid})}
    assert unnamed[sink.process.pid] == "python_workers"  # what it would be taken for, unnamed
    assert named[sink.process.pid] == "influxdb_sink"


def test_the_command_writes_both_reports(tmp_path, sample_dir) -> None:
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "bench", "--quick", "--skip-e2e", "--data", str(sample_dir),
                           "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    for model in ("ensemble", "lstm_ae", "iforest", "classifier"):
        for cores in ("1core", "2core"):
            assert set(report["scoring"][model][cores]) == {"256", "4096", "65536"}
            assert all(rate > 0 for rate in report["scoring"][model][cores].values())
    assert report["machine"]["cores"] >= 1
    markdown = (tmp_path / "BENCHMARKS.md").read_text()
    assert f"{report['scoring']['ensemble']['1core']['4096']:,.0f}" in markdown
    sensor = report["sensor"]  # the shared captures are beside the checkout in CI
    assert sensor["packets"] == sensor["windows"]["packets"] == sensor["records"]["packets"] == 300_000
    assert sensor["records"]["records_per_s"] > 0 and sensor["windows"]["windows"] > 0
    assert sensor["many_devices_records"]["max_open_devices"] < 10  # each loop's devices expired
    assert f"{sensor['windows']['packets_per_s']:,}" in markdown
