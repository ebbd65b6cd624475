"""A directory given as a capture stands for the capture files in it (the shared testbed folders)."""
from __future__ import annotations

import pytest

from jobs.sensor.capture import CaptureError, CaptureReport, capture_files, read_files


def test_a_directory_is_its_capture_files(shared_data, tmp_path) -> None:
    folder = shared_data / "pcap" / "mqtt-testbed-labelled"
    files = capture_files([folder])
    assert files == sorted(p for p in folder.iterdir() if p.suffix == ".pcap")  # not the labels or checksums
    assert len(files) == 23
    single = shared_data / "pcap" / "iomt-testbed-benign" / "capture-07062023-114652.pcap"
    assert capture_files([single, folder]) == [single, *files]
    report = CaptureReport(source="files")
    packets = sum(len(batch) for batch in read_files([single.parent], report))
    assert packets == 19_604 and report.files == [str(single)]
    (tmp_path / "notes.txt").write_text("no captures here")
    with pytest.raises(CaptureError, match="without capture files"):
        capture_files([tmp_path])
