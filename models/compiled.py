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
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

log = logging.getLogger(__name__)

IFOREST_ONNX: Final[str] = "iforest.onnx.gz"
CLASSIFIER_ONNX: Final[str] = "classifier.onnx.gz"
ONNX_FILES: Final[tuple[str, ...]] = (IFOREST_ONNX, CLASSIFIER_ONNX)
OPSET: Final[int] = 17
ML_OPSET: Final[int] = 3
THREADS_ENV: Final[str] = "IOMT_AD_ONNX_THREADS"


class CompileError(ValueError):
    """A model that cannot be compiled to ONNX (an unsupported estimator)."""


class OnnxMissingError(ImportError):
    """onnx / onnxruntime is not installed."""


def _onnx():
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise OnnxMissingError("compiling the forests needs onnx: pip install onnx==1.23.2") from error
    return onnx


def _ort():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise OnnxMissingError("scoring with the compiled forests needs onnxruntime: "
                               "pip install onnxruntime==1.32.0") from error
    return onnxruntime


def float32_floor(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 ``w <= t`` for each float64 ``t``: for float32 ``x``, ``x <= w`` iff ``x <= t``."""
    t = np.asarray(thresholds, dtype=np.float64)
    w = t.astype(np.float32)
    above = w.astype(np.float64) > t
    w[above] = np.nextafter(w[above], np.float32(-np.inf))
    return w


@dataclass
class _Ensemble:
    """The attribute lists of one ``TreeEnsembleRegressor``."""

    nodes: dict[str, list[Any]]
    targets: dict[str, list[Any]]

    @classmethod
    def empty(cls) -> "_Ensemble":
        return cls(nodes={k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                                          "nodes_values", "nodes_truenodeids", "nodes_falsenodeids")},
                   targets={k: [] for k in ("target_treeids", "target_nodeids", "target_ids", "target_weights")})

    def add_tree(self, tree_id: int, tree: Any, feature_map: np.ndarray, leaf_weights: np.ndarray) -> None:
        """Add one scikit-learn ``tree_``; ``leaf_weights`` is (node_count, n_targets), read at leaves
        only, zeros left out. Node ids are scikit-learn's, so ``apply`` and ONNX agree on leaves."""
        n = tree.node_count
        leaf = tree.children_left == -1
        feature = np.where(leaf, 0, feature_map[np.maximum(tree.feature, 0)])
        self.nodes["nodes_treeids"] += [tree_id] * n
        self.nodes["nodes_nodeids"] += list(range(n))
        self.nodes["nodes_featureids"] += feature.astype(np.int64).tolist()
        self.nodes["nodes_modes"] += ["LEAF" if is_leaf else "BRANCH_LEQ" for is_leaf in leaf]
        self.nodes["nodes_values"] += np.where(leaf, np.float32(0), float32_floor(tree.threshold)).tolist()
        self.nodes["nodes_truenodeids"] += np.where(leaf, 0, tree.children_left).astype(np.int64).tolist()
        self.nodes["nodes_falsenodeids"] += np.where(leaf, 0, tree.children_right).astype(np.int64).tolist()
        leaves = np.flatnonzero(leaf)
        weights = np.asarray(leaf_weights, dtype=np.float64)[leaves]
        rows, cols = np.nonzero(weights)
        self.targets["target_treeids"] += [tree_id] * len(rows)
        self.targets["target_nodeids"] += leaves[rows].astype(np.int64).tolist()
        self.targets["target_ids"] += cols.astype(np.int64).tolist()
        self.targets["target_weights"] += weights[rows, cols].astype(np.float32).tolist()

    def model(self, n_features: int, n_targets: int, output: str, doc: str, metadata: dict[str, str]) -> Any:
        onnx = _onnx()
        helper, proto = onnx.helper, onnx.TensorProto
        nodes = dict(self.nodes)  # no missing-value tracks: the inputs are finite (module doc)
        op = helper.make_node("TreeEnsembleRegressor", ["x"], [output], domain="ai.onnx.ml", n_targets=n_targets,
                              aggregate_function="SUM", post_transform="NONE", **nodes, **self.targets)
        graph = helper.make_graph([op], output, [helper.make_tensor_value_info("x", proto.FLOAT, [None, n_features])],
                                  [helper.make_tensor_value_info(output, proto.FLOAT, [None, n_targets])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                        helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                                  producer_name="iomt-ad", doc_string=doc)
        model.ir_version = 8  # onnxruntime reads IR 8 with opset 17 everywhere
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model)
        return model


def average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """scikit-learn's ``c(n)`` (``sklearn.ensemble._iforest._average_path_length``)."""
    from sklearn.ensemble._iforest import _average_path_length

    return np.asarray(_average_path_length(np.asarray(n_samples)), dtype=np.float64)


def iforest_denominator(model: Any) -> float:
    """``n_trees * c(max_samples)``: ``score_samples = -2 ** (-path_length / denominator)``."""
    return float(len(model.estimators_) * average_path_length(np.array([model._max_samples]))[0])


def iforest_to_onnx(model: Any) -> Any:
    """An ``IsolationForest`` as one tree ensemble whose output is the summed path length."""
    from sklearn.ensemble import IsolationForest

    if not isinstance(model, IsolationForest):
        raise CompileError(f"expected an IsolationForest, got {type(model).__name__}")
    n_features = int(model.n_features_in_)
    subsample = model._max_features != n_features  # as in score_samples: trees saw X[:, features]
    ensemble = _Ensemble.empty()
    for tree_id, (estimator, features) in enumerate(zip(model.estimators_, model.estimators_features_)):
        tree = estimator.tree_
        feature_map = np.asarray(features, dtype=np.int64) if subsample else np.arange(n_features)
        leaf_value = tree.compute_node_depths() + average_path_length(tree.n_node_samples) - 1.0
        ensemble.add_tree(tree_id, tree, feature_map, leaf_value[:, None])
    return ensemble.model(n_features, 1, "path_length",
                          "IsolationForest path length summed over trees (iomt-ad models.compiled)",
                          {"kind": "iforest", "denominator": repr(iforest_denominator(model))})


def classifier_to_onnx(model: Any) -> Any:
    """A ``RandomForestClassifier`` / ``ExtraTreesClassifier`` as one tree ensemble whose output is
    ``predict_proba``."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if not isinstance(model, (RandomForestClassifier, ExtraTreesClassifier)):
        raise CompileError(f"only random-forest / extra-trees classifiers compile to ONNX here, not "
                           f"{type(model).__name__}; the bundle keeps scoring it with scikit-learn")
    if getattr(model, "n_outputs_", 1) != 1:
        raise CompileError("multi-output forests are not supported")
    n_features, n_classes, n_trees = int(model.n_features_in_), len(model.classes_), len(model.estimators_)
    ensemble = _Ensemble.empty()
    for tree_id, estimator in enumerate(model.estimators_):
        tree = estimator.tree_
        value = tree.value[:, 0, :]
        total = value.sum(axis=1, keepdims=True)
        fractions = np.divide(value, total, out=np.zeros_like(value), where=total > 0)  # as tree.predict_proba
        ensemble.add_tree(tree_id, tree, np.arange(n_features), fractions / n_trees)
    return ensemble.model(n_features, n_classes, "probabilities",
                          "predict_proba of a forest classifier (iomt-ad models.compiled)",
                          {"kind": "classifier", "classes": "\x1f".join(str(c) for c in model.classes_)})


def to_bytes(model: Any) -> bytes:
    """The gzip (mtime 0: reproducible) of the serialised model."""
    return gzip.compress(model.SerializeToString(), compresslevel=9, mtime=0)


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
