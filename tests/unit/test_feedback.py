"""Analysts' feedback: the verdict rules (pure), ``iomt-ad feedback`` on real Delta tables written by
the stream's own writers (read back with delta-rs), and where labelled records go in training."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs.cli import main
from jobs.feedback.labels import (ALERT, FALSE_POSITIVE, INCIDENT, TRUE_POSITIVE, FeedbackError, Verdict,
                                  check_verdict, label_records)
from jobs.feedback.store import FeedbackBook
from jobs.storage import TablesLocation
from models.training.feedback import (ATTACK_TEST, ATTACK_TRAIN, ATTACK_UNCLASSIFIED, BENIGN_TEST, BENIGN_TRAIN,
                                      BENIGN_VALIDATION, IN_TRAINING_DATA, assign_parts, in_frame)
from models.training.split import SplitConfig
from schemas.flow_record import FEATURES
from schemas.tables import FEEDBACK
from tests.helpers.incidents import write_incidents

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def verdict(target: str, ident: str, kind: str, minutes: int, corrected: str | None = None) -> Verdict:
    return Verdict(f"f-{ident}-{minutes}", target, kind, "ana", T0 + timedelta(minutes=minutes),
                   record_id=ident if target == ALERT else None, incident_id=ident if target == INCIDENT else None,
                   corrected_class=corrected)


# the rules ------------------------------------------------------------------------------------
def test_a_false_positive_is_benign_and_a_true_positive_needs_an_attack_class() -> None:
    assert check_verdict("false-positive", None) == (FALSE_POSITIVE, None)
    assert check_verdict("true_positive", "ddos-syn") == (TRUE_POSITIVE, "DDoS-SYN")
    assert check_verdict("false_positive", "benign") == (FALSE_POSITIVE, "Benign")
    with pytest.raises(FeedbackError, match="a false positive is benign traffic"):
        check_verdict("false_positive", "DDoS-SYN")
    with pytest.raises(FeedbackError, match="a true positive is an attack"):
        check_verdict("true_positive", "Benign")
    with pytest.raises(FeedbackError, match="unknown class"):
        check_verdict("true_positive", "DDoS-XYZ")
    with pytest.raises(FeedbackError, match="unknown verdict"):
        check_verdict("maybe", None)


def test_alert_verdicts_beat_incident_verdicts_and_later_verdicts_replace_earlier_ones() -> None:
    covered = {"inc-1": [("r1", "DDoS-SYN"), ("r2", "Benign"), ("r3", "DDoS-UDP")],
               "inc-2": [("r3", "DDoS-UDP"), ("r4", "Recon-OS_Scan")], "r2": [("r2", "Benign")],
               "r4": [("r4", "Recon-OS_Scan")]}
    verdicts = [verdict(INCIDENT, "inc-1", FALSE_POSITIVE, 1),
                verdict(ALERT, "r2", TRUE_POSITIVE, 0, "ARP_Spoofing"),  # older than the incident's: still wins
                verdict(INCIDENT, "inc-1", TRUE_POSITIVE, 5),            # the analyst changed their mind
                verdict(INCIDENT, "inc-2", FALSE_POSITIVE, 3),
                verdict(ALERT, "r4", TRUE_POSITIVE, 4)]
    labels = label_records(verdicts, lambda v: covered[v.incident_id or v.record_id])
    assert {rid: (r.label, r.verdict.verdict) for rid, r in labels.items()} == {
        "r1": ("DDoS-SYN", TRUE_POSITIVE),        # a true positive keeps the class the model predicted
        "r2": ("ARP_Spoofing", TRUE_POSITIVE),    # its own verdict, corrected class
        "r3": ("DDoS-UDP", TRUE_POSITIVE),        # inc-1 was marked last (minute 5) of the incidents covering it
        "r4": ("Recon-OS_Scan", TRUE_POSITIVE)}   # its alert verdict beats inc-2's


def test_a_true_positive_the_model_called_benign_has_no_known_class() -> None:
    labels = label_records([verdict(ALERT, "r1", TRUE_POSITIVE, 0)], lambda v: [("r1", "Benign")])
    assert labels["r1"].label is None and labels["r1"].is_attack


# where labelled records go --------------------------------------------------------------------
def _records(n: int, label: str | None, is_attack: bool, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(len(prefix) + n)
    frame = pd.DataFrame(rng.random((n, len(FEATURES))), columns=list(FEATURES))
    return frame.assign(record_id=[f"{prefix}-{i}" for i in range(n)], source_id=None, label=label,
                        is_attack=is_attack)


def test_parts_follow_the_split_fractions_and_are_fixed_by_the_record_id() -> None:
    split = SplitConfig()
    records = pd.concat([_records(2000, "Benign", False, "fp"), _records(1000, "DDoS-SYN", True, "tp"),
                         _records(50, None, True, "tpx")], ignore_index=True)
    parts = assign_parts(records, split)
    shares = pd.Series(parts[:2000]).value_counts(normalize=True)
    assert abs(shares[BENIGN_TRAIN] - 0.6) < 0.04 and abs(shares[BENIGN_VALIDATION] - 0.2) < 0.03
    assert abs(shares[BENIGN_TEST] - 0.2) < 0.03
    assert abs((parts[2000:3000] == ATTACK_TRAIN).mean() - 0.7) < 0.04
    assert set(parts[2000:3000]) == {ATTACK_TRAIN, ATTACK_TEST} and set(parts[3000:]) == {ATTACK_UNCLASSIFIED}
    again = assign_parts(records.iloc[::-1].reset_index(drop=True), split)[::-1]  # order and company do not matter
    assert (again == parts).all()
    assert (assign_parts(records, SplitConfig(seed=7)) != parts).any()  # the seed does


def test_a_replayed_training_row_is_recognised_by_file_row_and_features(sample_dir) -> None:
    from models.training.datasets import load_flows_pandas

    frame = load_flows_pandas([sample_dir / "Recon-OS_Scan_test.pcap.csv"])
    records = frame.iloc[[0, 5, 9]][list(FEATURES)].reset_index(drop=True)
    records["source_id"] = ["Recon-OS_Scan_test.pcap.csv:1", "Recon-OS_Scan_test.pcap.csv:6",
                            "Recon-OS_Scan_test.pcap.csv:11"]  # the third names another row than its own
    records["label"], records["is_attack"], records["record_id"] = "Recon-OS_Scan", True, ["a", "b", "c"]
    assert in_frame(records, frame).tolist() == [True, True, False]
    assert list(assign_parts(records, SplitConfig(), in_frame(records, frame))[:2]) == [IN_TRAINING_DATA] * 2


# the command on real tables -------------------------------------------------------------------
@pytest.fixture()
def tables(tmp_path: Path) -> Path:
    return write_incidents(tmp_path)


def cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["feedback", *argv])
    return code, capsys.readouterr().out


def test_mark_an_incident_then_one_of_its_alerts_and_read_the_labels_back(tables, capsys) -> None:
    book = FeedbackBook(TablesLocation.of(tables))
    ddos = next(r for r in book.incidents.incidents() if r["subject"] == "mac:a" and r["state"] == "open")
    code, out = cli(capsys, "mark", "--incident", ddos["incident_id"][:8], "--false-positive", "--tables", str(tables),
                    "--who", "ana", "--note", "backup job")
    assert code == 0 and "false positive by ana (3 alerts)" in out
    code, out = cli(capsys, "mark", "--alert", "r1-3", "--true-positive", "--class", "ddos-udp", "--tables", str(tables),
                    "--who", "bob")
    assert code == 0 and "alert r1-3: true positive as DDoS-UDP by bob" in out
    rows = sorted(DeltaTable(str(tables / FEEDBACK)).to_pyarrow_table().to_pylist(), key=lambda r: r["at"])
    assert [(r["target"], r["verdict"], r["corrected_class"], r["who"], r["alerts"], r["via"]) for r in rows] == [
        (INCIDENT, FALSE_POSITIVE, None, "ana", 3, "cli"), (ALERT, TRUE_POSITIVE, "DDoS-UDP", "bob", 1, "cli")]
    assert rows[0]["covers_from"] == ddos["first_seen"] and rows[0]["covers_to"] == ddos["last_seen"]
    assert rows[0]["predicted_classes"] == ["DDoS-SYN", "DDoS-UDP"]

    labelled = book.labelled_records().set_index("record_id")
    assert labelled["label"].to_dict() == {"r1-0": "Benign", "r1-1": "Benign", "r1-3": "DDoS-UDP"}
    assert labelled.loc["r1-3", "target"] == ALERT and labelled.loc["r1-0", "verdict"] == FALSE_POSITIVE
    code, out = cli(capsys, "records", "--tables", str(tables), "--format", "json")
    assert code == 0 and sorted(json.loads(line)["record_id"] for line in out.splitlines()) == ["r1-0", "r1-1", "r1-3"]
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert [json.loads(line)["target"] for line in out.splitlines()] == [ALERT, INCIDENT]  # newest first


def test_a_later_verdict_replaces_an_earlier_one_and_list_all_keeps_both(tables, capsys) -> None:
    for kind in ("--true-positive", "--false-positive"):
        assert cli(capsys, "mark", "--alert", "r1-1", kind, "--tables", str(tables))[0] == 0
    code, out = cli(capsys, "list", "--tables", str(tables), "--format", "json")
    assert [json.loads(line)["verdict"] for line in out.splitlines()] == [FALSE_POSITIVE]
    code, out = cli(capsys, "list", "--all", "--tables", str(tables), "--format", "json")
    assert [(json.loads(line)["verdict"], json.loads(line)["current"]) for line in out.splitlines()] == [
        (FALSE_POSITIVE, True), (TRUE_POSITIVE, False)]


def test_wrong_marks_are_refused_with_what_to_do_and_nothing_is_written(tables, capsys, caplog) -> None:
    assert cli(capsys, "mark", "--alert", "r1-1", "--false-positive", "--class", "DDoS-SYN", "--tables",
               str(tables))[0] == 2
    assert "mark it a true positive with --class DDoS-SYN" in caplog.text
    assert cli(capsys, "mark", "--alert", "r1-1", "no-such-alert", "--true-positive", "--tables", str(tables))[0] == 2
    assert "no alerts with the record_id 'no-such-alert'" in caplog.text
    assert cli(capsys, "mark", "--incident", "ffffffff", "--true-positive", "--tables", str(tables))[0] == 2
    assert not (tables / FEEDBACK).exists()
    assert cli(capsys, "records", "--tables", str(tables))[1] == "(no labelled records)\n"


def test_train_and_evaluate_take_the_feedback_tables(tables, capsys, monkeypatch, tmp_path) -> None:
    """``--feedback`` reaches train_bundle and the evaluation as the labelled records of the tables."""
    import models.training.pipeline as pipeline

    assert cli(capsys, "mark", "--alert", "r1-0", "r1-1", "--false-positive", "--tables", str(tables))[0] == 0
    seen = {}
    monkeypatch.setattr(pipeline, "train_bundle", lambda data, out, version=None, config=None, feedback=None:
                        seen.update(records=feedback.records, source=feedback.source) or
                        {"validation_roc_auc_benign_val_vs_attack_train": {}})
    assert main(["train", "--data", "x.csv", "--out", str(tmp_path / "b"), "--feedback", str(tables)]) == 0
    assert sorted(seen["records"]["record_id"]) == ["r1-0", "r1-1"] and seen["source"]["feedback_table_version"] == 0
    assert main(["evaluate", "--json", str(tmp_path / "e.json")]) == 2  # neither --data nor --feedback
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", "x.csv", "--out", str(tmp_path / "b"), "--feedback", str(empty)]) == 2


def test_evaluation_leaves_out_the_replayed_rows_a_bundle_learnt_from(sample_dir) -> None:
    """v3 learnt from the official files the sample is a part of: a labelled record that is one of
    their rows (same file, row number, features) is evaluated only when v3's split held it out; a
    record whose source names no training row is evaluated whatever its features."""
    from models import DEFAULT_BUNDLE_PATH
    from models.bundle import load_bundle
    from models.training.datasets import load_flows_pandas
    from models.training.feedback_eval import evaluate_feedback
    from models.training.split import split_of

    flows = pd.concat([load_flows_pandas([sample_dir / "Benign_test.pcap.csv"]).head(40),
                       load_flows_pandas([sample_dir / "TCP_IP-DDoS-SYN_test.pcap.csv"]).head(40)], ignore_index=True)
    records = flows[list(FEATURES)].assign(
        record_id=[f"r{i}" for i in range(len(flows))], label=flows["label"], is_attack=flows["label"] != "Benign",
        verdict=np.where(flows["label"] == "Benign", FALSE_POSITIVE, TRUE_POSITIVE),
        source_id=flows["source_file"] + ":" + flows["row_number"].astype(str))
    records.loc[70:, "source_id"] = "mac:02:00:00:00:00:01"  # the same rows from a sensor: new to the bundle
    bundle = load_bundle(DEFAULT_BUNDLE_PATH)
    held_out = [split_of(f, r, 20240601) == "test" for f, r in zip(flows["source_file"], flows["row_number"])]
    expected_learnt = sum(not h for h in held_out[:70])
    report, scored = evaluate_feedback(bundle, records)
    assert report["left_out"] == {"learnt_from_feedback": 0, "rows_of_its_training_files": expected_learnt}
    assert report["records_evaluated"] == len(records) - expected_learnt == len(scored)
    assert report["false_positives"]["n"] + report["true_positives"]["n"] == len(scored)
    assert report["true_positives"]["per_class"]["DDoS-SYN"]["detection_rate"] == 1.0  # v3 detects DDoS-SYN
