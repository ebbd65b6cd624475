"""Drift without Spark: the PSI and the bins against values worked out by hand, the reference a
bundle carries, the executors' counts, the driver's hourly figures in a real Delta table (delta-rs)
across batches and a replayed batch, the InfluxDB lines, and the configuration."""
from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.drift.counts import partition_counts
from jobs.drift.hourly import DriftRecorder, combine_counts, drift_id, drift_lines
from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.model_roles import BatchModel
from models import DEFAULT_BUNDLE_PATH
from models.drift import (EPSILON, SCORE_MEASURE, BinnedDistribution, DriftReference, DriftReferenceError,
                          drift_reference_of, psi)
from schemas.tables import DRIFT, TABLES

V2, V3 = DEFAULT_BUNDLE_PATH.parent / "v2", DEFAULT_BUNDLE_PATH


# --- PSI and bins ----------------------------------------------------------------------------------

def test_psi_of_hand_worked_distributions() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([50, 50])) == 0.0
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 * 0.5877867 + 0.4 * 1.6094379
    assert psi(np.array([0.5, 0.5]), np.array([90, 10])) == pytest.approx(0.8788898, abs=1e-6)
    # a bin the reference never saw counts with EPSILON: 2 * (1 - 1e-4) * ln(1e4)
    assert psi(np.array([1.0, 0.0]), np.array([0, 10])) == pytest.approx(2 * (1 - EPSILON) * math.log(1 / EPSILON))
    assert math.isnan(psi(np.array([0.5, 0.5]), np.array([0, 0])))
    with pytest.raises(DriftReferenceError):
        psi(np.array([0.5, 0.5]), np.array([1, 2, 3]))


def test_bins_are_closed_on_the_right_with_a_bin_below_the_reference() -> None:
    flag = BinnedDistribution.of_values(np.r_[np.zeros(90), np.ones(10)])
    # the 90% quantile of 90 zeros and 10 ones interpolates to 0.1; the first edge lies just below 0
    assert flag.edges[1:] == (0.0, pytest.approx(0.1)) and flag.edges[0] < 0.0
    assert flag.shares == pytest.approx((0.0, 0.9, 0.0, 0.1))
    assert flag.bin_of(np.array([-1.0, 0.0, 0.05, 1.0, np.inf, np.nan])).tolist() == [0, 1, 2, 3, 3, -1]
    constant = BinnedDistribution.of_values(np.ones(100))
    assert constant.shares == (0.0, 1.0, 0.0)
    assert constant.counts(np.array([0.0, 0.0, 1.0, 2.0, np.nan])).tolist() == [2, 1, 1]
    spread = BinnedDistribution.of_values(np.arange(1000, dtype=float))
    assert spread.bins == 11 and spread.shares[0] == 0.0
    assert spread.shares[1:] == pytest.approx([0.1] * 10)
    assert spread.psi(spread.counts(np.arange(1000, dtype=float))) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(DriftReferenceError):
        BinnedDistribution.of_values(np.array([np.nan, np.inf]))


def test_reference_round_trip_and_bundles_without_one() -> None:
    reference = DriftReference.of_rows({"Rate": np.arange(100.0), "IPv": np.ones(100)}, np.linspace(0, 2, 50))
    assert DriftReference.from_dict(json.loads(json.dumps(reference.to_dict()))) == reference
    assert reference.features == ("Rate", "IPv") and reference.measures[SCORE_MEASURE].rows == 50
    v2 = json.loads((V2 / "manifest.json").read_text())
    assert drift_reference_of(v2) is None  # an older bundle: drift off, scoring as before
    v3 = drift_reference_of(json.loads((V3 / "manifest.json").read_text()))
    manifest = json.loads((V3 / "manifest.json").read_text())
    assert set(v3.features) == set(manifest["preprocessing"]["model_features"])
    assert v3.measures["Rate"].rows == manifest["benign_reference"]["rows"]
    assert v3.measures[SCORE_MEASURE].rows == manifest["ensemble"]["threshold"]["n_calibration"]


