"""domainssl.methods: one LightningModule per SSL method (SimCLR, MoCoV3, BYOL, DINO, MAE) and
the shared losses, momentum updates, schedules and monitors.

Names are re-exported lazily so `import domainssl` does not import torch or lightning.
"""

from .._lazy import lazy_getattr

_EXPORTS = {
    "SSLMethod": "base",
    "SimCLR": "simclr",
    "MoCoV3": "moco",
    "BYOL": "byol",
    "DINO": "dino",
    "MAE": "mae",
    "build_method": "build",
    "method_class": "build",
    "from_checkpoint": "build",
    "nt_xent_loss": "losses",
    "info_nce_loss": "losses",
    "cosine_similarity_loss": "losses",
    "DINOLoss": "losses",
    "ema_update": "momentum",
    "update_momentum": "momentum",
    "MomentumPairs": "momentum",
    "cosine_momentum": "momentum",
    "cosine_schedule": "schedules",
    "WarmupCosine": "schedules",
    "embedding_std": "monitors",
    "CollapseMonitor": "monitors",
    "CollapseWarning": "monitors",
    "NonFiniteLossError": "monitors",
    "check_finite": "monitors",
    "knn_accuracy": "monitors",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
