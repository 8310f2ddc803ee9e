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


def finetune_predict(encoder, train_inputs, train_y: np.ndarray, test_inputs, num_classes: int, *,
                     steps: int = 100, batch_size: int = 32, lr: float = 1e-4, head_lr: float = 1e-2,
                     layer_decay: float = 0.75, weight_decay: float = 0.05, seed: int = 0,
                     augment: bool = True, device="cpu", eval_batch_size: int = 256) -> np.ndarray:
    """Fine-tune a copy of `encoder` plus a linear head on the train inputs; predict the test inputs.

    train_inputs: (N, C, *S) tensor, train_y: (N,) ints, test_inputs: (M, C, *S).
    Returns (M,) predicted labels. The given encoder is not modified.
    """
    import torch
    from torch import nn

    from ..methods.optim import fused_adamw_available

    torch.manual_seed(seed)
    enc = copy.deepcopy(encoder).to(device).train()
    head = nn.Linear(int(enc.embed_dim), num_classes).to(device)
    opt = torch.optim.AdamW(param_groups(enc, lr, layer_decay, weight_decay) +
                            [{"params": head.parameters(), "lr": head_lr, "weight_decay": 0.0}],
                            fused=fused_adamw_available(torch.device(device)) or None)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=steps, pct_start=0.1)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
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
    preds = []
    with torch.no_grad():
        for start in range(0, len(test_inputs), eval_batch_size):
            preds.append(head(enc(test_inputs[start:start + eval_batch_size].to(device))).argmax(1).cpu())
    return torch.cat(preds).numpy()
