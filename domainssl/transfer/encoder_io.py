"""Export an encoder to a directory (safetensors + card) and load it back, never unpickling.

    enc = domainssl.load_encoder("ENCODER_DIR")   # eval mode; enc.card is encoder.json
    feats = enc(x)                                # (B, embed_dim)

The loaded module checks its input (a `(B, C, *S)` tensor with the card's channel count; another
float dtype is cast to the weights' dtype), in `forward` and in `forward_tokens` where the encoder
has patch tokens, and says what it expected instead of a layer's error. Loading checks the card
against what it loads: the weights file's sha256 (when the card records it) and the built
encoder's in_chans, embed_dim, spatial_dims, input_size and patch_size.

2D timm encoders are written with timm's own key names, so timm alone can load the file:

    timm.create_model(arch, pretrained=True,
                      pretrained_cfg_overlay=dict(file="ENCODER_DIR/model.safetensors", num_classes=0),
                      num_classes=0, in_chans=C)

(the exact call, with any extra kwargs such as `img_size`, is in the card's README.md).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path
from typing import Any

from .. import __version__
from .card import (CARD_FILE, CARD_VERSION, WEIGHTS_FILE, CardError, channel_count_problem,
                   encoder_input_names, read_card, slab_depth, window_count, write_card)


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


def verify_weights(card: dict[str, Any], weights_path, *, strict: bool = True, where: str = "card") -> None:
    """Check a weights file against the card's `weights.sha256` (nothing to check without one).

    Raises:
        CardError: the file is not the one exported with this card (with `strict`; warns otherwise).
    """
    expected = (card.get("weights") or {}).get("sha256")
    if not expected:
        return
    actual = _sha256(Path(weights_path))
    if actual == str(expected).lower():
        return
    text = (f"{weights_path}: sha256 {actual} differs from the card's weights.sha256 {expected} ({where}); "
            "these are not the weights exported with this card (replaced, re-saved or partly copied). "
            "Export the encoder again with `domainssl export RUN --out DIR` so that weights and card belong "
            "together; if the weights were replaced on purpose with ones of the same architecture, set "
            f"weights.sha256 in {CARD_FILE} to {actual}")
    if strict:
        raise CardError(text + " (or pass strict=False to load them with a warning).")
    warnings.warn(text, stacklevel=3)


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
        channel_names: the data channels, in input order: one per encoder input channel, or for
            CT windows (normalization mode "window") one per data channel before the windows;
            in_chans must be len(channel_names) x windows (x slices of a 2.5D encoder), else
            `CardError`.
        spacing, units: physical spacing per spatial axis it was pretrained at, and its units.
        normalization: the views' `NormaliseConfig` fields (mode none | rule | zscore |
            stats_range | percentile | window, ...) plus `stats` (the archive statistics).
        method: {"name": ..., key hyper-parameters}; data: pretraining summary; metrics: final
            loss and monitor values.
        input_size: pixels per spatial axis seen in pretraining (default: the encoder's config).
    """
    build = encoder_build_config(encoder)
    names = [str(c) for c in channel_names]
    norm = dict(normalization or {"mode": "none"})
    slabs = slab_depth({"in_chans": int(encoder.in_chans), "channel_names": names, "normalization": norm,
                        "build": build})
    problem = channel_count_problem(int(encoder.in_chans), names, norm, slabs)
    if problem:
        raise CardError(f"make_card for {encoder.arch}: {problem}")
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


def _built_value(encoder, key: str):
    value = getattr(encoder, key, None)
    if value is None:
        return None
    if key in ("input_size", "patch_size"):
        if isinstance(value, int):
            value = [value] * int(encoder.spatial_dims)
        return [int(v) for v in value]
    return int(value)


def _card_value(card: dict[str, Any], key: str):
    value = card.get(key)
    if value is None:
        return None
    if key in ("input_size", "patch_size"):
        if isinstance(value, int):
            value = [value] * int(card["spatial_dims"])
        return [int(v) for v in value]
    return int(value)


