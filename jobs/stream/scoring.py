"""Scoring a partition of prepared records inside the sink's task (pure pyarrow/pandas, no Spark):
the same core the pandas UDF and re-scoring use (:func:`udfs.scoring.score_frame_guarded`, the
bundle loaded once per Python worker), plus ``protocol`` (:func:`udfs.scoring.protocol_names`). Records then cross from the JVM to Python
once per batch: scored and written in the same pass.

A record the models cannot score joins the quarantine with the reason ``scoring failed: ...`` and,
as payload, the record as parsed (JSON), capped as every quarantined payload is.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.stream.parse import QUARANTINE_REASON, RAW_BYTES, RAW_SHA256, RAW_VALUE
from schemas.flow_record import CONTEXT, DEVICE_FIELDS, EVENT_TIME, FEATURE_COLUMNS, FEATURES, METADATA_FIELDS
from schemas.tables import EXPLANATION, SCORE_COLUMNS, SCORING_ERROR

if TYPE_CHECKING:
    import pandas as pd

    from models.bundle import BundleTrust

SCORE_TYPES = {c.name: c.type for c in SCORE_COLUMNS}


def score_partition(records: pa.Table, bundle_dir: str, quarantine_max_chars: int, bundle=None,
                    trust: "BundleTrust | None" = None) -> pa.Table:
    """``records`` (prepared: features under their column names) with the score columns, ``protocol``,
    ``explanation`` (why an anomalous record was flagged: :mod:`models.explain`), and the records the models could not score moved to the quarantine. ``bundle``: an already
    loaded bundle (tests); else the worker's cached load of ``bundle_dir``, checked against
    ``trust`` (the pinned manifest, no unpickling unless allowed: :class:`models.bundle.BundleTrust`)."""
    from udfs.model_cache import get_bundle
    from udfs.scoring import protocol_names, score_frame_guarded
    from udfs.worker_setup import keep_zip_directories

    keep_zip_directories()
    bundle = bundle if bundle is not None else get_bundle(bundle_dir, trust)
    features = records.select(list(FEATURE_COLUMNS)).to_pandas()
    features.columns = list(FEATURES)
    scored = score_frame_guarded(scoring_frame(records, features), bundle, explain=True).reset_index(drop=True)
    out = records
    for name, kind in SCORE_TYPES.items():
        if name == "protocol":
            values = protocol_names(features["Protocol Type"].to_numpy(), features["ARP"].to_numpy())
        else:
            values = scored[name].tolist() if name == "top_features" else scored[name].to_numpy()
        out = out.append_column(pa.field(name, kind), pa.array(values, kind, from_pandas=True))
    out = out.append_column(pa.field(EXPLANATION, pa.string()), pa.array(scored[EXPLANATION].tolist(), pa.string()))
    failed = scored[SCORING_ERROR].notna().to_numpy()
    return _quarantine_failed(out, scored[SCORING_ERROR].tolist(), failed, quarantine_max_chars) if failed.any() else out


def scoring_frame(records: pa.Table, features: "pd.DataFrame") -> "pd.DataFrame":
    """What the models read: the 39 features as doubles and, when the stream keeps device context
    (``stream.sequence``), each record's ``event_time`` (UTC) and ``context`` (its device's previous
    windows as :mod:`models.sequences` pairs, None without a device)."""
    frame = features.astype(np.float64)
    if CONTEXT in records.column_names:
        from udfs.context_cells import contexts_from_cells, object_column

        frame[EVENT_TIME] = records[EVENT_TIME].to_pandas().set_axis(frame.index)
        frame[CONTEXT] = object_column(contexts_from_cells(records[CONTEXT].to_pylist()), frame.index)
    return frame


def _quarantine_failed(out: pa.Table, errors: list, failed: np.ndarray, cap: int) -> pa.Table:
    """Rows that failed scoring: reason ``scoring failed: <error>``, payload the record as parsed."""
    rows = out.to_pylist()
    reasons, raws, sizes, digests = ([] for _ in range(4))
    for row, error, bad in zip(rows, errors, failed):
        if bad and row[QUARANTINE_REASON] is None:
            record = {name: row[name] for name in (*METADATA_FIELDS, *DEVICE_FIELDS)}
            record.update({feature: row[column] for feature, column in zip(FEATURES, FEATURE_COLUMNS)})
            text = json.dumps(record, default=str)
            reasons.append(f"scoring failed: {error}")
            raws.append(text[:cap])
            sizes.append(len(text.encode()))
            digests.append(hashlib.sha256(text.encode()).hexdigest())
        else:
            reasons.append(row[QUARANTINE_REASON])
            raws.append(row[RAW_VALUE])
            sizes.append(row[RAW_BYTES])
            digests.append(row[RAW_SHA256])
    for name, values in ((QUARANTINE_REASON, reasons), (RAW_VALUE, raws), (RAW_SHA256, digests)):
        out = out.set_column(out.schema.get_field_index(name), name, pa.array(values, pa.string()))
    index = out.schema.get_field_index(RAW_BYTES)
    return out.set_column(index, RAW_BYTES, pc.cast(pa.array(sizes, pa.int64()), out.schema.field(RAW_BYTES).type))
