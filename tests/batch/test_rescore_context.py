"""Re-scoring for a sequence autoencoder: each stored record gets its device's earlier records of the
range as context (what :func:`models.sequences.frame_contexts` gives over them all at once), records
without a device none, and the scoring UDF takes the context beside the features. The job's tables
hold replayed records (no device): devices are given here, three of them by record."""
from __future__ import annotations

import math

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from jobs.batch.rescore import Sequences, TimeRange, rescored_rows, source_flows
from jobs.config import load_config
from models.sequences import frame_contexts
from schemas.flow_record import FEATURE_COLUMNS, FEATURES
from tests.helpers.streaming import BUNDLE

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RANGE = ("2025-03-01T23:00:00Z", "2025-03-02T01:00:00Z")


@pytest.fixture(scope="module")
def flows(spark, job_tables):
    stored = source_flows(spark, load_config(job_tables.conf_path).stream.tables, TimeRange.parse(*RANGE))
    device = F.when(F.pmod(F.xxhash64("record_id"), F.lit(4)) < 3,
                    F.concat(F.lit("mac:0"), F.pmod(F.xxhash64("record_id"), F.lit(4)).cast("string")))
    return stored.withColumn("device_id", device).cache()


def _comparable(context) -> list | None:
    if context is None:
        return None
    pairs = [(w["event_time_ns"], w["features"]) if isinstance(w, dict) else w for w in context]
    return [(int(t), [None if math.isnan(v) else v for v in values]) for t, values in pairs]


def test_each_record_gets_its_devices_earlier_records_of_the_range(spark, flows) -> None:
    from jobs.transforms import with_contexts

    got = {r["record_id"]: _comparable(r["context"]) for r in
           (r.asDict(recursive=True) for r in with_contexts(flows, 4, 600).select("record_id", "context").collect())}
    frame = flows.toPandas().rename(columns=dict(zip(FEATURE_COLUMNS, FEATURES)))
    expected = {rid: _comparable(c) for rid, c in zip(frame["record_id"], frame_contexts(frame, 4, 600))}
    assert got == expected and len(got) == 120  # one record a minute
    assert sum(c is None for c in got.values()) == frame["device_id"].isna().sum() > 0
    # not a vacuous comparison: many records have a full context (how many depends on how the
    # fixture's record ids hash to devices: 58-61+ of 120 seen)
    assert sum(len(c) == 3 for c in got.values() if c) > 30


def test_rescored_rows_with_contexts_keep_the_tables_columns_and_a_one_step_bundles_scores(spark, flows) -> None:
    plain = rescored_rows(flows, str(BUNDLE))
    with_context = rescored_rows(flows, str(BUNDLE), sequences=Sequences(timesteps=4, max_gap_s=600))
    assert with_context.columns == plain.columns and "context" not in with_context.columns
    assert_approx_df_equality(with_context.orderBy("record_id"), plain.orderBy("record_id"), precision=1e-9,
                              ignore_nullable=True)