def test_v3_reference_measures_held_out_benign_rows_as_unshifted(shared_data) -> None:
    """The dataset's benign held-out rows (never used for the reference) stay below 0.1 everywhere."""
    from models.bundle import load_bundle
    from models.training.datasets import load_flows_pandas
    from models.training.split import TEST, SplitConfig, split_frame
    from schemas.flow_record import FEATURES
    from udfs.scoring import score_frame

    bundle = load_bundle(V3)
    reference = drift_reference_of(bundle.manifest)
    frame = load_flows_pandas([shared_data / "ciciomt2024" / "Benign_test.pcap.csv"])
    held_out = frame[split_frame(frame, SplitConfig.from_description(bundle.manifest["split"])).eq(TEST)]
    features = held_out[list(FEATURES)].astype(float).reset_index(drop=True)
    scores = score_frame(features, bundle)["ensemble_score"].to_numpy(float)
    figures = {name: d.psi(d.counts(scores if name == SCORE_MEASURE else features[name].to_numpy()))
               for name, d in reference.measures.items()}
    assert len(held_out) > 600
    assert figures[SCORE_MEASURE] < 0.05, figures
    assert max(figures.values()) < 0.1, figures


# --- the executors' counts ---------------------------------------------------------------------------

def _reference() -> DriftReference:
    # Rate: bins (-inf, 0], (0, 10], (10, +inf]; the score: (-inf, 1], (1, +inf]
    return DriftReference(measures={"Rate": BinnedDistribution((0.0, 10.0), (0.0, 0.5, 0.5), 100),
                                    SCORE_MEASURE: BinnedDistribution((1.0,), (0.9, 0.1), 100)})


def _scored(rows: list[tuple[str, float, float, str | None, str | None]]) -> pa.Table:
    """flows_scored-like rows: (event time, rate, ensemble score, device id, vendor)."""
    return pa.table({"event_time": pa.array([datetime.fromisoformat(r[0]) for r in rows], pa.timestamp("us", "UTC")),
                     "rate": [r[1] for r in rows], "ensemble_score": [r[2] for r in rows],
                     "device_id": pa.array([r[3] for r in rows], pa.string()),
                     "device_vendor": pa.array([r[4] for r in rows], pa.string())})


def _as_set(counts: pa.Table) -> set[tuple]:
    return {(r["hour"].hour, r["device_group"], r["measure"], r["bin"], r["count"]) for r in counts.to_pylist()}


def test_partition_counts_per_hour_group_and_bin() -> None:
    scored = _scored([("2024-06-01T10:05:00+00:00", 5.0, 0.2, "mac:aa", "Acme"),
                      ("2024-06-01T10:59:59+00:00", 50.0, 3.0, "mac:bb", None),
                      ("2024-06-01T10:30:00+00:00", float("nan"), 0.5, None, None),
                      ("2024-06-01T11:00:00+00:00", float("inf"), 0.9, None, None)])
    counts = partition_counts(scored, _reference(), "v9", "vendor")
    assert set(counts["model_version"].to_pylist()) == {"v9"}
    assert _as_set(counts) == {
        (10, "all", "rate", 1, 1), (10, "all", "rate", 2, 1),  # the NaN rate is in no bin
        (10, "all", "ensemble_score", 0, 2), (10, "all", "ensemble_score", 1, 1),
        (10, "vendor:Acme", "rate", 1, 1), (10, "vendor:Acme", "ensemble_score", 0, 1),
        (10, "vendor:unknown", "rate", 2, 1), (10, "vendor:unknown", "ensemble_score", 1, 1),
        (11, "all", "rate", 2, 1), (11, "all", "ensemble_score", 0, 1)}
    by_device = _as_set(partition_counts(scored, _reference(), "v9", "device"))
    assert (10, "device:mac:bb", "rate", 2, 1) in by_device
    assert {g for _, g, *_ in _as_set(partition_counts(scored, _reference(), "v9", "none"))} == {"all"}
    assert partition_counts(scored.slice(0, 0), _reference(), "v9").num_rows == 0


# --- the driver's hourly figures, in a real Delta table ---------------------------------------------

