"""SSL losses, computed in float32 whatever the autocast dtype (softmax/log in bf16 is lossy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import all_reduce_sum, gather_with_grad, rank, world_size


def _fp32(*xs: torch.Tensor):
    return tuple(x.float() for x in xs)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                 gather_distributed: bool = True) -> torch.Tensor:
    """SimCLR's NT-Xent loss for two views.

    z1, z2: (B, D) projections of the two views of the same B images. Each of the 2B embeddings
    must pick its partner out of all other 2B-1 (2WB-1 with W ranks: negatives are gathered
    across ranks). Returns the mean cross-entropy, a scalar float32 tensor.
    """
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _fp32(z1, z2)
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        b = z1.shape[0]
        if gather_distributed and world_size() > 1:
            a1, a2 = gather_with_grad(z1), gather_with_grad(z2)
        else:
            a1, a2 = z1, z2
        n_all = a1.shape[0]
        offset = rank() * b if n_all != b else 0
        local = torch.cat([z1, z2])                       # (2B, D)
        cands = torch.cat([a1, a2])                       # (2WB, D)
        logits = local @ cands.T / temperature            # (2B, 2WB)
        idx = torch.arange(b, device=z1.device) + offset
        self_cols = torch.cat([idx, idx + n_all])
        pos_cols = torch.cat([idx + n_all, idx])
        rows = torch.arange(2 * b, device=z1.device)
        logits[rows, self_cols] = float("-inf")           # an embedding is not its own negative
        return F.cross_entropy(logits, pos_cols)


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2,
                  queue: torch.Tensor | None = None, gather_distributed: bool = True,
                  scale_by_temperature: bool = True) -> torch.Tensor:
    """InfoNCE of queries against keys (MoCo).

    q: (B, D) queries (with gradient); k: (B, D) keys (momentum branch, no gradient needed).
    Without `queue` (MoCo v3), the negatives are the other keys of the (rank-gathered) batch.
    With `queue` (K, D) of past L2-normalised keys (MoCo v2), the logits are [q.k+, q.queue].
    MoCo v3 multiplies the loss by 2*temperature (`scale_by_temperature`). Scalar float32.
    """
    with torch.autocast(q.device.type, enabled=False):
        q, k = _fp32(q, k)
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        if queue is not None:
            pos = (q * k).sum(dim=1, keepdim=True)
            logits = torch.cat([pos, q @ queue.float().T], dim=1) / temperature
            labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        else:
            keys = gather_with_grad(k) if gather_distributed else k
            logits = q @ keys.T / temperature
            offset = rank() * q.shape[0] if keys.shape[0] != q.shape[0] else 0
            labels = torch.arange(q.shape[0], device=q.device) + offset
        loss = F.cross_entropy(logits, labels)
        return loss * (2 * temperature) if scale_by_temperature else loss


def cosine_similarity_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss 2 - 2 cos(p, z), batch mean; z is treated as a constant target.

    p: (B, D) online predictions; z: (B, D) target projections. Scalar float32 in [0, 4].
    """
    with torch.autocast(p.device.type, enabled=False):
        p, z = _fp32(p, z.detach())
        return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()


class DINOLoss(nn.Module):
    """DINO's self-distillation loss with teacher centring and sharpening.

    The teacher's softmax uses a temperature warmed up linearly from `warmup_teacher_temp` to
    `teacher_temp` over `warmup_steps`, and its outputs are centred by `center`, an EMA (momentum
    `center_momentum`) of the batch mean of teacher outputs over all ranks. The centre is a buffer,
    so it is saved in checkpoints.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_steps: int = 0,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_steps = warmup_steps
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temperature(self, step: int) -> float:
        """Teacher temperature at optimisation step `step` (linear warm-up, then constant)."""
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return self.teacher_temp
        frac = step / self.warmup_steps
        return self.warmup_teacher_temp + frac * (self.teacher_temp - self.warmup_teacher_temp)

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, step: int,
                update_center: bool = True) -> torch.Tensor:
        """student_out: (V, B, K) logits of V crops (the G global crops first); teacher_out:
        (G, B, K) logits of the global crops, in the same order. Cross-entropy of every
        (teacher crop i, student crop j != i) pair, averaged; scalar float32. Updates the centre
        afterwards when `update_center`.
        """
        if student_out.ndim != 3 or teacher_out.ndim != 3:
            raise ValueError("DINOLoss expects (crops, batch, K) tensors, got "
                             f"{tuple(student_out.shape)} and {tuple(teacher_out.shape)}")
        g, b, _ = teacher_out.shape
        v = student_out.shape[0]
        with torch.autocast(student_out.device.type, enabled=False):
            s, t = _fp32(student_out, teacher_out.detach())
            log_p = F.log_softmax(s / self.student_temp, dim=-1)
            q = F.softmax((t - self.center) / self.teacher_temperature(step), dim=-1)
            # ce[i, j] = batch mean of -sum_k q_i log p_j
            ce = -torch.einsum("ibk,jbk->ij", q, log_p) / b
            same = torch.zeros(g, v, dtype=torch.bool, device=s.device)
            same[torch.arange(g), torch.arange(g)] = True   # a crop does not predict itself
            loss = ce.masked_fill(same, 0.0).sum() / (g * v - g)
        if update_center:
            self.update_center(teacher_out.flatten(0, 1))
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """center <- m * center + (1 - m) * mean of teacher outputs over this batch on all ranks.
        A batch with NaN/Inf outputs leaves the centre unchanged (on the device, no host sync):
        the NaN guard skips that step, and a NaN centre would make every later loss NaN."""
        t = teacher_out.float()
        total = all_reduce_sum(t.sum(dim=0, keepdim=True))
        batch_center = total / (t.shape[0] * world_size())
        updated = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        self.center.copy_(torch.where(torch.isfinite(batch_center).all(), updated, self.center))
