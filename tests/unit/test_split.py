"""The split is a pure, stable function of (seed, source_file, row_number)."""
from __future__ import annotations

import pandas as pd
import pytest

from models.training.split import (SplitConfig, SplitConfigError, TEST, TRAIN, VALIDATION, row_bucket, split_frame,
                          split_of, split_rows)

SEED = 20240601


@pytest.mark.parametrize(("source_file", "row_number", "expected", "bucket"), [
    # Pinned: if these change, every bundle's held-out rows change; bump the bundle format instead.
    ("Benign_test.pcap.csv", 1, TRAIN, 0.218643),
    ("Benign_test.pcap.csv", 4, TEST, 0.83771),
    ("TCP_IP-DDoS-UDP1_test.pcap.csv", 2, TRAIN, 0.23331),
    ("ARP_Spoofing_train.pcap.csv", 10, TRAIN, 0.666293),
])
def test_pinned_assignments(source_file: str, row_number: int, expected: str, bucket: float) -> None:
    assert split_of(source_file, row_number, SEED) == expected
    assert row_bucket(source_file, row_number, SEED) == pytest.approx(bucket, abs=1e-6)


def test_benign_bucket_edges_map_to_parts() -> None:
    config = SplitConfig(seed=SEED, benign_train=0.6, benign_validation=0.2, attack_train=0.7)
    # Benign_test row 3 has bucket 0.5338 (< 0.6 -> train); with benign_train=0.5 it is validation.
    assert split_of("Benign_test.pcap.csv", 3, SEED, config) == TRAIN
    moved = SplitConfig(seed=SEED, benign_train=0.5, benign_validation=0.2)
    assert split_of("Benign_test.pcap.csv", 3, SEED, moved) == VALIDATION


def test_directory_part_of_the_path_is_ignored() -> None:
    assert row_bucket("/data/x/Benign_test.pcap.csv", 7, 3) == row_bucket("Benign_test.pcap.csv", 7, 3)


def test_attack_rows_are_never_validation_and_fractions_hold() -> None:
    config = SplitConfig(seed=11)
    benign = split_rows(["Benign_test.pcap.csv"] * 20000, range(1, 20001), config)
    attack = split_rows(["TCP_IP-DoS-TCP_test.pcap.csv"] * 20000, range(1, 20001), config)
    assert set(attack) == {TRAIN, TEST}
    counts = pd.Series(benign).value_counts(normalize=True)
    assert counts[TRAIN] == pytest.approx(0.6, abs=0.015)
    assert counts[VALIDATION] == pytest.approx(0.2, abs=0.015)
    assert counts[TEST] == pytest.approx(0.2, abs=0.015)
    assert pd.Series(attack).eq(TEST).mean() == pytest.approx(0.3, abs=0.015)


def test_membership_does_not_depend_on_other_rows() -> None:
    frame = pd.DataFrame({"source_file": ["Benign_test.pcap.csv"] * 50 + ["Recon-OS_Scan_test.pcap.csv"] * 50,
                          "row_number": list(range(1, 51)) * 2})
    config = SplitConfig(seed=5)
    whole = split_frame(frame, config)
    subset = frame.iloc[::7]
    assert split_frame(subset, config).tolist() == whole.iloc[::7].tolist()
    assert [split_of(f, r, 5) for f, r in zip(subset["source_file"], subset["row_number"])] == whole.iloc[::7].tolist()


def test_seed_changes_assignment() -> None:
    a = split_rows(["Benign_test.pcap.csv"] * 200, range(1, 201), SplitConfig(seed=1))
    b = split_rows(["Benign_test.pcap.csv"] * 200, range(1, 201), SplitConfig(seed=2))
    assert (a != b).sum() > 50


def test_description_round_trip() -> None:
    config = SplitConfig(seed=9, benign_train=0.5, benign_validation=0.25, attack_train=0.6)
    description = config.describe()
    assert description["benign_test"] == 0.25 and description["attack_test"] == 0.4
    assert SplitConfig.from_description(description) == config


@pytest.mark.parametrize("kwargs", [dict(benign_train=0.8, benign_validation=0.2), dict(benign_train=0.0),
                                    dict(attack_train=1.0)])
def test_bad_fractions_are_refused(kwargs: dict) -> None:
    with pytest.raises(SplitConfigError):
        SplitConfig(**kwargs)
