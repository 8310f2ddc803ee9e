"""Full fine-tuning of an encoder with a linear head on a few labels.

The encoder gets a small learning rate (the head a larger one); for ViTs each block's rate is
scaled by `layer_decay ** (depth - block)`, so early blocks move least (layer-wise LR decay).
"""

from __future__ import annotations

import copy
import re

import numpy as np

_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")
_EMBED = ("patch_embed", "pos_embed", "cls_token", "reg_token", "mask_token", "channel_embed")


def layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for block i, depth + 1 for everything after the blocks."""
    m = _BLOCK.search(name)
    if m:
        return int(m.group(1)) + 1
    if any(part in name for part in _EMBED):
        return 0
    return depth + 1


def param_groups(encoder, lr: float, layer_decay: float = 0.75, weight_decay: float = 0.05) -> list[dict]:
    """AdamW parameter groups for `encoder`: layer-wise LR decay for ViTs, one rate otherwise.

    Biases and norm weights (1-d tensors) get no weight decay.
    """
    names = [n for n, _ in encoder.named_parameters()]
    blocks = {int(m.group(1)) for n in names if (m := _BLOCK.search(n))}
    is_vit = getattr(encoder, "patch_size", None) is not None and bool(blocks)
    depth = max(blocks) + 1 if blocks else 0
    groups: dict[tuple[float, float], list] = {}
    for name, p in encoder.named_parameters():
        if not p.requires_grad:
            continue
        scale = layer_decay ** (depth + 1 - layer_id(name, depth)) if is_vit else 1.0
        wd = 0.0 if p.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "reg_token")) else weight_decay
        groups.setdefault((scale, wd), []).append(p)
    return [{"params": ps, "lr": lr * scale, "weight_decay": wd} for (scale, wd), ps in groups.items()]


def _augment(x):
    """Random flips along each spatial axis (labels of the supported tasks do not depend on them)."""
    import torch

    for axis in range(2, x.ndim):  # x is (B, C, *S): axes 2.. are spatial
        flip = torch.rand(x.shape[0]) < 0.5
        if flip.any():
            x[flip] = x[flip].flip(axis)
    return x


def _labels(train_y, n: int, num_classes: int | None) -> tuple[np.ndarray, int, np.ndarray | None]:
    """(class indices (N,), head size, label value per index or None when the labels are indices).

    Integer labels with `num_classes` are class indices (0 .. num_classes - 1). Other labels
    (strings, floats, or integers without `num_classes`) are encoded as `linear_probe` and
    `knn_predict` (scikit-learn) encode them: the sorted distinct values are the classes.
    """
    from .probes import _need_two_classes

    y = np.asarray(train_y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"fine-tuning: train_y must hold one label per training input ({n}), got shape {y.shape}")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
                                    or num_classes < 2):
        raise ValueError(f"fine-tuning: num_classes must be an integer >= 2 or None, got {num_classes!r}")
    try:
        classes = np.unique(y)
    except TypeError:
        raise ValueError("fine-tuning: train_y mixes label types (e.g. numbers and text); give labels "
                         "of one type") from None
    _need_two_classes(y, "fine-tuning")
    if y.dtype.kind in "iu" and num_classes is not None:
        bad = classes[(classes < 0) | (classes >= num_classes)]
        if bad.size:
            raise ValueError(
                f"fine-tuning: labels {bad[:10].tolist()} are not class indices 0..{num_classes - 1} of "
                f"num_classes={num_classes}; pass num_classes={int(classes.max()) + 1} when the labels are "
                "class indices, or num_classes=None to encode the label values as linear_probe does")
        return y.astype(np.int64), int(num_classes), None
    if num_classes is not None and num_classes < len(classes):
        raise ValueError(f"fine-tuning: train_y has {len(classes)} distinct labels {classes[:10].tolist()}, "
                         f"more than num_classes={num_classes}; pass num_classes={len(classes)} or None")
    return np.searchsorted(classes, y).astype(np.int64), len(classes), classes


def _inputs(x, what: str, dtype):
    """(N, C, *S) float tensor of `dtype` from a torch tensor or a numeric array."""
    import torch

    if not isinstance(x, torch.Tensor):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"fine-tuning: {what} must be a numeric array or tensor (N, C, *S), got "
                             f"dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.ndim not in (4, 5):
        raise ValueError(f"fine-tuning: {what} must be (N, C, Y, X) or (N, C, Z, Y, X), got shape {tuple(x.shape)}")
    return x.to(dtype)


def finetune_predict(encoder, train_inputs, train_y, test_inputs, num_classes: int | None = None, *,
                     steps: int = 100, batch_size: int = 32, lr: float = 1e-4, head_lr: float = 1e-2,
                     layer_decay: float = 0.75, weight_decay: float = 0.05, seed: int = 0,
                     augment: bool = True, device="cpu", eval_batch_size: int = 256) -> np.ndarray:
    """Fine-tune a copy of `encoder` plus a linear head on the train inputs; predict the test inputs.

    train_inputs: (N, C, *S), test_inputs: (M, C, *S), torch tensors or numpy arrays (cast to
    the encoder's dtype). train_y: (N,) labels, as `linear_probe` / `knn_predict` take them:
    integer class indices 0..num_classes-1 when `num_classes` is given; otherwise (and for text
    or other labels) the sorted distinct values are the classes (`num_classes`, if given, must
    be at least their number). Training labels need at least two classes.
    Returns (M,) predicted labels, in the labels' own values. The given encoder is not modified.

    Raises:
        ValueError: labels that do not fit the inputs or `num_classes`, one class, inputs that
            are not (N, C, *S) arrays, or test inputs with another channel count.
    """
    import torch
    from torch import nn

    from ..methods.optim import fused_adamw_available

    if int(steps) < 1 or int(batch_size) < 1 or int(eval_batch_size) < 1:
        raise ValueError(f"fine-tuning: steps, batch_size and eval_batch_size must be >= 1, got "
                         f"{steps}, {batch_size}, {eval_batch_size}")
    param = next(encoder.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    train_inputs = _inputs(train_inputs, "train_inputs", dtype)
    test_inputs = _inputs(test_inputs, "test_inputs", dtype)
    if len(train_inputs) == 0:
        raise ValueError("fine-tuning: no training inputs")
    if tuple(test_inputs.shape[1:2]) != tuple(train_inputs.shape[1:2]) or test_inputs.ndim != train_inputs.ndim:
        raise ValueError(f"fine-tuning: test_inputs of shape {tuple(test_inputs.shape)} do not match "
                         f"train_inputs of shape {tuple(train_inputs.shape)} (same channels and spatial dims)")
    y_idx, num_classes, classes = _labels(train_y, len(train_inputs), num_classes)

    torch.manual_seed(seed)
    enc = copy.deepcopy(encoder).to(device).train()
    head = nn.Linear(int(enc.embed_dim), num_classes).to(device)
    opt = torch.optim.AdamW(param_groups(enc, lr, layer_decay, weight_decay) +
                            [{"params": head.parameters(), "lr": head_lr, "weight_decay": 0.0}],
                            fused=fused_adamw_available(torch.device(device)) or None)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=steps, pct_start=0.1)
    y = torch.from_numpy(y_idx)
    gen = torch.Generator().manual_seed(seed)
    n = len(train_inputs)
    bs = min(batch_size, n)
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,), generator=gen)
        x = train_inputs[idx].clone()
        if augment:
            x = _augment(x)
        x = x.to(device)
        if bs == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in enc.modules()):
            x = torch.cat([x, x.flip(-1)])  # BatchNorm needs two samples in train mode
            target = y[idx].repeat(2).to(device)
        else:
            target = y[idx].to(device)
        loss = nn.functional.cross_entropy(head(enc(x)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    enc.eval()
    preds = [torch.zeros(0, dtype=torch.long)]
    with torch.no_grad():
        for start in range(0, len(test_inputs), eval_batch_size):
            preds.append(head(enc(test_inputs[start:start + eval_batch_size].to(device))).argmax(1).cpu())
    pred = torch.cat(preds).numpy()
    return pred if classes is None else classes[pred]
