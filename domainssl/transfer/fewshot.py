"""The few-shot protocol: k labels per class, R seeds, test-split metrics, several encoders.

For each k in `shots` and each seed, k training labels per class are drawn (the same draw for
every encoder, so comparisons are paired); each mode (linear probe, kNN, fine-tune) is fitted on
them and scored on the whole test split. Rows report mean and std over seeds of accuracy,
balanced accuracy and macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .labeled import LabeledSet
from .progress import Progress

MODES = ("linear", "knn", "finetune")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


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

    Rows: encoder, mode, shots, labels_per_class (mean used), n_train, seeds, and for each metric
    `<metric>_mean` / `<metric>_std` (percent) over seeds.
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
                                       "labels_per_class": float(np.mean(n_train)) / num_classes,
                                       "n_train": int(np.mean(n_train)), "n_test": int(len(test)),
                                       "seeds": runs}
                for metric in METRICS:
                    vals = np.array([s[metric] for s in per_seed])
                    row[f"{metric}_mean"] = float(vals.mean())
                    row[f"{metric}_std"] = float(vals.std(ddof=0))
                rows.append(row)
    bar.close()
    return rows
