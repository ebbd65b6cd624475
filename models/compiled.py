"""The bundle's forests compiled to ONNX, scored with onnxruntime (scikit-learn stays the fallback).

Files (gzip of a serialised ``onnx.ModelProto``, written with ``mtime=0`` so equal models give equal
bytes; pinned by sha256 in the manifest's ``files`` like every other bundle file)::

    iforest.onnx.gz     one ``ai.onnx.ml.TreeEnsembleRegressor`` (SUM over the trees): input ``x``
                        (float32, the preprocessed matrix), output ``path_length`` (n, 1), the sum over
                        trees of ``depth(leaf) + c(n_samples(leaf)) - 1`` as in scikit-learn's
                        ``IsolationForest._compute_score_samples``; the score is then
                        ``score_samples = -2 ** (-path_length / (n_trees * c(max_samples)))``
    classifier.onnx.gz  one ``ai.onnx.ml.TreeEnsembleRegressor`` (SUM, ``n_targets`` = classes): input
                        ``x`` (float32, the classifier's input matrix), output ``probabilities``
                        (n, n_classes) in ``classes_`` order; each leaf holds its class fractions
                        divided by the number of trees, zero fractions left out

Why not ``skl2onnx.convert_sklearn``: its IsolationForest converter refuses ``max_features < 1``
(bundle v1 uses 0.8) and builds about 20 operators per tree; its RandomForest converter writes every
class weight of every leaf (bundle v1: 3.5 M entries, 52 MB) into a ``TreeEnsembleClassifier`` that
also computes string labels. Measured on one core at batch 4,096 (v1 forests, shared 2-core machine,
best of 5): that converter's classifier 42-59k rows/s (scikit-learn 54-87k in the same runs); the
pruned single regressor here 130k; one operator per tree (tree-major order) 89k, per 15 trees 125k.
The Isolation Forest here: 198-230k rows/s against scikit-learn's 96k.

Thresholds: scikit-learn compares the float32 input to a float64 threshold (``x <= t``); ONNX trees
hold float32 thresholds. Each threshold is stored as the largest float32 ``w <= t``, so for every
float32 ``x``, ``x <= w`` exactly when ``x <= t``: every row reaches the same leaf as in scikit-learn
(the same rounding skl2onnx applies with ``sklearn_threshold``). What remains is float32
accumulation over the trees (|difference| ~1e-7 in probabilities and IF scores).

Missing values: the trees carry no ``nodes_missing_value_tracks_true``. NaN never reaches the forests:
the preprocessor imputes and caps every non-finite cell, the scaled matrix is clipped, and the
classifier's engineered columns are made finite (:func:`models.classifier.engineered_features`); for
finite inputs scikit-learn's missing-value routing never applies. Without the tracks onnxruntime skips
a NaN test on every branch taken to the right: measured on one core at batch 4,096 (bundle v2, the
two forms timed alternately in one process, medians of 40 calls), the classifier 3.85 -> 3.41 us a
row, the Isolation Forest 2.48 -> 2.23.
"""
from __future__ import annotations

import gzip
import logging
import os
from typing import Final

import numpy as np

log = logging.getLogger(__name__)

IFOREST_ONNX: Final[str] = "iforest.onnx.gz"
CLASSIFIER_ONNX: Final[str] = "classifier.onnx.gz"
ONNX_FILES: Final[tuple[str, ...]] = (IFOREST_ONNX, CLASSIFIER_ONNX)
OPSET: Final[int] = 17
ML_OPSET: Final[int] = 3
THREADS_ENV: Final[str] = "IOMT_AD_ONNX_THREADS"


class OnnxMissingError(ImportError):
    """onnx / onnxruntime is not installed."""


def _ort():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise OnnxMissingError("scoring with the compiled forests needs onnxruntime: "
                               "pip install onnxruntime==1.32.0") from error
    return onnxruntime


def default_threads() -> int:
    """Intra-op threads: ``IOMT_AD_ONNX_THREADS``, else ``OMP_NUM_THREADS`` (PySpark sets it to the
    task's cores in Python workers; the benchmark to its core count), else the cores this process may
    run on; never more than those cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.strip().isdigit() and int(value) > 0:
            return min(int(value), cores)
    return cores


class OnnxForest:
    """One compiled forest: ``run(x)`` -> its single float32 output as an (n, k) array."""

    def __init__(self, data: bytes, threads: int | None = None) -> None:
        ort = _ort()
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads must sleep, not spin: the same process runs TensorFlow Lite and pandas
        # between the forests. Measured with 2 threads on 2 cores (score_frame, bundle v2): batch 4,096
        # 67-76k rows/s spinning against 121-129k not; batch 65,536 about equal (113-128k).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([self.output], {self.input: x})[0]


class OnnxIsolationForest:
    """``score_samples`` like scikit-learn's, from the compiled path-length ensemble."""

    def __init__(self, forest: OnnxForest) -> None:
        self.forest = forest
        self.denominator = float(forest.metadata["denominator"])

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        path_length = self.forest.run(x)[:, 0].astype(np.float64)
        if self.denominator == 0:  # a single training sample: scikit-learn's score is -1
            return -np.ones(len(path_length))
        return -np.exp2(-path_length / self.denominator)


class OnnxClassifier:
    """``predict_proba`` and ``classes_`` like scikit-learn's, from the compiled forest."""

    def __init__(self, forest: OnnxForest) -> None:
        self.forest = forest
        self.classes_ = np.asarray(forest.metadata["classes"].split("\x1f"), dtype=object)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.forest.run(x).astype(np.float64)
