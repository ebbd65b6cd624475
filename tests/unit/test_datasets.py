import math

import numpy as np
import pytest

from models.training.datasets import DatasetNotFoundError, load_flows_pandas
from schemas.classes import CLASSES
from schemas.csv_layout import CsvLayoutError
from schemas.flow_record import FEATURES


def _data_rows(path) -> int:
    with path.open() as handle:
        return sum(1 for _ in handle) - 1


def test_every_shared_file_loads_with_its_class(shared_data) -> None:
    directory = shared_data / "ciciomt2024"
    flows = load_flows_pandas([directory])
    assert set(flows["label"]) == set(CLASSES)
    for path in sorted(directory.glob("*.csv")):
        rows = flows[flows["source_file"] == path.name]
        assert len(rows) == _data_rows(path), path.name
        assert rows["label"].nunique() == 1
    # the two captures of DDoS-UDP are one class
    udp = flows[flows["label"] == "DDoS-UDP"]["source_file"].unique()
    assert sorted(udp) == ["TCP_IP-DDoS-UDP1_test.pcap.csv", "TCP_IP-DDoS-UDP2_test.pcap.csv"]


def test_sample_has_every_class_and_keeps_row_numbers(sample_dir, shared_data) -> None:
    sample = load_flows_pandas([sample_dir])
    assert set(sample["label"]) == set(CLASSES)
    assert set(sample["category"]) == {"Benign", "DDoS", "DoS", "MQTT", "Recon", "Spoofing"}
    full = load_flows_pandas([shared_data / "ciciomt2024" / "TCP_IP-DoS-TCP_test.pcap.csv"])
    part = sample[sample["source_file"] == "TCP_IP-DoS-TCP_test.pcap.csv"]
    merged = part.merge(full, on=["source_file", "row_number"], suffixes=("", "_full"))
    assert len(merged) == len(part)
    np.testing.assert_array_equal(merged["Rate"].to_numpy(), merged["Rate_full"].to_numpy())


def test_inf_is_kept_and_empty_cells_are_missing(tmp_path) -> None:
    header = ",".join(FEATURES)
    values = ["1"] * len(FEATURES)
    values[FEATURES.index("Rate")] = "inf"
    values[FEATURES.index("Std")] = ""
    (tmp_path / "Recon-OS_Scan_test.pcap.csv").write_text(header + "\n" + ",".join(values) + "\n")
    flows = load_flows_pandas([tmp_path])
    assert math.isinf(flows.loc[0, "Rate"]) and flows.loc[0, "Rate"] > 0
    assert math.isnan(flows.loc[0, "Std"])
    assert flows.loc[0, "label"] == "Recon-OS_Scan"
    assert flows.loc[0, "row_number"] == 1


def test_original_release_directory_is_refused(shared_data) -> None:
    with pytest.raises(CsvLayoutError, match="45-feature"):
        load_flows_pandas([shared_data / "ciciomt2024-original-release"])


def test_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        load_flows_pandas([tmp_path / "nope"])