def _bundle_dir(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    manifest = {"model_version": "v9", "features": ["Rate"], "drift_reference": _reference().to_dict()}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _recorder(tmp_path: Path, min_records: int = 10) -> DriftRecorder:
    config = config_from_mapping({"stream": {"tables_dir": str(tmp_path / "delta")},
                                  "drift": {"threshold": 0.2, "min_records": min_records}})
    return DriftRecorder(config, DeltaAppender(config.stream.tables, "drift-test"))


def _rows(tmp_path: Path) -> dict[str, dict]:
    from deltalake import DeltaTable

    return {r["drift_id"]: r for r in DeltaTable(str(tmp_path / "delta" / DRIFT)).to_pyarrow_table().to_pylist()}


def test_hourly_figures_add_up_across_batches_once_per_batch(tmp_path, caplog) -> None:
    recorder = _recorder(tmp_path)
    champion = BatchModel(str(_bundle_dir(tmp_path)), None, "v9")
    hour = "2024-06-01T10:{:02d}:00+00:00"
    # batch 0: 6 records like the reference's scores (5 low, 1 high: not enough records to tell)
    first = partition_counts(_scored([(hour.format(i), 5.0, 0.5 if i else 3.0, None, None) for i in range(6)]),
                             _reference(), "v9")
    recorder.commit([first], 0, champion)
    key = drift_id(datetime(2024, 6, 1, 10, tzinfo=timezone.utc), "all", "v9", SCORE_MEASURE)
    row = _rows(tmp_path)[key]
    assert (row["records"], row["bin_counts"], row["drifted"]) == (6, [5, 1], False)
    assert row["psi"] == pytest.approx((5 / 6 - 0.9) * math.log(5 / 6 / 0.9) + (1 / 6 - 0.1) * math.log(1 / 6 / 0.1))
    # batch 1, in two tasks: 10 records all scored high: the hour now holds 16, 11 of them high
    high = [partition_counts(_scored([(hour.format(i), 5.0, 3.0, None, None) for i in range(n)]), _reference(), "v9")
            for n in (4, 6)]
    with caplog.at_level(logging.WARNING, logger="jobs.drift.hourly"):
        rows = recorder.commit(high, 1, champion)
    row = _rows(tmp_path)[key]
    assert (row["records"], row["bin_counts"], row["drifted"], row["batch_id"]) == (16, [5, 11], True, 1)
    expected = (5 / 16 - 0.9) * math.log(5 / 16 / 0.9) + (11 / 16 - 0.1) * math.log(11 / 16 / 0.1)
    assert row["psi"] == pytest.approx(expected)
    assert [r.getMessage() for r in caplog.records if "drift: hour 2024-06-01 10:00Z, devices all" in r.getMessage()]
    assert rows.num_rows == 2  # the rate and the score of the one hour and group
    # batch 1 again (a replay after a crash): nothing added, the same rows handed to InfluxDB
    again = recorder.commit(high, 1, champion)
    assert _rows(tmp_path)[key]["records"] == 16
    assert sorted(again["drift_id"].to_pylist()) == sorted(rows["drift_id"].to_pylist())
    # batch 2: more of the same; the hour and group had drifted already: no second warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobs.drift.hourly"):
        recorder.commit(high[:1], 2, champion)
    assert _rows(tmp_path)[key]["records"] == 20 and not caplog.records
    rate = _rows(tmp_path)[drift_id(datetime(2024, 6, 1, 10, tzinfo=timezone.utc), "all", "v9", "rate")]
    assert (rate["records"], rate["bin_counts"], rate["drifted"]) == (20, [0, 20, 0], True)  # all in one half
    assert set(TABLES[DRIFT].column_names) == set(rate)


def test_a_bundle_without_a_drift_reference_turns_drift_off(tmp_path, caplog) -> None:
    recorder = _recorder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="jobs.drift.hourly"):
        rows = recorder.commit([], 0, BatchModel(str(V2), None, "v2"))
        recorder.commit([], 1, BatchModel(str(V2), None, "v2"))
    assert rows.num_rows == 0 and not (tmp_path / "delta" / DRIFT).exists()
    warned = [r.getMessage() for r in caplog.records if "no drift reference" in r.getMessage()]
    assert len(warned) == 1 and "v2" in warned[0]  # said once, not at every batch


def test_a_silent_influxdb_never_holds_the_batch_for_the_drift_points(tmp_path, monkeypatch, caplog) -> None:
    """The drift points go from a thread of their own: handing them over returns at once however
    InfluxDB answers; the sender gives up at influxdb.max_batch_delay_s and logs it."""
    import time

    from tests.helpers.influx import SilentServer

    monkeypatch.setenv("IOMT_AD_TEST_DRIFT_TOKEN", "x")
    with SilentServer() as server:
        config = config_from_mapping({
            "stream": {"tables_dir": str(tmp_path / "delta")}, "drift": {"min_records": 1},
            "influxdb": {"enabled": True, "url": server.url, "token_env": "IOMT_AD_TEST_DRIFT_TOKEN",
                         "max_retries": 1, "timeout_ms": 10_000, "max_batch_delay_s": 1.0}})
        recorder = DriftRecorder(config, DeltaAppender(config.stream.tables, "drift-test"))
        counts = partition_counts(_scored([("2024-06-01T10:00:00+00:00", 5.0, 3.0, None, None)]), _reference(), "v9")
        recorder.commit([counts], 0, BatchModel(str(_bundle_dir(tmp_path)), None, "v9"))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="jobs.drift.hourly"):
            recorder.send_points("x")
            handed_over = time.monotonic() - started
            assert recorder.flush(timeout_s=20)
        assert server.accepted, "the sender never reached the silent server"
    assert handed_over < 0.2
    assert time.monotonic() - started < 1.0 + 5.0
    assert any("drift points were not written" in r.getMessage() for r in caplog.records)


