"""The scoring pandas UDF (iterator form): the bundle is loaded once per Python worker through
``udfs.model_cache`` and every Arrow batch is scored by the pure ``score_frame``."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from schemas.flow_record import FEATURE_COLUMNS, FEATURES
from schemas.tables import SCORE_FIELDS, SCORING_ERROR, score_struct_ddl

if TYPE_CHECKING:
    from models.bundle import BundleTrust

SCORE_STRUCT_COLUMNS: tuple[str, ...] = (*(name for name, _ in SCORE_FIELDS), SCORING_ERROR)


def make_score_udf(bundle_dir: str | Path, trust: "BundleTrust | None" = None, with_context: bool = False):
    """A pandas UDF taking ``struct(<the 39 feature columns>)`` and returning the score struct
    (``protocol`` included: :func:`udfs.scoring.protocol_names`). A
    record the models cannot score gets ``scoring_error`` instead of failing its batch
    (:func:`udfs.scoring.score_frame_guarded`).

    ``bundle_dir`` must be readable where the Python workers run (a local path in local mode; on a
    cluster, the directory an ``--archives`` entry unpacks to). ``trust`` travels with the UDF: each
    worker checks the pinned manifest (and refuses to unpickle unless allowed) before loading.
    ``with_context``: the struct also holds ``event_time`` (microseconds since the epoch) and
    ``context`` (a sequence autoencoder's previous windows: :mod:`udfs.context_cells`), which the
    frame handed to scoring carries as a UTC time and :mod:`models.sequences` contexts."""
    from pyspark.sql.functions import pandas_udf

    bundle_path = str(bundle_dir)
    rename = dict(zip(FEATURE_COLUMNS, FEATURES))

    @pandas_udf(score_struct_ddl())  # type: ignore[call-overload]
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from udfs.model_cache import get_bundle
        from udfs.scoring import protocol_names, score_frame_guarded
        from udfs.worker_setup import keep_zip_directories

        keep_zip_directories()  # every later task of this worker starts ~0.3 s sooner
        bundle = get_bundle(bundle_path, trust)
        for features in batches:
            features = features.rename(columns=rename)
            if with_context:
                features = _with_contexts(features)
            scored = score_frame_guarded(features, bundle)
            scored["protocol"] = protocol_names(features["Protocol Type"].to_numpy(np.float64),
                                                features["ARP"].to_numpy(np.float64))
            yield scored.loc[:, list(SCORE_STRUCT_COLUMNS)].reset_index(drop=True)

    # Marked non-deterministic only so that Catalyst never copies the call into each extracted
    # field of the result struct (``select("_score.*")`` would otherwise run the models once per
    # field: 11 times). The scores themselves are deterministic for a given bundle.
    return score.asNondeterministic()


def _with_contexts(frame: pd.DataFrame) -> pd.DataFrame:
    """The UDF's ``event_time`` (microseconds) as UTC times and ``context`` cells as contexts."""
    from schemas.flow_record import CONTEXT, EVENT_TIME
    from udfs.context_cells import contexts_from_cells, object_column

    return frame.assign(**{EVENT_TIME: pd.to_datetime(frame[EVENT_TIME], unit="us", utc=True),
                           CONTEXT: object_column(contexts_from_cells(frame[CONTEXT]), frame.index)})
