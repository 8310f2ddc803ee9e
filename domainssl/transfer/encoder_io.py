"""Export an encoder to a directory (safetensors + card) and load it back, never unpickling.

    enc = domainssl.load_encoder("ENCODER_DIR")   # eval mode; enc.card is encoder.json
    feats = enc(x)                                # (B, embed_dim)

The loaded module checks its input (a `(B, C, *S)` tensor with the card's channel count; another
float dtype is cast to the weights' dtype) and says what it expected instead of a layer's error.

2D timm encoders are written with timm's own key names, so timm alone can load the file:

    timm.create_model(arch, pretrained=True,
                      pretrained_cfg_overlay=dict(file="ENCODER_DIR/model.safetensors", num_classes=0),
                      num_classes=0, in_chans=C)

(the exact call, with any extra kwargs such as `img_size`, is in the card's README.md).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from .. import __version__
from .card import (CARD_VERSION, WEIGHTS_FILE, CardError, read_card, write_card)


class WeightsMismatchError(RuntimeError):
    """Weights that cannot be used for the encoder the card describes: keys or shapes that do not
    fit it, or a weights file that is not a readable safetensors file."""


_LFS_POINTER = b"version https://git-lfs"


def read_weights(weights_path) -> dict:
    """The tensors of a safetensors file; an unreadable file raises `WeightsMismatchError`
    naming it and what to do (a git-lfs pointer, a truncated download or copy, another format)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights_path))
    except SafetensorError as exc:
        with open(weights_path, "rb") as fh:
            head = fh.read(len(_LFS_POINTER))
        if head == _LFS_POINTER:
            raise WeightsMismatchError(
                f"{weights_path}: a git-lfs pointer file, not the weights; run `git lfs pull` in the "
                "repository that holds it (or copy the real file)") from exc
        raise WeightsMismatchError(
            f"{weights_path}: not a readable safetensors file ({exc}); it is truncated or corrupt: "
            "copy it again, or export the encoder again with `domainssl export RUN --out DIR`") from exc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _timm_model(encoder):
    """The timm model inside a 2D encoder (the encoder itself, or a submodule), or None."""
    for module in encoder.modules():
        if hasattr(module, "pretrained_cfg") and type(module).__module__.startswith("timm."):
            return module
    return None


def _export_state_dict(encoder) -> tuple[dict, str]:
    """The tensors to save and their key format ("timm" or "domainssl")."""
    if hasattr(encoder, "timm_state_dict"):
        return dict(encoder.timm_state_dict()), "timm"
    if type(encoder).__module__.startswith("timm."):
        return encoder.state_dict(), "timm"
    return encoder.state_dict(), "domainssl"


def _timm_key_map(encoder) -> dict[str, str]:
    """timm key -> encoder state_dict key, matched by tensor identity (same storage)."""
    if type(encoder).__module__.startswith("timm."):
        return {k: k for k in encoder.state_dict()}
    by_ptr: dict[tuple[int, tuple], str] = {}
    for key, t in encoder.state_dict(keep_vars=True).items():
        by_ptr.setdefault((t.data_ptr(), tuple(t.shape)), key)
    mapping = {}
    for key, t in encoder.timm_state_dict().items():
        own = by_ptr.get((t.data_ptr(), tuple(t.shape)))
        if own is not None:
            mapping[key] = own
    return mapping


