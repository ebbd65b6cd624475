"""The crash tests' pause point: off without the variable, once per marker, loud on a bad setting."""
import pytest

from jobs.stream import failpoints
from jobs.stream.failpoints import BEFORE_BATCH_LOG, PAUSE_ENV, pause_point


def test_without_the_variable_nothing_happens(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    pause_point(BEFORE_BATCH_LOG, 3)
    assert list(tmp_path.iterdir()) == []


def test_the_point_writes_its_marker_once_and_pauses(monkeypatch, tmp_path) -> None:
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, f"{BEFORE_BATCH_LOG}:{marker}")
    slept: list[float] = []
    monkeypatch.setattr(failpoints.time, "sleep", slept.append)
    pause_point(BEFORE_BATCH_LOG, 7)
    assert marker.read_text() == "7" and slept == [failpoints.PAUSE_S]
    pause_point(BEFORE_BATCH_LOG, 8)  # the marker exists: the job goes on
    assert marker.read_text() == "7" and len(slept) == 1


def test_a_bad_setting_is_an_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(PAUSE_ENV, f"after_lunch:{tmp_path / 'm'}")
    with pytest.raises(ValueError, match="expected <point>:<marker file>"):
        pause_point(BEFORE_BATCH_LOG, 1)
