import pytest

from models.training.datasets import read_csv_header
from schemas.csv_layout import CsvLayoutError, check_csv_header
from schemas.flow_record import FEATURES


def test_current_release_header_is_accepted(sample_dir) -> None:
    for path in sorted(sample_dir.glob("*.csv")):
        check_csv_header(read_csv_header(path), str(path))  # raises on failure


def test_original_45_feature_release_is_refused_naming_release_and_columns(shared_data) -> None:
    for path in sorted((shared_data / "ciciomt2024-original-release").glob("*.csv")):
        with pytest.raises(CsvLayoutError) as excinfo:
            check_csv_header(read_csv_header(path), str(path))
        message = str(excinfo.value)
        assert path.name in message
        assert "45-feature release" in message
        assert "Missing columns (1): Time_To_Live" in message
        for column in ("Duration", "Srate", "Drate", "Magnitue", "Radius", "Covariance", "Weight"):
            assert column in message


def test_another_dataset_is_refused_as_not_ciciomt2024(shared_data) -> None:
    path = shared_data / "wustl-ehms-2020" / "data.csv"
    with pytest.raises(CsvLayoutError) as excinfo:
        check_csv_header(read_csv_header(path), str(path))
    assert "not a CICIoMT2024 flow-feature file" in str(excinfo.value)
    # WUSTL-EHMS shares only the name "Rate" with CICIoMT2024
    assert "Missing columns (38)" in str(excinfo.value)


def test_reordered_columns_are_refused_with_the_expected_order() -> None:
    columns = list(FEATURES)
    columns[0], columns[1] = columns[1], columns[0]
    with pytest.raises(CsvLayoutError, match="another order"):
        check_csv_header(columns, "x.csv")


def test_one_missing_column_is_named() -> None:
    columns = [c for c in FEATURES if c != "Tot size"]
    with pytest.raises(CsvLayoutError, match=r"Missing columns \(1\): Tot size\."):
        check_csv_header(columns, "x.csv")


def test_empty_file_is_refused(tmp_path) -> None:
    path = tmp_path / "Benign_test.pcap.csv"
    path.write_text("")
    with pytest.raises(CsvLayoutError):
        check_csv_header(read_csv_header(path), str(path))
