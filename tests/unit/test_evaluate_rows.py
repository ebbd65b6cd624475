"""``iomt-ad evaluate`` scores the rows a bundle never learnt from: held-out rows of its own data
(recognised row by row through its training-row fingerprint), every row of anything else."""
import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from models.bundle import TRAINING_ROWS_FILE, sha256_of
from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.training.evaluation import rows_to_evaluate
from models.training.split import TEST, SplitConfig, split_frame
from models.training.training_rows import fingerprint_bytes, vector_hashes

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "ciciomt2024-sample"
BENIGN = "Benign_test.pcap.csv"
FLOOD = "TCP_IP-DDoS-UDP1_test.pcap.csv"


@pytest.fixture()
def bundle(tmp_path):
    """A bundle made, as far as evaluation can tell, from two files of the committed sample."""
    training = [SAMPLE / BENIGN, SAMPLE / FLOOD]
    payload = fingerprint_bytes(load_flows_pandas(training))
    directory = tmp_path / "bundle"
    directory.mkdir()
    (directory / TRAINING_ROWS_FILE).write_bytes(payload)
    manifest = json.loads((REPO / "models" / "v3" / "manifest.json").read_text())
    manifest["training_files"] = [{"name": p.name, "sha256": sha256_of(p)} for p in training]
    manifest["files"] = {TRAINING_ROWS_FILE: hashlib.sha256(payload).hexdigest()}
    return SimpleNamespace(path=directory, manifest=manifest)


def _choose(bundle, files, mode="auto"):
    files = list_flow_csvs(files)
    frame = load_flows_pandas(files)
    part = split_frame(frame, SplitConfig.from_description(bundle.manifest["split"]))
    evaluated, info = rows_to_evaluate(frame, part, files, bundle, mode)
    return frame, part, evaluated, {entry["name"]: entry for entry in info}


def test_the_bundles_own_files_give_only_their_held_out_rows(bundle) -> None:
    frame, part, evaluated, info = _choose(bundle, [SAMPLE / BENIGN, SAMPLE / FLOOD])
    assert evaluated.equals(part.eq(TEST))
    assert 0 < info[BENIGN]["rows_evaluated"] < info[BENIGN]["rows"] == info[BENIGN]["rows_of_the_bundles_data"]


def test_a_part_of_a_training_file_is_recognised_row_by_row(bundle, tmp_path) -> None:
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    lines = (SAMPLE / BENIGN).read_text().splitlines(keepends=True)
    (part_dir / BENIGN).write_text("".join(lines[:301]))  # the header and the first 300 rows
    frame, part, evaluated, info = _choose(bundle, [part_dir / BENIGN])
    assert info[BENIGN]["rows"] == 300 and not info[BENIGN]["same_as_training"]
    assert info[BENIGN]["rows_of_the_bundles_data"] == 300
    assert evaluated.equals(part.eq(TEST)) and evaluated.sum() < 300


def test_a_users_file_named_like_a_training_file_is_evaluated_whole(bundle, tmp_path) -> None:
    own_dir = tmp_path / "site"
    own_dir.mkdir()
    rows = pd.read_csv(SAMPLE / BENIGN)
    rows.iloc[::-1].to_csv(own_dir / BENIGN, index=False)  # other rows under each row number
    frame, part, evaluated, info = _choose(bundle, [own_dir / BENIGN])
    # only a row that lands on its own row number again (the middle one, or a repeated row) is the bundle's
    same = vector_hashes(frame) == vector_hashes(load_flows_pandas([SAMPLE / BENIGN]))
    assert 0 < same.sum() < 10 and info[BENIGN]["rows_of_the_bundles_data"] == same.sum()
    assert evaluated.to_numpy().tolist() == (~same | part.eq(TEST).to_numpy()).tolist()
    assert info[BENIGN]["rows_evaluated"] > len(rows) - 10


def test_files_the_bundle_never_saw_are_evaluated_whole_and_modes_override(bundle) -> None:
    other = SAMPLE / "ARP_Spoofing_train.pcap.csv"
    frame, part, evaluated, info = _choose(bundle, [SAMPLE / BENIGN, other])
    new = frame["source_file"].eq(other.name)
    assert bool(evaluated[new].all()) and info[other.name]["rows_of_the_bundles_data"] == 0
    assert evaluated[~new].equals(part[~new].eq(TEST))
    _, _, everything, _ = _choose(bundle, [SAMPLE / BENIGN, other], mode="all")
    assert bool(everything.all())
    _, part, held_out, _ = _choose(bundle, [SAMPLE / BENIGN, other], mode="held-out")
    assert held_out.equals(part.eq(TEST))


def test_a_bundle_without_a_fingerprint_falls_back_to_file_names(bundle, tmp_path) -> None:
    bundle.manifest["files"] = {}
    shutil.copy(SAMPLE / FLOOD, tmp_path / FLOOD)
    frame, part, evaluated, info = _choose(bundle, [tmp_path / FLOOD, SAMPLE / "ARP_Spoofing_train.pcap.csv"])
    flood = frame["source_file"].eq(FLOOD)
    assert evaluated[flood].equals(part[flood].eq(TEST)) and bool(evaluated[~flood].all())
    assert info[FLOOD]["same_as_training"]
