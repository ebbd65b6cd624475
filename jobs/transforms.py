"""Pure DataFrame steps of the batch re-scoring (no I/O here): the scoring step (the pandas UDF over
the 39 features, ``protocol`` included). The streaming job's own steps, from raw messages to parsed,
bounded records, are in :mod:`jobs.stream.parse`; its tasks score with the same core
(:func:`udfs.scoring.score_frame_guarded`) in :mod:`jobs.stream.scoring`."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from models.bundle import BundleTrust


def score(flows: "DataFrame", bundle_dir: str, trust: "BundleTrust | None" = None) -> "DataFrame":
    """Score valid flow records: the pandas UDF over the 39 features, plus ``protocol``. ``trust``:
    what each worker checks before loading the bundle (:class:`models.bundle.BundleTrust`). When
    ``flows`` has ``context`` (:func:`with_contexts`), the models read it and ``event_time`` too."""
    from pyspark.sql import functions as F

    from schemas.flow_record import CONTEXT, EVENT_TIME, FEATURE_COLUMNS
    from udfs.spark_udf import make_score_udf

    with_context = CONTEXT in flows.columns
    score_udf = make_score_udf(bundle_dir, trust, with_context=with_context)
    inputs = [F.col(c) for c in FEATURE_COLUMNS]
    if with_context:  # the event time as microseconds: pandas' timestamps would depend on the session's zone
        inputs += [F.unix_micros(F.col(EVENT_TIME)).alias(EVENT_TIME), F.col(CONTEXT)]
    scored = flows.withColumn("_score", score_udf(F.struct(*inputs)))
    return scored.select("*", "_score.*").drop("_score")


def with_contexts(flows: "DataFrame", timesteps: int, max_gap_s: float) -> "DataFrame":
    """``flows`` with ``context``: each record's device's earlier records among ``flows`` (at most
    ``timesteps`` - 1, cut at gaps over ``max_gap_s``: :func:`models.sequences.frame_contexts`), one
    group per device; records without a device get none and are spread over several groups."""
    from functools import partial

    from pyspark.sql import functions as F

    from jobs.stream.device_context import KEY, keyed_in_micros, timestamps_back, with_context_type
    from schemas.flow_record import CONTEXT, DEVICE_ID

    staged, times = keyed_in_micros(flows, F.col(DEVICE_ID).isNotNull())
    output = with_context_type(staged)
    grouped = staged.groupBy(KEY).applyInPandas(
        partial(_group_contexts, timesteps=timesteps, max_gap_s=max_gap_s, columns=output.fieldNames()), output)
    return timestamps_back(grouped, times, [*flows.columns, CONTEXT])


def _group_contexts(frame, timesteps: int, max_gap_s: float, columns: list[str]):
    from jobs.stream.device_context import frame_rows

    return frame_rows(frame, timesteps, max_gap_s)[columns]
