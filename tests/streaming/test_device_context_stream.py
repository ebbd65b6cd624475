"""The device context in the real stream (files source, one file a micro-batch): every record's context
is what :func:`models.sequences.frame_contexts` gives over all records at once, across micro-batches
and a restart from the checkpoint; quarantined and device-less records pass with none; an idle
device's state expires after ``state_ttl``; nothing is lost or written twice; a checkpoint of the
other plan refuses to start."""
from __future__ import annotations

import json
import math
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from jobs.config import AppConfig
from jobs.stream.checkpoint_guard import CheckpointMismatchError
from jobs.stream.sink import ForeachBatchSink
from models.sequences import frame_contexts
from schemas.flow_record import FEATURES
from tests.helpers.streaming import drop_file, files_stream_config, good_messages, run_to_end

pytestmark = [pytest.mark.spark, pytest.mark.slow]

WINDOWS = 3
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)  # within event_time_max_past


def _config(tmp: Path, context_windows: int = WINDOWS, state_ttl: str = "1 hour") -> AppConfig:
    return files_stream_config(
        tmp, app_id="context", files={"path": str(tmp / "incoming"), "max_files_per_trigger": 1},
        sequence={"context_windows": context_windows, "max_gap": "10 minutes", "state_ttl": state_ttl})


def _at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


class _Recording(ForeachBatchSink):
    """The job's own sink, which first notes each record's context (the test reads them here) and,
    once, crashes at batch ``crash_at`` before writing anything."""

    seen: list[dict] = []
    crash_at: int | None = None

    def __call__(self, batch, batch_id: int) -> None:
        batch = batch.persist()
        columns = ["record_id", "device_id", "quarantine_reason", *(["context"] if "context" in batch.columns else [])]
        self.seen.extend(dict(row.asDict(recursive=True), batch_id=batch_id)
                         for row in batch.select(*columns).collect())
        if batch_id == _Recording.crash_at:
            _Recording.crash_at = None
            raise RuntimeError(f"crash in batch {batch_id}")
        super().__call__(batch, batch_id)
        batch.unpersist()


@pytest.fixture
def recording(monkeypatch, spark):
    """The records each batch's sink saw; the session's settings as they were afterwards."""
    from jobs.stream.device_context import SESSION_SETTINGS

    _Recording.seen, _Recording.crash_at = [], None
    monkeypatch.setattr("jobs.stream.sink.make_foreach_batch", _Recording)
    before = {key: spark.conf.get(key, None) for key in SESSION_SETTINGS}
    yield _Recording.seen
    for key, value in before.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def _run(spark, config: AppConfig, crashes: bool = False) -> None:
    from pyspark.errors import StreamingQueryException

    from jobs.stream.score_stream import start_query

    if not crashes:
        run_to_end(spark, config)
        return
    query = start_query(spark, config)
    with pytest.raises(StreamingQueryException, match="crash in batch"):
        query.awaitTermination()


def _traffic(sample_dir: Path) -> tuple[list[dict], list[tuple[float, str]]]:
    """(the good records, every line with its event time): two devices, one with a 20-minute
    silence, records without a device, and quarantined records with and without a device."""
    good = [m for _, m in good_messages(sample_dir, 40, seed=5)]
    records = [dict(m, device_id="mac:aa", event_time=_at(60 * i)) for i, m in enumerate(good[:14])]
    records += [dict(m, device_id="ip:10.0.0.7", event_time=_at(45 * i + (1200 if i >= 6 else 0)))
                for i, m in enumerate(good[14:28])]
    records += [dict(m, event_time=_at(70 * i + 5)) for i, m in enumerate(good[28:36])]  # no device
    missing = {k: v for k, v in good[36].items() if k != "IAT"}
    bad = [(json.dumps(dict(missing, record_id="bad-missing", device_id="mac:aa", event_time=_at(125))), 125),
           (json.dumps(dict(good[37], record_id="bad-text", Rate="fast", device_id="ip:10.0.0.7",
                            event_time=_at(500))), 500),
           ("{not json", 300), ('"just a string"', 900)]
    lines = [(datetime.fromisoformat(r["event_time"]).timestamp(), json.dumps(r)) for r in records]
    lines += [(BASE.timestamp() + seconds, raw) for raw, seconds in bad]
    return records, sorted(lines)


def _files(lines: list[tuple[float, str]], count: int) -> list[list[str]]:
    """The lines in ``count`` files of consecutive times, each file's lines shuffled."""
    size = math.ceil(len(lines) / count)
    files = [[line for _, line in lines[i:i + size]] for i in range(0, len(lines), size)]
    rng = random.Random(3)
    for file in files:
        rng.shuffle(file)
    return files


def _expected(records: list[dict]) -> dict[str, list | None]:
    """Each good record's context as frame_contexts gives it over all of them at once."""
    frame = pd.DataFrame([{**{f: r[f] for f in FEATURES}, "device_id": r.get("device_id"),
                           "event_time": r["event_time"], "record_id": r["record_id"]} for r in records])
    return {rid: _comparable(c) for rid, c in zip(frame["record_id"], frame_contexts(frame, WINDOWS + 1, 600))}


