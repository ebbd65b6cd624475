"""Model selection for issue 3 without test rows: the inner split and the classifier comparison.

The inner split divides the *training* rows of the bundle's split once more: the classifier is fitted
on the benign training rows and the attack training rows whose split bucket is below
``fit_bucket`` (0.56 of the 0.7 attack-train share), and scored on the benign validation rows and the
remaining attack training rows. Test rows are never loaded into either part.

``python -m models.training.selection --data ../shared/data/ciciomt2024 --json OUT.json`` reproduces the
classifier table of ``docs/model-selection.md`` (19-class and 6-category macro-F1, benign rows called attacks,
fit seconds and predict rows/s on one thread at batch 4096).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.classifier import engineered_features
from models.training.preprocessing import fit_preprocessor
from models.training.split import TRAIN, VALIDATION, SplitConfig, row_bucket, split_frame
from schemas.classes import BENIGN, CATEGORY_OF_CLASS

log = logging.getLogger(__name__)

FIT_BUCKET = 0.56


def inner_split(frame: pd.DataFrame, config: SplitConfig = SplitConfig(),
                fit_bucket: float = FIT_BUCKET) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(benign training rows, inner-fit rows, inner-validation rows) of a frame from
    :func:`models.training.datasets.load_flows_pandas`; no returned row is a test row of ``config``."""
    part = split_frame(frame, config)
    bucket = pd.Series([row_bucket(f, r, config.seed) for f, r in zip(frame["source_file"], frame["row_number"])],
                       index=frame.index)
    benign = frame["label"].eq(BENIGN)
    attack_train = ~benign & part.eq(TRAIN)
    benign_train = frame[benign & part.eq(TRAIN)]
    fit = pd.concat([benign_train, frame[attack_train & bucket.lt(fit_bucket)]])
    validation = pd.concat([frame[benign & part.eq(VALIDATION)], frame[attack_train & bucket.ge(fit_bucket)]])
    return benign_train, fit, validation


def candidates() -> dict[str, Callable[[], Any]]:
    """The compared classifiers (all class-balanced unless the name says otherwise)."""
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier

    def rf(n: int, depth: int | None, leaf: int = 2, **kw: Any) -> Callable[[], Any]:
        kw.setdefault("class_weight", "balanced")
        return lambda: RandomForestClassifier(n, max_depth=depth, min_samples_leaf=leaf, n_jobs=1, random_state=0, **kw)

    return {
        "rf60_depth20 (v1)": rf(60, 20),
        "rf40_depth20": rf(40, 20),
        "rf30_depth16": rf(30, 16),
        "rf30_depth20 (v2)": rf(30, 20),
        "rf30_depth20_leaf3": rf(30, 20, 3),
        "rf30_depth20_leaf5": rf(30, 20, 5),
        "rf30_depth20_max_leaf_nodes1500": rf(30, 20, max_leaf_nodes=1500),
        "rf30_depth20_max_leaf_nodes800": rf(30, 20, max_leaf_nodes=800),
        "rf30_depth20_max_samples0.5": rf(30, 20, max_samples=0.5),
        "rf60_depth14": rf(60, 14),
        "rf60_depth20_leaf5": rf(60, 20, 5),
        "rf60_depth20_max_features0.5": rf(60, 20, max_features=0.5),
        "rf60_depth20_balanced_subsample": rf(60, 20, class_weight="balanced_subsample"),
        "rf60_depth20_unweighted": rf(60, 20, class_weight=None),
        "rf200_unbounded_leaf1": rf(200, None, 1),
        "extra_trees60_depth20": lambda: ExtraTreesClassifier(60, max_depth=20, min_samples_leaf=2, class_weight="balanced",
                                                              n_jobs=1, random_state=0),
        "extra_trees100_unbounded": lambda: ExtraTreesClassifier(100, class_weight="balanced", n_jobs=1, random_state=0),
        "hist_gradient_boosting100": lambda: HistGradientBoostingClassifier(max_iter=100, class_weight="balanced",
                                                                            early_stopping=False, random_state=0),
        "hist_gradient_boosting40_depth6": lambda: HistGradientBoostingClassifier(
            max_iter=40, learning_rate=0.2, max_depth=6, class_weight="balanced", early_stopping=False, random_state=0),
    }


def compare_classifiers(data: list[str | Path], names: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit every candidate on the inner-fit rows and score it on the inner-validation rows."""
    from sklearn.metrics import f1_score
    from threadpoolctl import threadpool_limits

    frame = load_flows_pandas(list_flow_csvs(data))
    benign_train, fit, validation = inner_split(frame)
    pre = fit_preprocessor(benign_train)
    x_fit, x_val = engineered_features(pre.clean(fit)), engineered_features(pre.clean(validation))
    y_fit, y_val = fit["label"].to_numpy().astype(str), validation["label"].to_numpy().astype(str)
    category = np.vectorize(CATEGORY_OF_CLASS.get)
    results = []
    for name, make in candidates().items():
        if names and name not in names:
            continue
        with threadpool_limits(1):
            started = time.perf_counter()
            model = make().fit(x_fit, y_fit)
            fit_seconds = time.perf_counter() - started
            predicted = model.predict(x_val)
            batch = x_val[:4096]
            model.predict_proba(batch)
            started = time.perf_counter()
            for _ in range(3):
                model.predict_proba(batch)
            rows_per_s = 3 * len(batch) / (time.perf_counter() - started)
        benign = y_val == BENIGN
        result = {"name": name, "macro_f1": float(f1_score(y_val, predicted, average="macro")),
                  "category_macro_f1": float(f1_score(category(y_val), category(predicted), average="macro")),
                  "benign_called_attack": float((predicted[benign] != BENIGN).mean()),
                  "fit_seconds": round(fit_seconds, 1), "predict_rows_per_s_1thread_4096": round(rows_per_s)}
        log.info("%s", result)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m models.training.selection", description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="official CICIoMT2024 CSV files or directories")
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    args = parser.parse_args(argv)
    Path(args.json).write_text(json.dumps(compare_classifiers(args.data, args.only), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
