"""Collate functions: view items into view batches, raw patches into image batches."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def _labels(items: Sequence[Mapping[str, Any]]):
    import torch

    labels = [it.get("label") for it in items]
    if all(lab is None for lab in labels):
        return None
    if any(lab is None for lab in labels):
        raise ValueError("some samples in the batch have a label and some do not; label all or none")
    return torch.as_tensor([int(lab) for lab in labels], dtype=torch.long)


def collate_views(items: Sequence[Mapping[str, Any]]) -> dict:
    """Batch view-generator outputs: {"views": [(B, C, *S) per view position], "label": (B,)}.

    Views keep their order (globals first, then locals); every item must have the same number
    of views and equal shapes at each position.
    """
    import torch

    if not items:
        raise ValueError("cannot collate an empty batch")
    n = len(items[0]["views"])
    if any(len(it["views"]) != n for it in items):
        raise ValueError(f"items have different numbers of views ({sorted({len(it['views']) for it in items})})")
    views = []
    for i in range(n):
        shapes = {tuple(it["views"][i].shape) for it in items}
        if len(shapes) != 1:
            raise ValueError(f"view {i} has different shapes across the batch: {sorted(shapes)}")
        views.append(torch.stack([torch.as_tensor(it["views"][i]) for it in items]))
    out: dict[str, Any] = {"views": views}
    labels = _labels(items)
    if labels is not None:
        out["label"] = labels
    return out


def collate_patches(samples: Sequence[Mapping[str, Any]]) -> dict:
    """Batch raw samples for the GPU path: {"image": (B, C, *S) float32, "spacing": (B, d),
    "mask": (B, *S) bool if every sample has one, "label": (B,) long and "index": (B,) long
    when present}. Patches must share one shape (set the sampler's patch size).

    When the images are exactly the rows of one float32 `(B, C, *S)` array (see
    `domainssl.data.dataset.rows_of`), "image" shares that array's memory; otherwise it is a
    new tensor."""
    import torch

    if not samples:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(np.shape(s["image"])) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"patches in a batch must share one shape, got {sorted(shapes)}; give the "
                         f"patch sampler a fixed patch size")
    from ..data.dataset import rows_of

    rows = rows_of([s["image"] for s in samples])
    if rows is not None and rows.dtype == np.float32:
        # the rows of one float32 array (a batch read by PatchDataset.__getitems__): hand the
        # array on instead of copying every patch into a new one
        image = torch.from_numpy(rows)
    else:
        # (contiguous: torch refuses numpy views with negative strides, such as a flip)
        image = torch.stack([torch.from_numpy(np.ascontiguousarray(s["image"], dtype=np.float32))
                             if not isinstance(s["image"], torch.Tensor) else s["image"].float()
                             for s in samples])
    out: dict[str, Any] = {"image": image}
    d = image.ndim - 2
    out["spacing"] = torch.as_tensor(
        [tuple(s.get("spacing") if s.get("spacing") is not None else (1.0,) * d) for s in samples],
        dtype=torch.float64)
    if all(s.get("mask") is not None for s in samples):
        out["mask"] = torch.stack([torch.as_tensor(np.asarray(s["mask"]), dtype=torch.bool) for s in samples])
    labels = _labels(samples)
    if labels is not None:
        out["label"] = labels
    if all(s.get("index") is not None for s in samples):
        out["index"] = torch.as_tensor([int(s["index"]) for s in samples], dtype=torch.long)
    return out