def _timm_block(encoder, card_build: dict) -> dict | None:
    """Model name and create_model kwargs that rebuild a 2D timm encoder with timm alone."""
    model = _timm_model(encoder)
    if model is None:
        return None
    name = model.pretrained_cfg.get("architecture") or card_build.get("arch")
    # Architecture options the encoder was built with (drop_path_rate, ...) are timm kwargs too.
    skip = {"arch", "in_chans", "spatial_dims", "input_size", "channel_names"}
    kwargs: dict[str, Any] = {k: v for k, v in card_build.items() if k not in skip}
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and getattr(patch_embed, "img_size", None) is not None:
        kwargs.setdefault("img_size", tuple(int(s) for s in patch_embed.img_size))
        kwargs.setdefault("patch_size", tuple(int(s) for s in patch_embed.patch_size))
    kwargs.pop("in_chans", None)
    kwargs.pop("num_classes", None)
    kwargs.pop("pretrained", None)
    return {"model_name": name, "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}}


def encoder_build_config(encoder) -> dict[str, Any]:
    """The kwargs that rebuild `encoder` with `domainssl.models.build_encoder(**config)`."""
    config = getattr(encoder, "config", None)
    if not isinstance(config, dict):
        raise CardError(f"{type(encoder).__name__} has no `config` dict; export needs an encoder from "
                        "domainssl.models.build_encoder")
    return dict(config)


def make_card(encoder, *, channel_names, spacing=None, units=None, normalization=None, method=None,
              data=None, metrics=None, input_size=None) -> dict[str, Any]:
    """Assemble the card for `encoder` (see `domainssl.transfer.card` for the keys).

    Args:
        encoder: a `domainssl.models` encoder (attrs arch, in_chans, spatial_dims, patch_size,
            embed_dim, config).
        channel_names: one name per input channel, in input order.
        spacing, units: physical spacing per spatial axis it was pretrained at, and its units.
        normalization: the views' `NormaliseConfig` fields (mode none | rule | zscore |
            stats_range | percentile | window, ...) plus `stats` (the archive statistics).
        method: {"name": ..., key hyper-parameters}; data: pretraining summary; metrics: final
            loss and monitor values.
        input_size: pixels per spatial axis seen in pretraining (default: the encoder's config).
    """
    build = encoder_build_config(encoder)
    dims = int(encoder.spatial_dims)
    size = input_size if input_size is not None else build.get("input_size")
    if isinstance(size, int):
        size = [size] * dims
    patch = getattr(encoder, "patch_size", None)
    if isinstance(patch, int):
        patch = [patch] * dims
    card = {
        "format": "domainssl-encoder",
        "version": CARD_VERSION,
        "domainssl_version": __version__,
        "arch": str(encoder.arch),
        "build": build,
        "spatial_dims": dims,
        "in_chans": int(encoder.in_chans),
        "channel_names": [str(c) for c in channel_names],
        "input_size": [int(s) for s in size] if size is not None else None,
        "patch_size": [int(p) for p in patch] if patch is not None else None,
        "spacing": [float(s) for s in spacing] if spacing is not None else [1.0] * dims,
        "units": list(units) if units is not None else ["px"] * dims,
        "normalization": dict(normalization or {"mode": "none"}),
        "embed_dim": int(encoder.embed_dim),
        "method": dict(method or {"name": "none"}),
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
        "weights": {"file": WEIGHTS_FILE},
    }
    timm_info = _timm_block(encoder, build)
    if timm_info:
        card["timm"] = timm_info
    return card


def export_encoder(encoder, out_dir, card: dict[str, Any]) -> Path:
    """Write `model.safetensors`, `encoder.json` and `README.md` into `out_dir`; return it.

    Weights are contiguous CPU tensors; 2D timm encoders use timm's key names.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state, key_format = _export_state_dict(encoder)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    weights = out_dir / WEIGHTS_FILE
    save_file(tensors, str(weights), metadata={"format": "pt", "producer": f"domainssl {__version__}",
                                               "key_format": key_format})
    card = dict(card)
    card["weights"] = {"file": WEIGHTS_FILE, "key_format": key_format, "sha256": _sha256(weights),
                       "num_tensors": len(tensors),
                       "num_parameters": int(sum(p.numel() for p in encoder.parameters()))}
    write_card(card, out_dir)
    return out_dir


def build_from_card(card: dict[str, Any]):
    """A randomly initialised encoder of the card's architecture (eval mode, `.card` attached)."""
    from ..models import build_encoder

    try:
        encoder = build_encoder(**card["build"])
    except (TypeError, ValueError) as exc:
        raise CardError(f"cannot build the card's encoder from build={card['build']}: {exc}") from exc
    encoder.card = card
    return encoder.eval()


def _report(problems: list[str], strict: bool, where: str) -> None:
    if not problems:
        return
    text = f"{where}: weights do not match the encoder: " + "; ".join(problems)
    if strict:
        raise WeightsMismatchError(text + ". Export the encoder again, or pass strict=False to load "
                                   "what matches (the rest stays randomly initialised).")
    warnings.warn(text, stacklevel=3)


def load_weights(encoder, weights_path, *, key_format: str = "domainssl", strict: bool = True) -> dict:
    """Load a safetensors file into `encoder`, reporting missing, unexpected and mis-shaped keys.

    Returns {"missing": [...], "unexpected": [...], "mismatched": [...]}.
    Raises `WeightsMismatchError` when any list is non-empty and `strict` (warns otherwise), and
    when the file is not a readable safetensors file.
    """
    state = read_weights(weights_path)
    if key_format == "timm" and not type(encoder).__module__.startswith("timm."):
        if not hasattr(encoder, "timm_state_dict"):
            raise WeightsMismatchError(f"{weights_path}: timm-format weights but {type(encoder).__name__} "
                                       "has no timm_state_dict() to map keys")
        mapping = _timm_key_map(encoder)
        state = {mapping.get(k, f"<timm>{k}"): v for k, v in state.items()}
    own = encoder.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k.replace("<timm>", "") for k in state if k not in own)
    mismatched = sorted(f"{k} file {tuple(v.shape)} vs encoder {tuple(own[k].shape)}"
                        for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatch {mismatched}")
    _report(problems, strict, str(weights_path))
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    encoder.load_state_dict(usable, strict=False)
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def _input_problem(card: dict, shape: tuple) -> str | None:
    """What is wrong with an input of `shape` for the card's encoder, or None."""
    dims = int(card["spatial_dims"])
    axes = "(B, C, Z, Y, X)" if dims == 3 else "(B, C, Y, X)"
    if len(shape) != dims + 2:
        hint = ("; add the batch axis, e.g. x[None]" if len(shape) == dims + 1 else "")
        return f"expects a batch {axes} ({dims + 2} dims), found {len(shape)} dims {tuple(shape)}{hint}"
    chans = int(card["in_chans"])
    if shape[1] != chans:
        names = ", ".join(str(c) for c in card.get("channel_names") or [])
        return (f"expects {chans} channels ({names}) on axis 1 of {axes}, found {shape[1]} in an input of "
                f"shape {tuple(shape)}; select or map the channels to the card's order")
    return None


def check_input(module, args):
    """Forward pre-hook of a loaded encoder: a clear error for an input of the wrong kind, ndim or
    channel count, and a floating input of another dtype cast to the weights' dtype (float64 from
    `torch.from_numpy` would otherwise fail inside the first layer). A few attribute reads per
    call: nothing per element unless a cast is needed."""
    import torch

    if not args:  # called with keywords only: leave it to the module
        return None
    x = args[0]
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module.card['arch']} encoder expects a torch.Tensor, found {type(x).__name__}; "
                        "e.g. torch.from_numpy(array)")
    problem = _input_problem(module.card, x.shape)
    if problem:
        raise ValueError(f"{module.card['arch']} encoder {problem}")
    source = getattr(module, "_input_dtype_source", None)
    want = source[0]._parameters[source[1]].dtype if source else next(module.parameters()).dtype
    if x.dtype == want:
        return None
    if not x.is_floating_point():
        raise ValueError(f"{module.card['arch']} encoder expects floating-point input normalised as "
                         f"card['normalization'] says ({module.card['normalization'].get('mode')}), found "
                         f"{x.dtype}; convert and normalise it first")
    return (x.to(want), *args[1:])


