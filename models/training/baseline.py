"""A site's own normal: refit a bundle's unsupervised detectors and every threshold on the site's
benign traffic, keeping what the bundle knows of attacks.

From a base bundle and a site's benign records (windows of its captures, or a time range of its
``flows_scored``): the records are split by a seeded hash of their ``record_id`` into site training
(80%) and site validation (20%). The preprocessing stays the base bundle's (its classifier reads
it); the LSTM autoencoder is trained afresh on the site's training windows with the base bundle's
configuration and the Isolation Forest is fitted there with the base bundle's parameters; the attack
classifier is kept as it is. Every normaliser, the per-detector thresholds and the ensemble's
threshold are then calibrated on the site's validation windows at the target false-positive rate,
while the ensemble's weights (learnt from the dataset's attacks) are kept. The new bundle's manifest
records its base (version and manifest sha256) and the site data it learnt from.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.bundle import MANIFEST, load_bundle, sha256_of
from models.ensemble import EnsembleRule, Normaliser
from models.reference import SECTION as REFERENCE_SECTION, BenignReference
from models.iforest import IForestDetector
from models.thresholds import Threshold
from models.training.autoencoder import train_lstm_ae
from models.training.bundle_writer import save_bundle
from models.training.iforest import fit_forest
from models.training.thresholds import threshold_at_fpr
from schemas.flow_record import DEVICE_ID, EVENT_TIME, FEATURES, RECORD_ID

log = logging.getLogger(__name__)

VALIDATION_SHARE = 0.2
MIN_ROWS = 100


class BaselineDataError(ValueError):
    """Too little site traffic to learn from; the message says how much there is."""


def site_split(record_ids: pd.Series, seed: int = 0) -> np.ndarray:
    """True for the site validation rows: a seeded hash of each ``record_id`` below the share."""
    def bucket(record_id: str) -> float:
        digest = hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    return np.array([bucket(str(r)) < VALIDATION_SHARE for r in record_ids], dtype=bool)


def site_sequences(site: pd.DataFrame, scaled: np.ndarray, preprocessor: Any, config: Any) -> np.ndarray:
    """Every site record as the last step of its device's sequence (its earlier site windows);
    ``scaled``: the records' features as ``preprocessor`` transformed them, in ``site``'s order."""
    from models.sequences import event_times_ns, frame_contexts, sequence_inputs

    missing = [name for name in (DEVICE_ID, EVENT_TIME) if name not in site.columns]
    if missing or site[DEVICE_ID].isna().all():
        raise BaselineDataError(f"a sequence autoencoder (--timesteps {config.timesteps}) learns from devices' "
                                f"windows in time order: the site records lack {missing or [DEVICE_ID]} "
                                "(captures through the sensor have them; dataset rows do not)")
    contexts = frame_contexts(site, config.timesteps, config.max_gap_s)
    return sequence_inputs(scaled, event_times_ns(site[EVENT_TIME]), contexts, preprocessor.transform,
                           config.timesteps, config.max_gap_s)


def fit_site_baseline(base_dir: str | Path, site: pd.DataFrame, out_dir: str | Path, version: str,
                      provenance: dict[str, Any], target_fpr: float = 0.01, seed: int = 0,
                      timesteps: int | None = None, max_gap_s: float | None = None) -> dict[str, Any]:
    """Write the site bundle to ``out_dir`` from the base bundle and ``site`` (benign records: the 39
    features and ``record_id``); returns what the manifest records of the fit. ``timesteps`` > 1:
    the autoencoder reads each device's last ``timesteps`` windows (:mod:`models.sequences`; the
    records need ``device_id`` and ``event_time``); None keeps the base bundle's."""
    started = time.perf_counter()
    if len(site) < MIN_ROWS:
        raise BaselineDataError(f"only {len(site)} site records: a baseline needs at least {MIN_ROWS} benign "
                                "windows (a longer capture, or a wider time range)")
    base = load_bundle(base_dir, compiled=False)  # the scikit-learn forests: the classifier is written again
    validation = site_split(site[RECORD_ID], seed)
    features = site[list(FEATURES)].apply(pd.to_numeric, errors="coerce")
    train_rows, val_rows = features[~validation], features[validation]
    if validation.sum() < MIN_ROWS // 4:
        raise BaselineDataError(f"only {int(validation.sum())} site validation records: give more site traffic")
    preprocessor = base.preprocessor
    scaled = preprocessor.transform(features)
    x_train, x_val = scaled[~validation], scaled[validation]
    config = replace(base.lstm_ae.config, **{key: value for key, value in (("timesteps", timesteps),
                                                                           ("max_gap_s", max_gap_s)) if value is not None})
    if config.sequential:
        sequences = site_sequences(site, scaled, preprocessor, config)
        ae = train_lstm_ae(sequences[~validation], config, chunk_size=base.lstm_ae.chunk_size)
        ae_val = ae.sequence_errors(sequences[validation]).mean(axis=1)
    else:
        ae = train_lstm_ae(x_train, config, chunk_size=base.lstm_ae.chunk_size)
        ae_val = ae.score(x_val)
    params = dict(base.iforest.params)
    iforest = IForestDetector(model=fit_forest(x_train, params, seed), params=params, selection=[], tolerance=None)

    clf_val = base.classifier.inputs(preprocessor, val_rows, scaled=x_val)
    _, _, proba, logit = base.classifier.predict(clf_val)
    scores = {"lstm_ae": ae_val.astype(np.float64), "iforest": iforest.score(x_val),
              "classifier": proba, "classifier_logit": logit}
    thresholds = {name: threshold_at_fpr(scores[name], target_fpr) for name in ("lstm_ae", "iforest", "classifier")}
    rule = base.ensemble
    normalisers = {name: Normaliser.fit(scores[name]) for name in rule.normalisers}
    placeholder = Threshold(np.inf, target_fpr, 0, 0.0)
    # a sequence autoencoder decides on its own as well: the stack's weights never weighed it
    alone = ("lstm_ae",) if config.sequential and rule.weights is not None and "lstm_ae" in normalisers else ()
    partial = EnsembleRule(normalisers=normalisers, threshold=placeholder, weights=rule.weights)
    output = Normaliser.fit(partial.score(scores)) if rule.weights is not None else None
    calibrated = EnsembleRule(normalisers=normalisers, threshold=placeholder, weights=rule.weights, output=output,
                              alone=alone)
    ensemble = EnsembleRule(normalisers=normalisers, threshold=threshold_at_fpr(calibrated.score(scores), target_fpr),
                            weights=rule.weights, output=output, alone=alone)
    thresholds["ensemble"] = ensemble.threshold
    fit = {"base_bundle": {"version": base.version, "manifest_sha256": sha256_of(Path(base_dir) / MANIFEST)},
           "site_data": provenance, "site_rows": {"train": int((~validation).sum()), "validation": int(validation.sum())},
           "split": f"blake2b({seed}:record_id) < {VALIDATION_SHARE}: validation", "target_fpr": target_fpr,
           "refitted": ["lstm_ae", "iforest", "normalisers", "thresholds"], "kept": ["preprocessing", "classifier",
                                                                                      "ensemble weights"],
           "lstm_ae_epochs": len(ae.history.get("loss", [])), "seconds": round(time.perf_counter() - started, 1)}
    extra = {key: base.manifest[key] for key in ("seed", "split", "target_fpr", "window_invariant", "training_files",
                                                  "configs", "training_metrics") if key in base.manifest}
    extra["site_baseline"] = fit
    # explanations compare alerts with the site's own normal traffic (models.reference)
    extra[REFERENCE_SECTION] = BenignReference.of_rows(train_rows.to_numpy(), tuple(FEATURES), source="site_train").to_dict()
    save_bundle(Path(out_dir), version=version, preprocessor=preprocessor, lstm_ae=ae, iforest=iforest,
                classifier=base.classifier, ensemble=ensemble, thresholds=thresholds, extra=extra)
    log.info("site baseline %s from %s: %d training and %d validation windows, %.1f s", version, base.version,
             fit["site_rows"]["train"], fit["site_rows"]["validation"], fit["seconds"])
    return fit
