"""The JSON-lines file output: one OCSF Detection Finding a line, on disk before it counts as sent,
a new file after logrotate moved the old one away, and a clear error when it cannot write."""
from __future__ import annotations

import json
import os
import stat

import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.outputs.base import OutputError, build_outputs
from jobs.outputs.config import FileOutputConfig
from jobs.outputs.file_output import FileOutput
from tests.helpers.incident_updates import incident


def _update(n: int, batch_id: int) -> dict:
    return {**incident(n, batch_id), "update_id": f"{n:032x}:{batch_id}", "change": "opened", "queued_at": None}


def test_each_update_is_one_ocsf_line_and_a_rotated_file_is_recreated(tmp_path) -> None:
    path = tmp_path / "siem" / "incidents.jsonl"
    output = FileOutput(FileOutputConfig(enabled=True, path=str(path)), "0.1.0")
    output.send(_update(1, 4))
    output.send(_update(2, 4))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["metadata"]["uid"] for line in lines] == [f"{1:032x}:4", f"{2:032x}:4"]
    assert {line["class_uid"] for line in lines} == {2004}
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0  # not readable by others: it names devices
    path.rename(tmp_path / "siem" / "incidents.jsonl.1")  # logrotate, without copytruncate or a signal
    output.send(_update(3, 5))
    assert [json.loads(line)["metadata"]["uid"] for line in path.read_text().splitlines()] == [f"{3:032x}:5"]


def test_an_unwritable_file_is_a_failed_delivery_retried_later(tmp_path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    output = FileOutput(FileOutputConfig(enabled=True, path=str(blocked / "incidents.jsonl")), "0.1.0")
    with pytest.raises(OutputError, match="cannot append"):
        output.send(_update(1, 1))
    if os.geteuid() != 0:  # root writes through permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError):
            FileOutput(FileOutputConfig(enabled=True, path=str(locked / "x.jsonl")), "0.1.0").send(_update(1, 1))


def test_the_file_output_is_configured_and_built(tmp_path) -> None:
    config = config_from_mapping({"alerts": {"outputs": {"file": {"enabled": True, "path": str(tmp_path / "a.jsonl")}}}})
    assert config.alerts.outputs.enabled() == ("file",)
    assert [o.name for o in build_outputs(config)] == ["file"]
    with pytest.raises(ConfigError, match="file"):
        config_from_mapping({"alerts": {"outputs": {"file": {"enabled": True, "path": " "}}}})
