"""The few-shot protocol: k labels per class, R seeds, test-split metrics, several encoders.

For each k in `shots` and each seed, k training labels per class are drawn (the same draw for
every encoder, so comparisons are paired); each mode (linear probe, kNN, fine-tune) is fitted on
them and scored on the whole test split. Rows report mean and std over seeds of accuracy,
balanced accuracy and macro-F1.

A class with fewer than k training images contributes all it has; `run_fewshot` warns once per k
naming such classes (and when k is above every class's count), and `labels_per_class` in the rows
is the mean actually used per training class. The training split needs at least two classes; a
class with test images but no training images cannot be predicted and is warned about.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .labeled import LabeledDataError, LabeledSet
from .progress import Progress

MODES = ("linear", "knn", "finetune")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


class FewShotWarning(UserWarning):
    """A protocol run whose numbers need a caveat (classes smaller than k, untrainable classes)."""


def parse_shots(text: str | Sequence) -> list:
    """"1,5,10,all" -> [1, 5, 10, "all"]."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        item = str(item).strip().lower()
        if not item:
            continue
        if item == "all":
            out.append("all")
            continue
        try:
            k = int(item)
        except ValueError:
            raise ValueError(f"shots must be positive integers or 'all', got {item!r}") from None
        if k < 1:
            raise ValueError(f"shots must be positive integers or 'all', got {k}")
        out.append(k)
    if not out:
        raise ValueError("no shots given; e.g. 1,5,10,all")
    return out


