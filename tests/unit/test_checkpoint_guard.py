"""Which checkpoints may continue which tables (pure: states built by hand)."""
from pathlib import Path

import pytest

from jobs.stream.checkpoint_guard import (CheckpointMismatchError, CheckpointState, TablesState, check_plan, check_resume,
                                          read_checkpoint)

CHECKPOINT = Path("/data/checkpoint")


def _checkpoint(query_id: str | None, last_planned: int | None) -> CheckpointState:
    return CheckpointState(path=CHECKPOINT, query_id=query_id, last_planned=last_planned)


def _tables(last_batch: int | None, query_id: str | None = "q-1") -> TablesState:
    return TablesState(app_id="app", last_batch=last_batch, query_id=query_id)


@pytest.mark.parametrize("checkpoint, tables", [
    (_checkpoint(None, None), _tables(None, None)),            # new tables, new checkpoint
    (_checkpoint("q-9", 40), _tables(None, None)),             # a new app id on old tables
    (_checkpoint("q-1", 7), _tables(7)),                       # a clean restart
    (_checkpoint("q-1", 8), _tables(7)),                       # batch 8 planned, not yet written
    (_checkpoint("q-1", 7), _tables(7, None)),                 # tables of an earlier version: no query id kept
])
def test_a_checkpoint_that_continues_its_tables_starts(checkpoint, tables) -> None:
    check_resume(checkpoint, tables, "/data/delta")


@pytest.mark.parametrize("checkpoint, tables, says", [
    (_checkpoint(None, None), _tables(7), "the checkpoint /data/checkpoint is missing or empty"),
    (_checkpoint("q-2", 9), _tables(7), "written by query q-1, but the checkpoint /data/checkpoint belongs to query q-2"),
    (_checkpoint("q-1", 3), _tables(7), "ends at batch 3 (restored from an older backup?)"),
    (_checkpoint("q-1", None), _tables(0), "ends at no batch"),
    (_checkpoint("q-1", 3), _tables(7, None), "ends at batch 3"),
])
def test_a_checkpoint_that_does_not_refuses_and_says_what_to_do(checkpoint, tables, says) -> None:
    with pytest.raises(CheckpointMismatchError) as raised:
        check_resume(checkpoint, tables, "/data/delta")
    message = str(raised.value)
    assert says in message
    assert "hold batches up to 7" in message or "hold batches up to 0" in message
    assert "new stream.app_id (for example 'app-2')" in message and "Restore the checkpoint" in message


def test_read_checkpoint_takes_the_query_id_and_the_last_planned_batch(tmp_path) -> None:
    assert read_checkpoint(tmp_path / "nowhere") == CheckpointState(str((tmp_path / "nowhere").resolve()), None, None)
    (tmp_path / "metadata").write_text('{"id":"5b1c-query"}\n')
    (tmp_path / "offsets").mkdir()
    for name in ("0", "1", "12", ".12.crc", "7.tmp"):
        (tmp_path / "offsets" / name).write_text("v1\n")
    assert read_checkpoint(tmp_path) == CheckpointState(str(tmp_path.resolve()), "5b1c-query", 12)
    (tmp_path / "metadata").write_text("garbage")
    with pytest.raises(CheckpointMismatchError, match="cannot be read"):
        read_checkpoint(tmp_path)


def test_read_checkpoint_tells_done_batches_and_state(tmp_path) -> None:
    (tmp_path / "metadata").write_text('{"id":"q"}\n')
    for log, names in (("offsets", ("0", "1", "2")), ("commits", ("0", "1", ".1.crc"))):
        (tmp_path / log).mkdir()
        for name in names:
            (tmp_path / log / name).write_text("v1\n")
    assert read_checkpoint(tmp_path) == CheckpointState(str(tmp_path.resolve()), "q", 2, 1, False)
    (tmp_path / "state" / "0").mkdir(parents=True)
    assert read_checkpoint(tmp_path).has_state


@pytest.mark.parametrize("checkpoint, context_windows", [
    (CheckpointState(CHECKPOINT, None, None), 7),             # a new checkpoint starts either way
    (CheckpointState(CHECKPOINT, None, None), 0),
    (CheckpointState(CHECKPOINT, "q", 0, None, False), 7),    # its first batch planned, none done yet
    (CheckpointState(CHECKPOINT, "q", 9, 8, True), 7),        # written with the context, still on
    (CheckpointState(CHECKPOINT, "q", 9, 8, True), 3),        # fewer windows kept from now on: the same plan
    (CheckpointState(CHECKPOINT, "q", 9, 8, False), 0),       # written without, still off
])
def test_a_checkpoint_of_the_same_plan_starts(checkpoint, context_windows) -> None:
    check_plan(checkpoint, context_windows, "app")


@pytest.mark.parametrize("checkpoint, context_windows, says", [
    (CheckpointState(CHECKPOINT, "q", 9, 8, False), 7,
     "context_windows is 7, but the checkpoint /data/checkpoint holds batches up to 8 done without the device context"),
    (CheckpointState(CHECKPOINT, "q", 9, 8, True), 0,
     "context_windows is 0 (off), but the checkpoint /data/checkpoint was written with the device context"),
])
def test_a_checkpoint_of_the_other_plan_refuses_and_says_what_to_do(checkpoint, context_windows, says) -> None:
    with pytest.raises(CheckpointMismatchError) as raised:
        check_plan(checkpoint, context_windows, "app")
    message = str(raised.value)
    assert message.startswith("refusing to start: ") and says in message
    assert "a new stream.checkpoint_dir and a new stream.app_id (for example 'app-2'" in message