# Top-level card keys that describe the built encoder (checked after building it from `build`).
BUILT_KEYS = ("spatial_dims", "in_chans", "embed_dim", "input_size", "patch_size")


def check_card_against_encoder(card: dict[str, Any], encoder, where: str = "card") -> None:
    """Raise `CardError` when the card's top-level in_chans, embed_dim, spatial_dims, input_size
    or patch_size differ from the encoder that `card["build"]` builds (a card edited or assembled
    by hand: its users would prepare inputs for another encoder)."""
    problems = []
    for key in BUILT_KEYS:
        want, got = _card_value(card, key), _built_value(encoder, key)
        if want is None or got is None:
            continue  # e.g. patch_size of a CNN
        if want != got:
            problems.append(f"{key}: card {want}, built encoder {got}")
    if problems:
        raise CardError(f"{where}: the card does not describe the encoder its build arguments make ("
                        + "; ".join(problems) + f"; build={card['build']}). The card was edited or assembled "
                        "by hand: export the encoder again with `domainssl export RUN --out DIR`, or correct "
                        f"these keys in {CARD_FILE} to the built values")


def build_from_card(card: dict[str, Any], where: str = "card"):
    """A randomly initialised encoder of the card's architecture (eval mode, `.card` attached).

    Raises:
        CardError: `card["build"]` does not build, or builds an encoder whose in_chans, embed_dim,
            spatial_dims, input_size or patch_size differ from the card's (`check_card_against_encoder`).
    """
    from ..models import build_encoder

    try:
        encoder = build_encoder(**card["build"])
    except (TypeError, ValueError) as exc:
        raise CardError(f"{where}: cannot build the card's encoder from build={card['build']}: {exc}") from exc
    check_card_against_encoder(card, encoder, where)
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
    from ..models.input_shape import batch_axes, batch_dims_problem

    dims, chans = int(card["spatial_dims"]), int(card["in_chans"])
    axes = batch_axes(dims)
    shape = tuple(int(s) for s in shape)
    wrong_dims = batch_dims_problem(shape, dims, chans)
    if wrong_dims:
        size = ", ".join(str(s) for s in card.get("input_size") or ())
        return f"(pretrained on ({chans}, {size})) {wrong_dims}"
    if shape[1] != chans:
        enc_names = encoder_input_names(card)  # a loaded card is validated
        data_names = [str(c) for c in card.get("channel_names") or []]
        norm = card.get("normalization") or {}
        head = (f"expects {chans} channels ({', '.join(enc_names)}) on axis 1 of {axes}, found {shape[1]} in an "
                f"input of shape {shape}")
        per = window_count(norm)
        if norm.get("mode") == "window" and per > 1 and shape[1] == len(data_names):
            return (f"{head}: these look like the raw data channels ({', '.join(data_names)}), but the encoder "
                    f"takes each through the card's {per} CT windows (level, width) {norm.get('windows')}. "
                    "Apply the windows to the HU values first: torch.stack([domainssl.transforms.ct_windows(img, "
                    "enc.card['normalization']['windows']) for img in x]) (one (C, *S) image at a time, window "
                    "minor), or prepare the inputs as `domainssl probe` does: domainssl.transfer.prepare_input(enc, image)")
        return f"{head}; select or map the channels to the card's order"
    return None


