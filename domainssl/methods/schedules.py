"""Learning-rate and weight-decay schedules (cosine with linear warm-up)."""

from __future__ import annotations

import math


def cosine_schedule(step: int, total_steps: int, start: float, end: float,
                    warmup_steps: int = 0, warmup_start: float = 0.0) -> float:
    """Value at `step`: linear from `warmup_start` to `start` over `warmup_steps`, then a half
    cosine from `start` to `end` at `total_steps` (held at `end` after)."""
    if step < warmup_steps:
        return warmup_start + (start - warmup_start) * step / max(warmup_steps, 1)
    span = max(total_steps - warmup_steps, 1)
    frac = min((step - warmup_steps) / span, 1.0)
    return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


class WarmupCosine:
    """LR multiplier for torch.optim.lr_scheduler.LambdaLR: warm-up to 1, cosine to `final_ratio`.

    A small class rather than a lambda: LambdaLR saves plain attributes of callable objects in its
    state_dict, so the schedule is in the checkpoint and loads with weights_only=True.
    """

    def __init__(self, warmup_steps: int, total_steps: int, final_ratio: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.final_ratio = float(final_ratio)

    def __call__(self, step: int) -> float:
        return cosine_schedule(step, self.total_steps, 1.0, self.final_ratio, self.warmup_steps, 0.0)
