"""An XGBoost model's trees as numpy arrays, for scoring a few texts without calling into XGBoost.

A moderation model scores one post at a time. XGBoost's own prediction call costs about 0.4 ms
before it looks at a tree (the input is wrapped, a proxy matrix built, threads dispatched); walking
300 depth-4 trees for one row with a handful of numpy operations costs a tenth of that. The walk is
XGBoost's: ``value < split`` goes left, a missing value takes the node's default side, leaf values
are added to the base margin tree by tree in float32, then the objective's sigmoid or softmax. So
the scores equal XGBoost's to float32 rounding (checked against ``inplace_predict`` in the tests).
Large batches still go to XGBoost, whose C++ loop is faster there.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

OBJECTIVES = ("binary:logistic", "multi:softprob")


class SparseRows(NamedTuple):
    """A CSR matrix's arrays, without building the scipy object (which checks them on every call)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    def to_csr(self) -> sparse.csr_matrix:
        return sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)


class TreeEnsemble:
    """The trees of a gradient-boosted model (``gbtree``, numerical splits, scalar leaves)."""

    def __init__(
        self,
        objective: str,
        base_margin: np.ndarray,
        tree_class: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        default_left: np.ndarray,
        value: np.ndarray,
        depth: int,
        n_features: int,
    ) -> None:
        self.objective, self.base_margin, self.tree_class = objective, base_margin, tree_class
        self.feature, self.threshold, self.default_left = feature, threshold, default_left
        self.left, self.right, self.value = left, right, value
        self.depth, self.n_features = depth, n_features
        self.n_classes = len(base_margin)
        self.roots = np.arange(len(tree_class)) * (len(feature) // max(len(tree_class), 1))
        self.class_trees = [np.flatnonzero(tree_class == k) for k in range(self.n_classes)]

    @classmethod
    def from_booster(cls, booster: Any) -> TreeEnsemble | None:
        """The trees of an ``xgboost.Booster``; None when the model uses something this walk does not
        (another booster or objective, categorical splits, vector leaves): XGBoost then scores it."""
        learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
        objective = learner["objective"]["name"]
        model = learner["gradient_booster"]
        if objective not in OBJECTIVES or model.get("name") != "gbtree":
            return None
        trees = model["model"]["trees"]
        if any(any(tree["split_type"]) or int(tree["tree_param"]["size_leaf_vector"]) > 1 for tree in trees):
            return None
        parameters = learner["learner_model_param"]
        n_classes = max(int(parameters["num_class"]), 1)
        base_score = np.atleast_1d(np.asarray(json.loads(parameters["base_score"]), dtype=np.float32))
        if objective == "binary:logistic":  # the base score is a probability; the trees add margins
            one = np.float32(1.0)
            base_margin = -np.log(one / base_score - one)
        else:
            base_margin = np.broadcast_to(base_score, (n_classes,)).astype(np.float32)

        width = max(int(tree["tree_param"]["num_nodes"]) for tree in trees)
        shape = (len(trees), width)
        feature = np.zeros(shape, dtype=np.int64)
        threshold = np.zeros(shape, dtype=np.float32)
        default_left = np.zeros(shape, dtype=bool)
        value = np.zeros(shape, dtype=np.float32)
        # a leaf's children are the leaf itself, so every row can take the same number of steps
        nodes = np.arange(width)
        left = np.broadcast_to(nodes, shape).copy()
        right = left.copy()
        for t, tree in enumerate(trees):
            n = int(tree["tree_param"]["num_nodes"])
            children = np.asarray(tree["left_children"], dtype=np.int64)
            inner = children >= 0
            feature[t, :n] = tree["split_indices"]
            threshold[t, :n] = np.asarray(tree["split_conditions"], dtype=np.float32)
            default_left[t, :n] = np.asarray(tree["default_left"], dtype=bool)
            value[t, :n] = np.where(inner, 0.0, threshold[t, :n])  # a leaf keeps its value there
            left[t, :n] = np.where(inner, children, nodes[:n])
            right[t, :n] = np.where(inner, np.asarray(tree["right_children"], dtype=np.int64), nodes[:n])
        offsets = (np.arange(len(trees)) * width)[:, None]
        return cls(
            objective=objective,
            base_margin=base_margin.astype(np.float32),
            tree_class=np.asarray(model["model"]["tree_info"], dtype=np.int64),
            feature=feature.ravel(),
            threshold=threshold.ravel(),
            left=(left + offsets).ravel(),
            right=(right + offsets).ravel(),
            default_left=default_left.ravel(),
            value=value.ravel(),
            depth=_max_depth(trees),
            n_features=int(parameters["num_feature"]),
        )

    def margins(self, features: sparse.csr_matrix | SparseRows) -> np.ndarray:
        """``(rows, classes)`` raw margins: the base margin plus each tree's leaf, in tree order."""
        n_rows = features.shape[0]
        dense = np.full(n_rows * self.n_features, np.nan, dtype=np.float32)  # absent = missing
        row_start = np.repeat(np.arange(n_rows) * self.n_features, np.diff(features.indptr))
        dense[row_start + features.indices] = features.data
        node = np.add.outer(np.zeros(n_rows, dtype=np.int64), self.roots)  # (rows, trees)
        row_offset = (np.arange(n_rows) * self.n_features)[:, None]
        for _ in range(self.depth):
            observed = dense.take(self.feature.take(node) + row_offset)
            go_left = np.where(
                np.isnan(observed), self.default_left.take(node), observed < self.threshold.take(node)
            )
            node = np.where(go_left, self.left.take(node), self.right.take(node))
        leaves = self.value.take(node)
        margins = np.empty((n_rows, self.n_classes), dtype=np.float32)
        for k, trees in enumerate(self.class_trees):
            terms = np.empty((n_rows, len(trees) + 1), dtype=np.float32)
            terms[:, 0] = self.base_margin[k]
            terms[:, 1:] = leaves if len(trees) == leaves.shape[1] else leaves[:, trees]
            margins[:, k] = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]  # added one by one
        return margins

    def predict(self, features: sparse.csr_matrix | SparseRows) -> np.ndarray:
        """What ``Booster.inplace_predict`` returns: P(positive) per row for a binary objective,
        ``(rows, classes)`` probabilities for ``multi:softprob``."""
        margins = self.margins(features)
        if self.objective == "binary:logistic":
            exponent = np.minimum(-margins[:, 0], np.float32(88.7))
            return (np.float32(1.0) / (np.exp(exponent) + np.float32(1.0))).astype(np.float32)
        shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _max_depth(trees: list[dict[str, Any]]) -> int:
    deepest = 0
    for tree in trees:
        left, right = tree["left_children"], tree["right_children"]
        stack = [(0, 0)]
        while stack:
            node, depth = stack.pop()
            if left[node] < 0:
                deepest = max(deepest, depth)
            else:
                stack += [(left[node], depth + 1), (right[node], depth + 1)]
    return deepest
