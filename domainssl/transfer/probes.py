"""Classifiers on frozen features: a linear probe and a cosine kNN (scikit-learn)."""

from __future__ import annotations

import warnings

import numpy as np


def _need_two_classes(train_y: np.ndarray, what: str) -> None:
    """Refuse one-class training labels: a constant prediction would score 100 % on one-class tests."""
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise ValueError(f"{what}: training labels of at least 2 classes are needed, found "
                         f"{'only class ' + str(classes[0]) if len(classes) else 'none'}")


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, C: float = 1.0,
                 max_iter: int = 2000) -> np.ndarray:
    """Logistic regression on standardised features; returns predicted labels for `test_x`.

    train_x: (N, D) features, train_y: (N,) int labels, test_x: (M, D). C: inverse L2 strength.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _need_two_classes(train_y, "linear probe")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings():
        # A few-shot fit may stop at max_iter on separable data; the predictions are still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_y)
    return model.predict(test_x)


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 20) -> np.ndarray:
    """k nearest neighbours by cosine similarity, votes weighted by similarity.

    k is capped at the smallest class's training count: with 5 labels per class, 20 neighbours
    would always include every class's labels and vote by class size instead of by similarity.
    """
    from sklearn.neighbors import KNeighborsClassifier

    _need_two_classes(train_y, "kNN")
    smallest = int(np.min(np.unique(train_y, return_counts=True)[1]))
    k = max(1, min(int(k), smallest))
    model = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights="distance")
    model.fit(train_x, train_y)
    return model.predict(test_x)
