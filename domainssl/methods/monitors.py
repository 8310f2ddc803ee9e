"""Training monitors: embedding collapse, non-finite losses, online kNN accuracy."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F


class CollapseWarning(UserWarning):
    """Embeddings have (nearly) collapsed to a single direction."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite and the guard is set to stop."""


@torch.no_grad()
def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Collapse score of embeddings z (B, D): std over the batch of the L2-normalised embeddings,
    averaged over dimensions, times sqrt(D). About 1 for embeddings spread over the sphere,
    0 when every sample maps to the same direction. Scalar float32 tensor (no host sync)."""
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embedding_std needs (B>=2, D) embeddings, got {tuple(z.shape)}")
    z = F.normalize(z.float(), dim=1)
    return z.std(dim=0).mean() * math.sqrt(z.shape[1])


class ReadSkips:
    """Patch reads the data loader skipped (an unreadable file: the next slot was read instead),
    counted over the run for the run facts and the encoder card. `examples` keeps the first few
    distinct "path: reason" lines."""

    MAX_EXAMPLES = 5

    def __init__(self, count: int = 0, examples: Sequence[str] = ()) -> None:
        self.count, self.examples = int(count), list(examples)

    def add(self, skipped: Sequence[str] | None) -> None:
        for line in skipped or ():
            self.count += 1
            if len(self.examples) < self.MAX_EXAMPLES and line not in self.examples:
                self.examples.append(line)

    def facts(self) -> dict:
        return {"count": self.count, "examples": list(self.examples)}

    @classmethod
    def from_facts(cls, facts: dict | None) -> "ReadSkips":
        return cls(**(facts or {}))

    @classmethod
    def merged(cls, parts: Sequence["ReadSkips"]) -> "ReadSkips":
        """One count over several ranks' counts (examples in rank order, first few kept)."""
        out = cls()
        for part in parts:
            out.count += part.count
            for line in part.examples:
                if len(out.examples) < cls.MAX_EXAMPLES and line not in out.examples:
                    out.examples.append(line)
        return out


class CollapseMonitor:
    """Warns (CollapseWarning, naming the step) when `embedding_std` falls below `threshold`.

    It warns when the score first drops below the threshold and again each time it recovers and
    drops again, not every step. `last` holds the latest score, `tripped` how many times it warned.
    """

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = float(threshold)
        self.last: float | None = None
        self.tripped = 0
        self._below = False

    def update(self, z: torch.Tensor, step: int) -> float:
        """Score embeddings z (B, D) at optimisation step `step`; returns the score."""
        return self.observe(float(embedding_std(z)), step)

    def observe(self, score: float, step: int) -> float:
        """Record an already computed `embedding_std` score (lets the caller fetch it from the
        device together with the loss, in one synchronisation)."""
        self.last = score
        below = score < self.threshold
        if below and not self._below:
            self.tripped += 1
            warnings.warn(f"step {step}: embeddings look collapsed (std of L2-normalised embeddings "
                          f"x sqrt(d) = {score:.4f} < {self.threshold}); lower the learning rate, "
                          f"check the augmentations, or raise the temperature/centre momentum",
                          CollapseWarning, stacklevel=3)
        self._below = below
        return score


def check_finite(loss: torch.Tensor | float, step: int, action: str = "skip", where: str = "") -> bool:
    """True if `loss` (a tensor or a float already on the host) is finite. Otherwise warns and
    returns False (action 'skip': the caller skips this step) or raises NonFiniteLossError
    (action 'stop'). 'off' never checks. `where` is added to the message (e.g. " on rank 3")."""
    if action == "off":
        return True
    if action not in ("skip", "stop"):
        raise ValueError(f"nan_guard must be 'skip', 'stop' or 'off', got {action!r}")
    value = loss if isinstance(loss, float) else None
    if value is None:
        if bool(torch.isfinite(loss.detach()).all()):
            return True
        value = loss.detach().float().item()
    elif math.isfinite(value):
        return True
    msg = (f"step {step}: loss is {value}{where} (non-finite); "
           "common causes: too high a learning rate, fp16 overflow, a bad input tile (NaN nodata)")
    if action == "stop":
        raise NonFiniteLossError(msg + "; stopping (set nan_guard='skip' to skip such steps)")
    warnings.warn(msg + "; skipping this optimisation step", RuntimeWarning, stacklevel=2)
    return False


@torch.no_grad()
def reset_broken_norm_statistics(model: torch.nn.Module) -> int:
    """Reset the running statistics of every BatchNorm in `model` that a non-finite batch left
    NaN/Inf (the forward pass updates them before any guard can act, and eval mode, i.e. every
    transfer, would then output NaN). Called only after a skipped step, so it costs nothing
    otherwise. Returns how many layers were reset; their statistics re-form within ~1/momentum
    steps."""
    reset = 0
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.track_running_stats:
            if m.running_mean is not None and not (torch.isfinite(m.running_mean).all()
                                                   and torch.isfinite(m.running_var).all()):
                m.reset_running_stats()
                reset += 1
    return reset


class DeferredStats:
    """A few monitor numbers of one step, copied to the host without waiting for the device.

    stats: a small 1-D device tensor (e.g. [loss, collapse score]). On CUDA the copy goes to
    pinned memory behind a recorded event, so the training loop never stalls on it; `ready()`
    says when the numbers have arrived, `values()` returns them (waiting only if asked early).
    """

    def __init__(self, step: int, stats: torch.Tensor) -> None:
        self.step = step
        if stats.device.type == "cuda":
            self._host = torch.empty(stats.shape, dtype=stats.dtype, pin_memory=True)
            self._host.copy_(stats, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host, self._event = stats.detach().clone(), None

    def ready(self) -> bool:
        return self._event is None or self._event.query()

    def values(self) -> list[float]:
        if self._event is not None:
            self._event.synchronize()
        return self._host.tolist()


@torch.no_grad()
def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 20,
                 query_features: torch.Tensor | None = None,
                 query_labels: torch.Tensor | None = None, temperature: float = 0.07) -> float:
    """Weighted cosine kNN accuracy (DINO's kNN monitor).

    features (N, D), labels (N,) int: the reference set. Queries default to the reference set
    itself, scored leave-one-out (a sample never votes for itself), so one small labeled set is
    enough. Neighbours vote with weight exp(cos / temperature). Returns accuracy in [0, 1].
    """
    ref = F.normalize(features.float(), dim=1)
    loo = query_features is None
    qry = ref if loo else F.normalize(query_features.float(), dim=1)
    qlab = labels if loo else query_labels
    sim = qry @ ref.T
    if loo:
        sim.fill_diagonal_(float("-inf"))
    k = min(k, ref.shape[0] - (1 if loo else 0))
    top, idx = sim.topk(k, dim=1)
    n_cls = int(max(labels.max(), qlab.max())) + 1
    votes = torch.zeros(qry.shape[0], n_cls, device=ref.device)
    votes.scatter_add_(1, labels[idx], (top / temperature).exp())
    return float((votes.argmax(1) == qlab).float().mean())
