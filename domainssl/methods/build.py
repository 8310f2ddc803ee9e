"""`build_method` by name, and `from_checkpoint`: rebuild encoder + method without unpickling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_METHODS = {"simclr": ("simclr", "SimCLR"), "mocov3": ("moco", "MoCoV3"), "moco": ("moco", "MoCoV3"),
            "byol": ("byol", "BYOL"), "dino": ("dino", "DINO"), "mae": ("mae", "MAE")}


def method_class(name: str):
    """The LightningModule class for a method name (simclr, mocov3/moco, byol, dino, mae)."""
    import importlib

    key = name.lower().replace("-", "").replace("_", "")
    if key not in _METHODS:
        raise ValueError(f"unknown SSL method {name!r}; choose one of {sorted(set(_METHODS))}")
    module, cls = _METHODS[key]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def build_method(name: str, encoder, **hparams: Any):
    """Build method `name` around `encoder` (a domainssl Encoder). hparams: the method's and
    SSLMethod's keyword arguments (lr, max_steps, temperature, ...)."""
    return method_class(name)(encoder, **hparams)


def from_checkpoint(path: str | Path, map_location: Any = "cpu", strict: bool = True):
    """Rebuild a method (with its encoder) from a Lightning checkpoint.

    Loads with torch.load(weights_only=True): nothing is unpickled. The checkpoint's
    hyper_parameters name the method and the encoder config. Missing or unexpected weights raise
    a KeyError listing them (strict=True) instead of silently leaving layers random.
    """
    import torch

    from ..models import build_encoder

    ckpt = torch.load(str(path), map_location=map_location, weights_only=True)
    hp = dict(ckpt.get("hyper_parameters") or {})
    if "method" not in hp or "encoder_config" not in hp:
        raise ValueError(f"{path} is not a domainssl method checkpoint (no method/encoder_config "
                         f"in its hyper_parameters)")
    name = hp.pop("method")
    encoder = build_encoder(**hp.pop("encoder_config"))
    method = build_method(name, encoder, **hp)
    result = method.load_state_dict(ckpt["state_dict"], strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise KeyError(f"checkpoint {path} does not match the {name} model it describes: missing "
                       f"{result.missing_keys[:10]}, unexpected {result.unexpected_keys[:10]}")
    method.on_load_checkpoint(ckpt)
    return method
