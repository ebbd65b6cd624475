"""``score_frame``: the 39 features of a pandas frame -> detector scores and decisions (no Spark).

Output columns (index kept from the input): ``ae_error`` (LSTM AE reconstruction MSE), ``if_score``
(Isolation Forest, higher = more anomalous), ``clf_attack_proba`` (1 - P(Benign)), ``ensemble_score``,
``is_anomaly``, ``severity`` (none/low/medium/high/critical), ``predicted_class``,
``predicted_category``, ``top_features`` (the 3 features with the largest reconstruction error) and
``model_version``. Every model runs on fixed-size NumPy chunks of the preprocessed matrix.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.lstm_ae import top_features
from schemas.flow_record import CONTEXT, EVENT_TIME, PROTOCOL_NAMES
from schemas.tables import EXPLANATION, SCORING_ERROR

if TYPE_CHECKING:
    from models.bundle import Bundle

log = logging.getLogger(__name__)

OUTPUT_COLUMNS: tuple[str, ...] = (
    "ae_error", "if_score", "clf_attack_proba", "ensemble_score", "is_anomaly", "severity",
    "predicted_class", "predicted_category", "top_features", "model_version")


def detector_scores(x: np.ndarray, bundle: "Bundle", data: pd.DataFrame | np.ndarray | None = None,
                    cleaned: np.ndarray | None = None, sequences: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Raw scores of every detector on a preprocessed matrix, plus AE per-feature errors and the
    classifier's predictions. ``data`` (the raw features ``x`` came from) is needed when the bundle's
    classifier reads its own input (``AttackClassifier.input`` other than ``"scaled"``); ``cleaned``
    (``bundle.preprocessor.clean(data)``) saves cleaning ``data`` again. ``sequences``: each row's
    device sequence (:func:`device_sequences`) for a bundle whose autoencoder reads them."""
    errors = bundle.lstm_ae.sequence_errors(sequences) if sequences is not None else bundle.lstm_ae.reconstruction_errors(x)
    clf_input = x
    if getattr(bundle.classifier, "input", "scaled") != "scaled":
        if data is None and cleaned is None:
            raise ValueError("this bundle's classifier reads the raw features: pass data= to detector_scores")
        if cleaned is not None:
            clf_input = bundle.classifier.inputs(bundle.preprocessor, data, scaled=x, cleaned=cleaned)
        else:
            clf_input = bundle.classifier.inputs(bundle.preprocessor, data, scaled=x)
    # the predicted class's probability, for explanations: a classifier offering only predict() has none
    with_confidence = getattr(bundle.classifier, "predict_with_confidence", None)
    if with_confidence is not None:
        predicted, category, attack_proba, logit, class_proba = with_confidence(clf_input)
    else:
        predicted, category, attack_proba, logit = bundle.classifier.predict(clf_input)
        class_proba = np.full(len(predicted), np.nan)
    return {"lstm_ae": errors.mean(axis=1).astype(np.float64), "iforest": bundle.iforest.score(x),
            "classifier": attack_proba, "classifier_logit": logit, "_errors": errors, "_class": predicted,
            "_category": category, "_class_proba": class_proba}


def score_frame(pdf: pd.DataFrame, bundle: "Bundle", explain: bool = False) -> pd.DataFrame:
    """Score a frame holding (at least) the 39 feature columns under their dataset names.

    The features are read and cleaned once; the scaled matrix (AE, Isolation Forest) and the
    classifier's input both come from that one cleaned matrix. ``explain``: also ``explanation``,
    why each anomalous record was flagged (:mod:`models.explain`; null for the others)."""
    if len(pdf) == 0:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in OUTPUT_COLUMNS + ((EXPLANATION,) if explain else ())})
    preprocessor = bundle.preprocessor
    if hasattr(preprocessor, "clean_and_transform"):
        cleaned, x = preprocessor.clean_and_transform(pdf)
    else:  # a preprocessor without the combined step
        cleaned, x = None, preprocessor.transform(pdf)
    sequences = device_sequences(pdf, x, bundle) if bundle.lstm_ae.config.sequential else None
    scores = detector_scores(x, bundle, pdf, cleaned=cleaned, sequences=sequences)
    ensemble = bundle.ensemble
    ensemble_score = ensemble.score(scores)
    is_anomaly = ensemble.is_anomaly(ensemble_score)
    out = pd.DataFrame({
        "ae_error": scores["lstm_ae"],
        "if_score": scores["iforest"],
        "clf_attack_proba": scores["classifier"],
        "ensemble_score": ensemble_score,
        "is_anomaly": is_anomaly,
        "severity": ensemble.severity(ensemble_score),
        "predicted_class": scores["_class"],
        "predicted_category": scores["_category"],
        "top_features": top_features(scores["_errors"], autoencoder_inputs(bundle), k=3),
        "model_version": bundle.version,
    }, index=pdf.index)
    if explain:
        out[EXPLANATION] = explanations(pdf, bundle, scores, ensemble_score, is_anomaly)
    return out


def device_sequences(pdf: pd.DataFrame, x: np.ndarray, bundle: "Bundle") -> np.ndarray:
    """Each record's sequence for a sequential autoencoder: its device's previous windows from the
    ``context`` column (the stream's per-device state), or, without that column, from the frame's
    own earlier records of the device (:func:`models.sequences.frame_contexts`)."""
    from models.sequences import event_times_ns, frame_contexts, sequence_inputs

    config = bundle.lstm_ae.config
    if CONTEXT in pdf.columns:
        contexts = list(pdf[CONTEXT])
    else:
        contexts = frame_contexts(pdf, config.timesteps, config.max_gap_s)
    times = (event_times_ns(pdf[EVENT_TIME]) if EVENT_TIME in pdf.columns else np.zeros(len(pdf), np.int64))
    max_gap_ns = int(config.max_gap_s * 1e9)
    return sequence_inputs(x, times, [context_within_gap(c, t, max_gap_ns) for c, t in zip(contexts, times)],
                           bundle.preprocessor.transform, config.timesteps, config.max_gap_s)


