"""Delta tables written by the real streaming job (files source, in this test session's Spark),
shared by the re-scoring, analyst-query and maintenance tests.

Records get event times one minute apart from 2025-03-01 22:00 UTC, so the tables span two
``event_date`` partitions and many hours; a few malformed lines fill the quarantine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.helpers.streaming import BUNDLE, good_messages, run_to_end

N_RECORDS = 1200
FILES = 3
START = datetime(2025, 3, 1, 22, 0, tzinfo=timezone.utc)
# (raw line, the quarantine reason the job must give), written out by hand
MALFORMED = (
    ('{"record_id": "batch-bad-1", "Rate": "fast"', "malformed JSON: not a JSON object"),
    ("[1, 2, 3]", "malformed JSON: not a JSON object"),
)


@dataclass(frozen=True)
class JobTables:
    tables_dir: Path
    messages: tuple[dict, ...]        # the good records as sent
    conf_path: Path                   # a YAML configuration pointing at tables_dir


def event_time(index: int) -> datetime:
    return START + timedelta(minutes=index)


def write_conf(path: Path, tables_dir: Path, incoming: Path) -> Path:
    path.write_text(
        "spark:\n  master: local[2]\n  conf:\n    spark.ui.enabled: false\n    spark.sql.shuffle.partitions: 2\n"
        "    spark.sql.session.timeZone: UTC\n    spark.sql.execution.arrow.maxRecordsPerBatch: 500\n"
        f"stream:\n  source: files\n  files:\n    path: {incoming}\n    max_files_per_trigger: 1\n"
        f"  tables_dir: {tables_dir}\n  trigger: availableNow\n  model_dir: {BUNDLE}\n"
        "  event_time_max_past: 3650 days\n"  # the records carry their own times of March 2025
        "influxdb:\n  enabled: false\n")
    return path


@pytest.fixture(scope="session")
def job_tables(spark, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> JobTables:
    from jobs.config import load_config

    root = tmp_path_factory.mktemp("batch-tables")
    incoming, tables_dir = root / "incoming", root / "delta"
    incoming.mkdir()
    messages = []
    for index, (_, message) in enumerate(good_messages(sample_dir, N_RECORDS, seed=11)):
        messages.append(dict(message, event_time=event_time(index).isoformat().replace("+00:00", "Z")))
    per_file = -(-len(messages) // FILES)
    for number in range(FILES):
        chunk = messages[number * per_file:(number + 1) * per_file]
        (incoming / f"flows-{number}.json").write_text("".join(json.dumps(m) + "\n" for m in chunk))
    (incoming / "flows-bad.json").write_text("".join(raw + "\n" for raw, _ in MALFORMED))
    conf_path = write_conf(root / "conf.yaml", tables_dir, incoming)
    run_to_end(spark, load_config(conf_path))
    return JobTables(tables_dir=tables_dir, messages=tuple(messages), conf_path=conf_path)