def test_newest_rows_keep_the_later_figures_of_each_row() -> None:
    from jobs.drift.hourly import newest_rows

    older = pa.table({"drift_id": ["a", "b"], "records": [1, 2]})
    newer = pa.table({"drift_id": ["b", "c"], "records": [5, 6]})
    assert sorted(newest_rows(older, newer).to_pylist(), key=lambda r: r["drift_id"]) == [
        {"drift_id": "a", "records": 1}, {"drift_id": "b", "records": 5}, {"drift_id": "c", "records": 6}]


def test_drift_lines_are_one_point_per_row_at_the_hour() -> None:
    rows = pa.table({"hour": pa.array([datetime(2024, 6, 1, 10, tzinfo=timezone.utc)] * 2, pa.timestamp("us", "UTC")),
                     "device_group": ["vendor:Espressif Inc.", "all"], "model_version": ["v3", "v3"],
                     "measure": ["ensemble_score", "rate"], "records": pa.array([600, 600], pa.int64()),
                     "psi": [8.25, float("nan")], "drifted": [True, None]})
    hour_ns = int(datetime(2024, 6, 1, 10, tzinfo=timezone.utc).timestamp()) * 10**9
    assert drift_lines(rows).to_pylist() == [
        f"model_drift,device_group=vendor_Espressif_Inc.,measure=ensemble_score,model_version=v3 "
        f"drifted=1,psi=8.25,records=600 {hour_ns}\n",
        f"model_drift,device_group=all,measure=rate,model_version=v3 drifted=0,records=600 {hour_ns}\n"]


def test_combine_counts_sums_the_tasks() -> None:
    one = partition_counts(_scored([("2024-06-01T10:00:00+00:00", 5.0, 0.5, None, None)]), _reference(), "v9")
    combined = combine_counts([one, one])
    assert set(combined["count"].to_pylist()) == {2} and combined.num_rows == one.num_rows


# --- configuration -----------------------------------------------------------------------------------

def test_drift_configuration_defaults_and_refusals() -> None:
    default = config_from_mapping({}).drift
    assert (default.enabled, default.threshold, default.min_records, default.group_by) == (True, 0.2, 500, "vendor")
    for bad in ({"threshold": 0}, {"threshold": "high"}, {"min_records": 0}, {"min_records": 1.5},
                {"group_by": "ward"}, {"enabled": "yes"}, {"treshold": 0.1}):
        with pytest.raises(ConfigError, match="drift"):
            config_from_mapping({"drift": bad})


def test_iomt_ad_reference_adds_the_drift_reference_to_an_older_bundle(tmp_path, shared_data) -> None:
    """`iomt-ad reference` on v3 without its drift reference writes it again, the same: the deciles of
    the benign training rows (recomputed here with NumPy) and the bins of the validation scores."""
    import shutil

    from jobs.cli import main
    from models.bundle import MANIFEST, read_manifest
    from models.training.datasets import load_flows_pandas
    from models.training.split import TRAIN, SplitConfig, split_frame

    bundle = tmp_path / "v3"
    shutil.copytree(V3, bundle, ignore=shutil.ignore_patterns("evaluation.html"))
    before = read_manifest(bundle)
    (bundle / MANIFEST).write_text(json.dumps({k: v for k, v in before.items() if k != "drift_reference"}, indent=2))
    assert drift_reference_of(read_manifest(bundle)) is None
    assert main(["reference", "--model", str(bundle), "--data", str(shared_data / "ciciomt2024")]) == 0
    after = read_manifest(bundle)
    assert after == before
    frame = load_flows_pandas([shared_data / "ciciomt2024" / "Benign_test.pcap.csv"])
    train = frame[split_frame(frame, SplitConfig.from_description(before["split"])).eq(TRAIN)]["Rate"].to_numpy()
    rate = drift_reference_of(after).measures["Rate"]
    finite = train[np.isfinite(train)]
    assert rate.edges[1:] == pytest.approx(list(np.quantile(finite, np.arange(1, 10) / 10)))
    assert rate.rows == len(train)
