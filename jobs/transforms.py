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
    what each worker checks before loading the bundle (:class:`models.bundle.BundleTrust`)."""
    from pyspark.sql import functions as F

    from schemas.flow_record import FEATURE_COLUMNS
    from udfs.spark_udf import make_score_udf

    score_udf = make_score_udf(bundle_dir, trust)
    scored = flows.withColumn("_score", score_udf(F.struct(*[F.col(c) for c in FEATURE_COLUMNS])))
    return scored.select("*", "_score.*").drop("_score")