def watch_input(encoder) -> None:
    """Install `check_input` on `encoder`. The weights' dtype is read from the first parameter's
    owning module and name (two dict lookups, robust to .to() and .half() replacing parameters;
    `next(parameters())` costs ~10 us per call)."""
    name = next(n for n, _ in encoder.named_parameters())
    owner, _, local = name.rpartition(".")
    encoder._input_dtype_source = (encoder.get_submodule(owner), local)  # a tuple: not registered
    encoder.register_forward_pre_hook(check_input)


def load_encoder(encoder_dir, *, strict: bool = True, device="cpu", random_init: bool = False):
    """Load an exported encoder: build it from the card and load its safetensors weights.

    Args:
        encoder_dir: folder with `encoder.json` and `model.safetensors` (from `domainssl export`).
        strict: raise on missing/unexpected/mis-shaped keys (default); with False, warn listing them.
        device: torch device for the returned module.
        random_init: skip the weights (the same architecture randomly initialised, for baselines).

    Returns:
        The encoder `torch.nn.Module` in eval mode with `.card` (the card dict). It maps a float32
        batch `(B, in_chans, *input_size)`, normalised as `card["normalization"]` says, to
        `(B, embed_dim)` features. Its input is checked (`check_input`): a wrong number of dims
        or channels raises a ValueError saying what was expected; a floating input of another
        dtype (float64 from numpy) is cast to the weights' dtype.

    Raises:
        CardError: no card, an invalid one, or no weights file.
        WeightsMismatchError: the weights file is unreadable or does not fit the card.
    """
    encoder_dir = Path(encoder_dir)
    card = read_card(encoder_dir)
    encoder = build_from_card(card)
    if not random_init:
        weights = encoder_dir / card["weights"].get("file", WEIGHTS_FILE)
        if not weights.is_file():
            raise CardError(f"{weights}: missing; the encoder directory needs the weights next to encoder.json")
        load_weights(encoder, weights, key_format=card["weights"].get("key_format", "domainssl"), strict=strict)
    encoder.card = card
    watch_input(encoder)
    return encoder.to(device).eval()
