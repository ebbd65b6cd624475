"""Compiling the trained forests to ONNX TreeEnsemble models (served by ``models.compiled``)."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.compiled import ML_OPSET, OPSET, OnnxMissingError


class CompileError(ValueError):
    """A model that cannot be compiled to ONNX (an unsupported estimator)."""



def _onnx():
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise OnnxMissingError("compiling the forests needs onnx: pip install onnx==1.23.2") from error
    return onnx



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