def sample_shots(labels: np.ndarray, train_idx: np.ndarray, k, seed: int) -> np.ndarray:
    """k random training indices per class (all of a class when it has fewer); "all" gives all."""
    train_idx = np.asarray(train_idx)
    if k == "all":
        return np.sort(train_idx)
    rng = np.random.default_rng([int(seed), int(k)])
    picked = []
    for c in np.unique(labels[train_idx]):
        members = train_idx[labels[train_idx] == c]
        picked.append(rng.choice(members, size=min(int(k), len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def _counts(labels: np.ndarray, idx: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    """Images per class name among `idx` (classes with none left out)."""
    values, counts = np.unique(labels[idx], return_counts=True)
    return {str(class_names[v]): int(c) for v, c in zip(values, counts)}


def check_classes(labeled: LabeledSet, train: np.ndarray, test: np.ndarray) -> dict[str, int]:
    """Training images per class; refuse fewer than 2 training classes, warn on test-only classes.

    Raises:
        LabeledDataError: the training split holds fewer than two classes (any probe would predict
            one constant class and score 100 % on a one-class test split).
    """
    labels, names = np.asarray(labeled.labels), labeled.class_names
    train_counts, test_counts = _counts(labels, train, names), _counts(labels, test, names)
    if len(train_counts) < 2:
        found = f"only class {next(iter(train_counts))!r}" if train_counts else "no classes"
        raise LabeledDataError(
            f"{labeled.name}: the training split has {found} ({sum(train_counts.values())} images); a probe "
            "needs training labels of at least 2 classes. Label images of another class, or put some of "
            "them into the train split")
    only_test = {c: n for c, n in test_counts.items() if c not in train_counts}
    if only_test:
        warnings.warn(f"{labeled.name}: class(es) {only_test} (test images) have no training images; no "
                      "probe can predict them, so every score is capped below 100 %", FewShotWarning, stacklevel=3)
    return train_counts


def warn_small_classes(name: str, train_counts: dict[str, int], k) -> None:
    """One warning for a k that some (or every) class cannot fill: those classes use all they have."""
    if k == "all":
        return
    short = {c: n for c, n in train_counts.items() if n < int(k)}
    if not short:
        return
    if len(short) == len(train_counts):
        text = (f"k={k} is above every class's training count: at most {max(short.values())} labels per "
                f"class were used (training images per class: {short})")
    else:
        text = (f"k={k}: class(es) {short} have fewer training images than {k}; all of theirs are used, "
                "so those classes get fewer labels than the others")
    warnings.warn(f"{name}: {text}", FewShotWarning, stacklevel=3)


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 in percent."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {"accuracy": 100.0 * accuracy_score(y_true, y_pred),
            "balanced_accuracy": 100.0 * balanced_accuracy_score(y_true, y_pred),
            "macro_f1": 100.0 * f1_score(y_true, y_pred, average="macro", zero_division=0)}


@dataclass
class Candidate:
    """One encoder in the comparison.

    name: row label ("pretrained", "random_init", ...). features: `(N, D)` frozen features of
    every labeled item (for linear / knn), or None. inputs: `(N, C, *S)` tensor (for finetune),
    or None. encoder: the module (for finetune).
    """

    name: str
    features: np.ndarray | None = None
    inputs: Any = None
    encoder: Any = None
    info: dict = field(default_factory=dict)


def _predict(mode: str, cand: Candidate, train: np.ndarray, labels: np.ndarray, test: np.ndarray,
             seed: int, num_classes: int, knn_k: int, linear_c: float, finetune_kw: dict) -> np.ndarray:
    from .probes import knn_predict, linear_probe

    if mode == "linear":
        return linear_probe(cand.features[train], labels[train], cand.features[test], C=linear_c)
    if mode == "knn":
        return knn_predict(cand.features[train], labels[train], cand.features[test], k=knn_k)
    if mode == "finetune":
        from .finetune import finetune_predict

        if cand.encoder is None or cand.inputs is None:
            raise ValueError(f"{cand.name}: fine-tuning needs an encoder and its inputs")
        return finetune_predict(cand.encoder, cand.inputs[train], labels[train], cand.inputs[test],
                                num_classes, seed=seed, **finetune_kw)
    raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")


def run_fewshot(candidates: Sequence[Candidate], labeled: LabeledSet, *, shots=(1, 5, 10, "all"),
                seeds: int = 5, modes: Sequence[str] = ("linear",), knn_k: int = 20, linear_c: float = 1.0,
                finetune_kw: dict | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run the protocol; return one row per (encoder, mode, shots).

    Rows: encoder, mode, shots, labels_per_class (mean used per training class, below k when
    classes are smaller than k), n_train, seeds, and for each metric `<metric>_mean` /
    `<metric>_std` (percent) over seeds.

    Raises:
        LabeledDataError: the training split has fewer than two classes.
    Warns:
        FewShotWarning: once per k that some class cannot fill, and for test-only classes.
    """
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    shots = parse_shots(shots) if isinstance(shots, str) else list(shots)
    labels = np.asarray(labeled.labels)
    train, test = labeled.indices("train"), labeled.indices("test")
    if len(test) == 0 or len(train) == 0:
        raise ValueError(f"{labeled.name}: needs train and test items (found {len(train)} / {len(test)})")
    num_classes = len(labeled.class_names)
    train_counts = check_classes(labeled, train, test)
    for k in shots:
        warn_small_classes(labeled.name, train_counts, k)
    finetune_kw = dict(finetune_kw or {})
    total = len(candidates) * len(modes) * len(shots) * seeds
    bar = Progress(f"few-shot {labeled.name}", total, enabled=progress)
    rows = []
    for cand in candidates:
        for mode in modes:
            for k in shots:
                per_seed, n_train = [], []
                # With all labels a frozen-feature probe is deterministic: one fit stands for every seed.
                runs = 1 if (k == "all" and mode != "finetune") else seeds
                for seed in range(runs):
                    chosen = sample_shots(labels, train, k, seed)
                    pred = _predict(mode, cand, chosen, labels, test, seed, num_classes, knn_k, linear_c,
                                    finetune_kw)
                    per_seed.append(score(labels[test], pred))
                    n_train.append(len(chosen))
                bar.update(seeds)
                row: dict[str, Any] = {"encoder": cand.name, "mode": mode, "shots": k,
                                       # per class that has training images: what was used, not k
                                       "labels_per_class": float(np.mean(n_train)) / len(train_counts),
                                       "n_train": int(np.mean(n_train)), "n_test": int(len(test)),
                                       "seeds": runs}
                for metric in METRICS:
                    vals = np.array([s[metric] for s in per_seed])
                    row[f"{metric}_mean"] = float(vals.mean())
                    row[f"{metric}_std"] = float(vals.std(ddof=0))
                rows.append(row)
    bar.close()
    return rows