def _check_tensor(module, x):
    """`x` checked against the module's card (a clear error for the wrong kind, ndim or channel
    count), a floating tensor of another dtype cast to the weights' dtype."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module.card['arch']} encoder expects a torch.Tensor, found {type(x).__name__}; "
                        "e.g. torch.from_numpy(array)")
    problem = _input_problem(module.card, x.shape)
    if problem:
        raise ValueError(f"{module.card['arch']} encoder {problem}")
    source = getattr(module, "_input_dtype_source", None)
    want = source[0]._parameters[source[1]].dtype if source else next(module.parameters()).dtype
    if x.dtype == want:
        return x
    if not x.is_floating_point():
        raise ValueError(f"{module.card['arch']} encoder expects floating-point input normalised as "
                         f"card['normalization'] says ({module.card['normalization'].get('mode')}), found "
                         f"{x.dtype}; convert and normalise it first")
    return x.to(want)


def check_input(module, args):
    """Forward pre-hook of a loaded encoder: a clear error for an input of the wrong kind, ndim or
    channel count, and a floating input of another dtype cast to the weights' dtype (float64 from
    `torch.from_numpy` would otherwise fail inside the first layer). A few attribute reads per
    call: nothing per element unless a cast is needed."""
    if not args:  # called with keywords only: leave it to the module
        return None
    x = _check_tensor(module, args[0])
    return None if x is args[0] else (x, *args[1:])


def _checked_forward_tokens(module, x, *args, **kwargs):
    """`forward_tokens` of a loaded encoder with `forward`'s input check and dtype cast.

    Installed per instance as `functools.partial(_checked_forward_tokens, encoder)`: a deepcopy
    (fine-tuning copies the encoder) binds the copy, and pickling keeps working."""
    return type(module).forward_tokens(module, _check_tensor(module, x), *args, **kwargs)


def watch_input(encoder) -> None:
    """Install `check_input` on `encoder` (a forward pre-hook) and on its `forward_tokens` where it
    has one. The weights' dtype is read from the first parameter's owning module and name (two
    dict lookups, robust to .to() and .half() replacing parameters; `next(parameters())` costs
    ~10 us per call). Installing twice is a no-op."""
    if getattr(encoder, "_input_watched", False):
        return
    name = next(n for n, _ in encoder.named_parameters())
    owner, _, local = name.rpartition(".")
    encoder._input_dtype_source = (encoder.get_submodule(owner), local)  # a tuple: not registered
    encoder.register_forward_pre_hook(check_input)
    if getattr(type(encoder), "forward_tokens", None) is not None:
        encoder.forward_tokens = functools.partial(_checked_forward_tokens, encoder)
    encoder._input_watched = True


def load_encoder(encoder_dir, *, strict: bool = True, device="cpu", random_init: bool = False):
    """Load an exported encoder: build it from the card and load its safetensors weights.

    Args:
        encoder_dir: folder with `encoder.json` and `model.safetensors` (from `domainssl export`).
        strict: raise on missing/unexpected/mis-shaped keys and on weights whose sha256 differs
            from the card's `weights.sha256` (default); with False, warn instead.
        device: torch device for the returned module.
        random_init: skip the weights (the same architecture randomly initialised, for baselines).

    Returns:
        The encoder `torch.nn.Module` in eval mode with `.card` (the card dict). It maps a float32
        batch `(B, in_chans, *input_size)`, normalised as `card["normalization"]` says, to
        `(B, embed_dim)` features. Its input is checked (`check_input`, in `forward` and in
        `forward_tokens`): a wrong number of dims or channels raises a ValueError saying what was
        expected; a floating input of another dtype (float64 from numpy) is cast to the weights' dtype.

    Raises:
        CardError: no card, an invalid one, a card whose in_chans, embed_dim, spatial_dims,
            input_size or patch_size differ from the encoder it builds, no weights file, or
            weights whose sha256 is not the card's (a swapped or re-saved file).
        WeightsMismatchError: the weights file is unreadable or does not fit the card.
    """
    encoder_dir = Path(encoder_dir)
    card = read_card(encoder_dir)
    encoder = build_from_card(card, where=str(encoder_dir / CARD_FILE))
    if not random_init:
        weights = encoder_dir / card["weights"].get("file", WEIGHTS_FILE)
        if not weights.is_file():
            raise CardError(f"{weights}: missing; the encoder directory needs the weights next to encoder.json")
        # Keys first (a file of another architecture is named by its keys), then the hash (a file of
        # the same architecture that is not the exported one).
        load_weights(encoder, weights, key_format=card["weights"].get("key_format", "domainssl"), strict=strict)
        verify_weights(card, weights, strict=strict, where=str(encoder_dir / CARD_FILE))
    encoder.card = card
    watch_input(encoder)
    return encoder.to(device).eval()