def context_within_gap(value, record_ns: int, max_gap_ns: int) -> list | None:
    """A ``context`` cell (:mod:`udfs.context_cells`) or a context (:mod:`models.sequences`) as a
    context, cut where the bundle's ``max_gap_s`` cuts it (the stream's ``stream.sequence.max_gap``
    may be longer); None stays None."""
    from udfs.context_cells import contexts_from_cells

    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    entries = (contexts_from_cells([value])[0] if len(value) and isinstance(value[0], dict)
               else [(int(t), list(v)) for t, v in value])
    newer, kept = int(record_ns), 0
    for then, _ in reversed(entries):
        if newer - then > max_gap_ns:
            break
        newer, kept = then, kept + 1
    return entries[len(entries) - kept:]


def autoencoder_inputs(bundle: "Bundle") -> tuple[str, ...]:
    """The names of the autoencoder's inputs (its per-input errors name the top features)."""
    from models.sequences import GAP_INPUT

    inputs = tuple(bundle.preprocessor.inputs)
    return (*inputs, GAP_INPUT) if bundle.lstm_ae.config.sequential else inputs


def explanations(pdf: pd.DataFrame, bundle: "Bundle", scores: dict[str, np.ndarray], ensemble_score: np.ndarray,
                 is_anomaly: np.ndarray) -> np.ndarray:
    """The ``explanation`` column: :func:`models.explain.explain` for the anomalous rows, None elsewhere."""
    from models.explain import explain

    out = np.full(len(pdf), None, dtype=object)
    rows = np.flatnonzero(is_anomaly)
    if len(rows) == 0:
        return out
    features = list(bundle.preprocessor.features)
    raw = pdf[features].to_numpy(dtype=np.float64)[rows]
    picked = {name: np.asarray(scores[name])[rows] for name in ("lstm_ae", "iforest", "classifier")}
    picked["ensemble"] = np.asarray(ensemble_score)[rows]
    columns = [features.index(name) for name in bundle.preprocessor.inputs]
    out[rows] = explain(raw, picked, np.asarray(scores["_class"])[rows], np.asarray(scores["_class_proba"])[rows],
                        bundle.thresholds, bundle.reference, columns)
    return out


MAX_ERROR_CHARS = 300


def protocol_names(protocol_type: np.ndarray, arp: np.ndarray) -> np.ndarray:
    """``protocol`` of each record: the IANA name of its ``Protocol Type`` rounded half up (TCP, UDP,
    ICMP, IGMP), ``ARP`` for ARP windows, else ``other``. The stream's tasks and the re-scoring UDF
    both call this; a value that is not a number, or not a protocol's, gives ``other``."""
    rounded = np.floor(np.nan_to_num(protocol_type, nan=-1.0, posinf=-1.0, neginf=-1.0) + 0.5)
    names = np.full(len(rounded), "other", dtype=object)
    names[np.nan_to_num(arp, nan=0.0) >= 0.5] = "ARP"
    for number, name in PROTOCOL_NAMES.items():
        names[rounded == number] = name
    return names


def score_frame_guarded(pdf: pd.DataFrame, bundle: "Bundle", explain: bool = False) -> pd.DataFrame:
    """:func:`score_frame` plus ``scoring_error``: null where a row was scored, the error where the
    models could not score it. One row that breaks the models must not stop the stream, but a
    broken bundle must: when a chunk fails, a reference row (the bundle's training medians) is
    scored first, and if that fails too the error is raised (the batch fails and is retried);
    otherwise the chunk's rows are scored one by one and only those that fail get the error."""
    try:
        scored = score_frame(pdf, bundle, explain)
    except Exception as chunk_error:  # noqa: BLE001 - sorted out below
        if not _reference_row_scores(bundle):
            raise
        log.error("scoring a chunk of %d rows failed (%s: %s); scoring its rows one by one",
                  len(pdf), type(chunk_error).__name__, chunk_error)
        return pd.concat([_score_row(pdf.iloc[[i]], bundle, explain).astype(object) for i in range(len(pdf))])
    scored[SCORING_ERROR] = None
    return scored


def _reference_row_scores(bundle: "Bundle") -> bool:
    reference = pd.DataFrame([list(bundle.preprocessor.median)], columns=list(bundle.preprocessor.features))
    try:
        score_frame(reference, bundle)
    except Exception:  # noqa: BLE001 - the bundle itself cannot score
        log.exception("the bundle cannot score its own reference row")
        return False
    return True


def _score_row(row: pd.DataFrame, bundle: "Bundle", explain: bool = False) -> pd.DataFrame:
    try:
        scored = score_frame(row, bundle, explain)
        scored[SCORING_ERROR] = None
        return scored
    except Exception as exc:  # noqa: BLE001 - this row goes to quarantine with the error
        columns = OUTPUT_COLUMNS + ((EXPLANATION,) if explain else ())
        failed = pd.DataFrame({name: pd.Series([None], dtype=object, index=row.index) for name in columns})
        failed["model_version"] = bundle.version
        failed[SCORING_ERROR] = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        return failed