def _comparable(context) -> list | None:
    """A context with NaN as None (comparable with ==), from pairs or from the column's structs."""
    if context is None:
        return None
    pairs = [(w["event_time_ns"], w["features"]) if isinstance(w, dict) else w for w in context]
    return [(int(t), [None if v is None or math.isnan(v) else float(v) for v in values]) for t, values in pairs]


def _flow_ids(tmp: Path) -> list[str]:
    from deltalake import DeltaTable

    return DeltaTable(str(tmp / "delta" / "flows_scored")).to_pyarrow_table(columns=["record_id"])["record_id"].to_pylist()


def _quarantined(tmp: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(tmp / "delta" / "quarantine")).to_pyarrow_table(columns=["record_id"]).num_rows


def test_every_record_gets_its_devices_earlier_windows_across_batches_a_crash_and_a_restart(
        spark, sample_dir, tmp_path, recording) -> None:
    records, lines = _traffic(sample_dir)
    files = _files(lines, 5)
    for index, file in enumerate(files[:3]):
        drop_file(tmp_path / "incoming", f"{index}.json", file)
    config = _config(tmp_path)
    _Recording.crash_at = 1  # after its operator's tasks have run (and their state versions been written)
    _run(spark, config, crashes=True)
    _run(spark, config)  # batch 1 again, from the state before it, then batch 2
    assert len(recording) == sum(len(f) for f in files[:3]) + len(files[1])
    for index, file in enumerate(files[3:], start=3):  # the restart continues each device's windows
        drop_file(tmp_path / "incoming", f"{index}.json", file)
    _run(spark, config)

    replayed = [row for row in recording if row["batch_id"] == 1]
    assert len(replayed) == 2 * len(files[1])
    seen: dict[str, list[dict]] = {}
    for row in recording:
        seen.setdefault(row["record_id"], []).append(row)
    assert all(len(rows) == (2 if rows[0]["batch_id"] == 1 else 1) for rows in seen.values())
    assert all(rows[0]["context"] == rows[-1]["context"] for rows in seen.values())  # the replay: the same contexts
    assert len(seen) == len(lines)  # each record (an unparsable line's id: its file and hash)
    expected = _expected(records)
    got = {rid: _comparable(rows[-1]["context"]) for rid, rows in seen.items() if rid in expected}
    assert got == expected
    assert sum(1 for c in expected.values() if c and len(c) == WINDOWS) > 10  # full contexts, not only short ones
    assert [len(expected[r["record_id"]]) for r in records[14:28]][5:8] == [3, 0, 1]  # the silence cuts it
    passed = [row for row in recording if row["quarantine_reason"] is not None or row["device_id"] is None]
    assert len({row["record_id"] for row in passed}) == 8 + 4 and all(row["context"] is None for row in passed)

    flows = _flow_ids(tmp_path)
    assert sorted(flows) == sorted(r["record_id"] for r in records)  # each once
    assert _quarantined(tmp_path) == 4
    assert "context" not in spark.read.format("delta").load(str(tmp_path / "delta" / "flows_scored")).columns

    # the same checkpoint without the context: refused, nothing written
    from jobs.stream.score_stream import start_query

    with pytest.raises(CheckpointMismatchError, match="written with the device context"):
        start_query(spark, _config(tmp_path, context_windows=0))
    assert len(_flow_ids(tmp_path)) == len(records)


def test_an_idle_devices_windows_expire_after_the_state_ttl(spark, sample_dir, tmp_path, recording) -> None:
    good = [m for _, m in good_messages(sample_dir, 3, seed=8)]
    config = _config(tmp_path, state_ttl="10 seconds")
    for index, seconds in enumerate((0, 60, 120)):
        if index == 1:
            _run(spark, config)
            time.sleep(11)  # processing time: longer than the TTL, while the event-time gap stays 60 s
        drop_file(tmp_path / "incoming", f"{index}.json", [json.dumps(dict(good[index], device_id="mac:aa",
                                                                  event_time=_at(seconds)))])
    _run(spark, config)  # two batches, seconds apart: the second one's window is kept for the third
    contexts = {row["record_id"]: row["context"] for row in recording}
    assert contexts == {
        good[0]["record_id"]: [],
        good[1]["record_id"]: [],  # its device's state expired: without the TTL, good[0]'s window
        good[2]["record_id"]: [{"event_time_ns": int((BASE + timedelta(seconds=60)).timestamp()) * 10**9,
                                "features": [float(good[1][f]) for f in FEATURES]}]}


def test_a_checkpoint_written_without_the_context_refuses_to_start_with_it(spark, sample_dir, tmp_path,
                                                                           recording) -> None:
    from jobs.stream.score_stream import start_query

    good = [m for _, m in good_messages(sample_dir, 4, seed=9)]
    drop_file(tmp_path / "incoming", "0.json", [json.dumps(dict(m, device_id="mac:aa")) for m in good])
    _run(spark, _config(tmp_path, context_windows=0))
    assert len(recording) == 4 and all("context" not in row for row in recording)
    with pytest.raises(CheckpointMismatchError, match="context_windows is 3, but the checkpoint .* done without"):
        start_query(spark, _config(tmp_path))
