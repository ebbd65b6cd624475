"""Which checkpoints may continue which tables (pure: states built by hand)."""
from pathlib import Path

import pytest

from jobs.stream.checkpoint_guard import CheckpointMismatchError, CheckpointState, TablesState, check_resume, read_checkpoint

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
