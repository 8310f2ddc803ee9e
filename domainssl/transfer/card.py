"""The encoder card: everything needed to use an exported encoder, as plain JSON.

An encoder directory holds `model.safetensors` (weights), `encoder.json` (this card) and a
human-readable `README.md` rendered from the card. This module reads, writes and checks cards;
it needs no torch so that `domainssl` stays light on import.

Card keys (schema version `CARD_VERSION`):
    arch, build           architecture name and the keyword arguments that rebuild it
                          (`domainssl.models.build_encoder(**card["build"])`)
    spatial_dims          2 or 3
    in_chans              number of encoder input channels: len(channel_names), times the number
                          of CT windows in normalization mode "window", times the slab depth of a
                          2.5D encoder (2D views of 3D data with views.slice_channels > 1, read
                          from build.channel_names); `channel_count_problem` checks it
    channel_names         the data channels the encoder expects, in order (before normalisation;
                          CT windows turn one data channel into several encoder channels;
                          `encoder_input_names(card)` names each encoder channel)
    input_size            one int per spatial axis (pixels / voxels) seen in pretraining
    patch_size            ViT patch size per spatial axis, or null for CNNs
    spacing, units        physical size of one input pixel per spatial axis, and its units
                          (length units m, cm, mm, µm, nm, ... are converted when comparing;
                          "px" means no physical scale)
    normalization         the pretraining views' normalisation: the fields of
                          `domainssl.transforms.NormaliseConfig` (mode none | rule | zscore |
                          stats_range | percentile | window, scale, offset, low, high, windows,
                          clip) plus `stats` (archive statistics: channel_names, mean, std, p01, p99)
    embed_dim             length of the feature vector `encoder(x)` returns
    method                SSL method name and its key hyper-parameters
    data                  pretraining data summary (images, patches, formats, modality)
    metrics               final loss and collapse-monitor values
    weights               file name, key format ("domainssl" or "timm"), sha256
    timm                  for 2D timm encoders: model name and create_model kwargs
    version               card schema version; domainssl_version the package version
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..jsonable import jsonable
from ..units import length_in_metres
from ..units import normalize_unit as short_unit

CARD_VERSION = 1
CARD_FILE = "encoder.json"
WEIGHTS_FILE = "model.safetensors"
README_FILE = "README.md"

REQUIRED_KEYS = ("arch", "build", "spatial_dims", "in_chans", "channel_names", "input_size",
                 "patch_size", "spacing", "units", "normalization", "embed_dim", "method", "data",
                 "version", "metrics", "weights")

# The normalisation modes of domainssl.transforms (kept in step with transforms.config).
NORMALIZATION_MODES = ("none", "rule", "zscore", "stats_range", "percentile", "window")
_STATS_NEEDED = {"zscore": ("mean", "std"), "stats_range": ("p01", "p99")}

# Channel names that carry no meaning (a reader's fallback names): two such lists of the same
# length are taken to match position by position.
_GENERIC_NAME = re.compile(r"^(c|ch|channel|chan)?[\s_-]?\d+$|^(gray|grey|l|intensity|mono)$",
                           re.IGNORECASE)


class CardError(ValueError):
    """An encoder directory whose card is missing, malformed or of another version."""


class CardMismatchError(ValueError):
    """Data that does not fit the encoder card (channels, spatial dims, spacing, value range)."""


class CardMismatchWarning(UserWarning):
    """Data that can be used with the encoder but cannot be fully checked against its card
    (e.g. a physical scale that cannot be compared)."""


# -- reading and writing ------------------------------------------------------------------------
def read_card(encoder_dir) -> dict[str, Any]:
    """Read and validate `ENCODER_DIR/encoder.json`.

    Raises:
        CardError: the directory or card is missing, not JSON, lacks keys or has another version.
    """
    encoder_dir = Path(encoder_dir)
    path = encoder_dir / CARD_FILE
    if not encoder_dir.is_dir():
        raise CardError(f"{encoder_dir}: not an encoder directory (expected a folder holding "
                        f"{CARD_FILE} and {WEIGHTS_FILE}; create one with `domainssl export RUN --out DIR`)")
    if not path.is_file():
        raise CardError(f"{path}: missing; an encoder directory holds {CARD_FILE} and {WEIGHTS_FILE} "
                        "(create one with `domainssl export RUN --out DIR`)")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CardError(f"{path}: not valid JSON ({exc})") from exc
    validate_card(card, where=str(path))
    return card


def validate_card(card: dict[str, Any], where: str = "card") -> None:
    """Check the keys and their basic consistency; raise `CardError` naming what is wrong."""
    if not isinstance(card, dict):
        raise CardError(f"{where}: expected a JSON object, found {type(card).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CardError(f"{where}: missing keys {missing}")
    if card["version"] != CARD_VERSION:
        raise CardError(f"{where}: card version {card['version']!r}, this domainssl reads version "
                        f"{CARD_VERSION}; export the encoder again with this version")
    dims = card["spatial_dims"]
    if dims not in (2, 3):
        raise CardError(f"{where}: spatial_dims must be 2 or 3, found {dims!r}")
    for key in ("input_size", "spacing", "units"):
        if card[key] is not None and len(card[key]) != dims:
            raise CardError(f"{where}: {key} needs one value per spatial axis ({dims}), found {card[key]!r}")
    norm = card["normalization"]
    if not isinstance(norm, dict) or norm.get("mode") not in NORMALIZATION_MODES:
        raise CardError(f"{where}: normalization.mode must be one of {NORMALIZATION_MODES}, found "
                        f"{norm.get('mode') if isinstance(norm, dict) else norm!r}")
    problem = channel_count_problem(card["in_chans"], card["channel_names"], norm, slab_depth(card))
    if problem:
        raise CardError(f"{where}: {problem}")
    stats = norm.get("stats") or {}
    for key in _STATS_NEEDED.get(norm["mode"], ()):
        if len(stats.get(key) or ()) != len(stats.get("channel_names") or ()) or \
                not set(card["channel_names"]) <= set(stats.get("channel_names") or ()):
            raise CardError(f"{where}: normalization mode {norm['mode']} needs stats.{key} for every "
                            f"channel {card['channel_names']}")


def window_count(normalization: dict[str, Any] | None) -> int:
    """Encoder channels per data channel: the number of CT windows in mode "window" (one window,
    `NormaliseConfig`'s default, when the card lists none), else 1."""
    norm = normalization or {}
    if norm.get("mode") != "window":
        return 1
    return len(norm.get("windows") or ()) or 1


def _view_channel_names(names: Sequence[str], normalization: dict[str, Any] | None) -> list[str]:
    """The views' channel names for these (data or slab) channels, as
    `domainssl.transforms.plan.ViewPlan.output_channel_names` makes them."""
    norm = normalization or {}
    if norm.get("mode") != "window":
        return [str(n) for n in names]
    from ..transforms.config import window_channel_names

    return window_channel_names([str(n) for n in names], norm.get("windows") or [(40.0, 400.0)])


def slab_depth(card: dict[str, Any]) -> int:
    """Adjacent slices stacked as channels by a 2.5D encoder (2D views cut from 3D data with
    views.slice_channels > 1), read from the encoder's own input names (`build.channel_names`,
    e.g. "CT@z-1", "CT@z+0", "CT@z+1"); 1 for every other encoder."""
    build_names = (card.get("build") or {}).get("channel_names")
    names = [str(n) for n in card.get("channel_names") or ()]
    per = window_count(card.get("normalization")) * len(names)
    in_chans = int(card.get("in_chans") or 0)
    if not build_names or len(build_names) != in_chans or not per or in_chans % per or in_chans == per:
        return 1
    from ..transforms.spatial import slab_channel_names

    depth = in_chans // per
    for axis in range(3):
        if _view_channel_names(slab_channel_names(names, depth, axis), card.get("normalization")) == \
                [str(b) for b in build_names]:
            return depth
    return 1


def channel_count_problem(in_chans, channel_names, normalization: dict[str, Any] | None,
                          slabs: int = 1) -> str | None:
    """Why `in_chans` cannot be the encoder channels of these data channels, or None.

    The encoder takes one channel per data channel, or in mode "window" one per data channel and
    CT window (window minor, `encoder_input_names`), times `slabs` adjacent slices for a 2.5D
    encoder (`slab_depth`): in_chans == len(channel_names) * windows * slabs.
    """
    names = list(channel_names or ())
    per = window_count(normalization)
    want = len(names) * per * slabs
    if int(in_chans) == want:
        return None
    slab = f" x {slabs} stacked slices" if slabs > 1 else ""
    if per > 1 or (normalization or {}).get("mode") == "window":
        rule = (f"normalization mode window with {per} CT window(s) turns each data channel into {per} "
                f"encoder channels, so in_chans must be {len(names)} x {per}{slab} = {want}")
    else:
        rule = (f"normalization mode {(normalization or {}).get('mode', 'none')} gives one encoder channel "
                f"per data channel{slab}, so in_chans must be {want}")
    return (f"the encoder takes in_chans={int(in_chans)} input channels but channel_names has {len(names)} "
            f"{names} ({rule}); give one channel name per data channel the encoder was pretrained on "
            f"(or, for CT windows, the windows in normalization.windows), or export an encoder built with "
            f"in_chans={want}")


def stats_vector(card: dict[str, Any], key: str) -> list[float] | None:
    """normalization.stats[key] in the card's channel order, or None when absent."""
    stats = card["normalization"].get("stats") or {}
    names = [str(n) for n in stats.get("channel_names") or ()]
    values = stats.get(key)
    if not values or len(values) != len(names) or not set(card["channel_names"]) <= set(names):
        return None
    return [float(values[names.index(n)]) for n in card["channel_names"]]


def write_card(card: dict[str, Any], encoder_dir) -> Path:
    """Validate `card` and write `encoder.json` and `README.md` into `encoder_dir`; return the json path."""
    validate_card(card)
    encoder_dir = Path(encoder_dir)
    encoder_dir.mkdir(parents=True, exist_ok=True)
    path = encoder_dir / CARD_FILE
    path.write_text(json.dumps(jsonable(card), indent=2) + "\n")
    (encoder_dir / README_FILE).write_text(render_readme(card))
    return path


def timm_one_liner(card: dict[str, Any], weights_path: str = "ENCODER_DIR/model.safetensors") -> str | None:
    """The `timm.create_model(...)` call that loads this encoder's weights with timm alone.

    Only 2D timm encoders exported with timm-native keys have one; returns None otherwise.
    `num_classes=0` in the overlay makes timm load strictly (no classifier in the file).
    """
    info = card.get("timm")
    if not info or card["weights"].get("key_format") != "timm":
        return None
    kwargs = "".join(f", {k}={v!r}" for k, v in sorted(info.get("kwargs", {}).items()))
    size = tuple([card["in_chans"], *card["input_size"]])
    return (f"timm.create_model({info['model_name']!r}, pretrained=True, "
            f"pretrained_cfg_overlay=dict(file={weights_path!r}, num_classes=0, input_size={size}), "
            f"num_classes=0, in_chans={card['in_chans']}{kwargs})")


def _describe_normalization(norm: dict[str, Any]) -> str:
    mode = norm["mode"]
    if mode == "rule":
        return f"rule: x * {norm.get('scale', 1.0):g} + {norm.get('offset', 0.0):g}"
    if mode == "zscore":
        return "zscore: (x - mean) / std per channel, archive statistics below"
    if mode == "stats_range":
        return "stats_range: (x - p01) / (p99 - p01) per channel, archive statistics below"
    if mode == "percentile":
        return f"percentile: per image and channel, P{norm.get('low', 1)}..P{norm.get('high', 99)} -> 0..1"
    if mode == "window":
        return f"window: CT windows (level, width) {norm.get('windows')} -> [0, 1], one channel each"
    return "none: values as they are"


def render_readme(card: dict[str, Any]) -> str:
    """A human-readable summary of the card (the directory's README.md)."""
    norm = card["normalization"]
    lines = [
        f"# Encoder: {card['arch']} ({card['method'].get('name', '?')})",
        "",
        f"Exported by domainssl {card.get('domainssl_version', '?')} (card version {card['version']}).",
        "",
        "## Input",
        f"- spatial dims: {card['spatial_dims']}D, input size {card['input_size']} pixels"
        + (f", patch size {card['patch_size']}" if card.get("patch_size") else ""),
        f"- channels ({card['in_chans']}): {', '.join(encoder_input_names(card))}"
        + (f" (from the data channels {', '.join(card['channel_names'])})"
           if card["in_chans"] != len(card["channel_names"]) else ""),
        f"- spacing: {card['spacing']} {card['units']}",
        f"- normalization: {_describe_normalization(norm)}",
    ]
    mean, std = stats_vector(card, "mean"), stats_vector(card, "std")
    p01, p99 = stats_vector(card, "p01"), stats_vector(card, "p99")
    if mean and std:
        for i, name in enumerate(card["channel_names"]):
            extra = f", p01 {p01[i]:.6g}, p99 {p99[i]:.6g}" if p01 and p99 else ""
            lines.append(f"  - {name}: mean {mean[i]:.6g}, std {std[i]:.6g}{extra} (pretraining archive)")
    lines += ["", "## Output", f"- `encoder(x)` returns `(B, {card['embed_dim']})` features.", ""]
    lines += ["## Pretraining", f"- method: {json.dumps(jsonable(card['method']))}",
              f"- data: {json.dumps(jsonable(card['data']))}",
              f"- final metrics: {json.dumps(jsonable(card['metrics']))}", ""]
    lines += ["## Use", "```python", "import domainssl",
              "enc = domainssl.load_encoder('ENCODER_DIR')   # eval mode, enc.card is encoder.json",
              f"features = enc(x)   # x: float32 (B, {card['in_chans']}, "
              + ", ".join(str(s) for s in card["input_size"]) + "), normalised as above", "```"]
    one = timm_one_liner(card)
    if one:
        lines += ["", "With timm alone (same weights, timm's own key names):", "```python", "import timm",
                  f"model = {one}", "```"]
    lines += ["", "Weights load without unpickling (safetensors).", ""]
    return "\n".join(lines)


def encoder_input_names(card: dict[str, Any]) -> list[str]:
    """One name per encoder input channel (`in_chans` of them): the data channel names, or for
    CT windows (one data channel -> several encoder channels) "NAME[L<level>,W<width>]", window
    minor, the order `domainssl.transforms.ct_windows` stacks them in; a 2.5D encoder's slab
    channels ("NAME@z-1", ...) as its views named them."""
    if slab_depth(card) > 1:
        return [str(n) for n in card["build"]["channel_names"]]
    return _view_channel_names(card["channel_names"], card.get("normalization"))


# -- checking data against the card ------------------------------------------------------------
def parse_channel_map(text: str | Sequence | dict | None):
    """Parse a channel mapping given on the command line.

    Accepts `"2,1,0"` (data channel indices, in the encoder's channel order) or
    `"B04=red,B03=green"` (encoder channel name = data channel name), or an already parsed
    list/dict. Returns a list of ints, a dict of str -> str, or None.
    """
    if text is None or isinstance(text, (list, tuple, dict)):
        return list(text) if isinstance(text, tuple) else text
    text = str(text).strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if all("=" in p for p in parts):
        return dict(tuple(s.strip() for s in p.split("=", 1)) for p in parts)
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise CardMismatchError(f"channel map {text!r}: give data channel indices in the encoder's order "
                                "(e.g. '2,1,0') or ENCODER_NAME=DATA_NAME pairs (e.g. 'B04=red,B03=green')") from None


def _is_generic(names: Sequence[str]) -> bool:
    return all(_GENERIC_NAME.match(str(n)) for n in names)


def example_channel_map(enc_names: Sequence[str], data_names: Sequence[str]) -> list[int] | None:
    """A channel map that `resolve_channels` accepts, or None where only the user can say.

    Encoder channels found by name take that data channel. When the data has exactly as many
    other channels as the encoder has unmatched ones, those pair up in order: a positional guess
    (the messages label it so). Otherwise (fewer data channels, or more to choose from) there is
    no map to guess: pairing bands by position would be arbitrary, and feeding one data channel
    to several encoder channels is not what the encoder was pretrained on.
    """
    enc_names = [str(n) for n in enc_names]
    data_names = [str(n) for n in data_names]
    missing = [n for n in enc_names if n not in data_names]
    unused = [i for i, n in enumerate(data_names) if n not in enc_names]
    if len(missing) != len(unused):
        return None
    positional = iter(unused)
    return [data_names.index(n) if n in data_names else next(positional) for n in enc_names]


def _how_to_map(enc_names: Sequence[str], data_names: Sequence[str]) -> str:
    """How to write --channel-map for these channels: a positional example (labelled as a guess)
    where the unmatched channels pair up one to one, else a template to fill in."""
    if not data_names:
        return "The data has no channels to map."
    enc_names = [str(n) for n in enc_names]
    data_names = [str(n) for n in data_names]
    missing = [n for n in enc_names if n not in data_names]  # those by name need no pair
    choices = ", ".join(f"{n} ({i})" for i, n in enumerate(data_names))
    if not missing:  # every encoder channel is in the data by name: pick them, nothing to guess
        by_name = ",".join(str(data_names.index(e)) for e in enc_names)
        return (f"The data has every encoder channel by name; --channel-map {by_name} picks them in the "
                f"encoder's order (channel_map=[{by_name}] in Python).")
    idx = example_channel_map(enc_names, data_names)
    if idx is not None:
        as_idx = ",".join(map(str, idx))
        as_names = ",".join(f"{e}={data_names[i]}" for e, i in zip(enc_names, idx) if e in missing)
        return (f"Map them explicitly, one data channel per encoder channel (ENCODER=DATA names, or data "
                f"channel indices in the encoder's order). Only if the data's channels are the encoder's "
                f"under other names in the same order (a positional guess: check that each pair is the "
                f"same band or stain): --channel-map {as_names} (or --channel-map {as_idx}; "
                f"channel_map=[{as_idx}] in Python).")
    template = ",".join(f"{e}=<?>" for e in missing)
    fewer = ""
    if len(data_names) < len(enc_names):
        fewer = (f"No map makes up the encoder channels the data lacks: feeding one data channel to several "
                 f"encoder channels runs, but it is not what the encoder saw in pretraining (an encoder "
                 f"pretrained on these {len(data_names)} channels is the sound choice). ")
    return (f"{fewer}To map channels explicitly, fill in this template, replacing each <?> by the data "
            f"channel that measures what that encoder channel measured (data channels: {choices}): "
            f"--channel-map {template} (ENCODER=DATA names; encoder channels the data has by name "
            f"need no pair). In Python pass channel_map={{encoder name: data name}}.")


def resolve_channels(card: dict[str, Any], data_channel_names: Sequence[str],
                     channel_map=None) -> list[int]:
    """Indices into the data's channels that give the encoder's channels, in the encoder's order.

    Without a map, the data must have the card's channel names (any order; the result reorders
    them), or both sides must carry only generic names (c0, ch1, 2, gray) of equal count.
    Everything else is refused with a message that says how to map channels.

    Raises:
        CardMismatchError: the channels do not match and no (valid) map was given.
    """
    enc_names = [str(n) for n in card["channel_names"]]
    data_names = [str(n) for n in data_channel_names]
    how = _how_to_map(enc_names, data_names)
    channel_map = parse_channel_map(channel_map)
    if channel_map is not None:
        if isinstance(channel_map, dict):
            unknown_enc = [k for k in channel_map if k not in enc_names]
            unknown_data = [v for v in channel_map.values() if v not in data_names]
            if unknown_enc or unknown_data:
                raise CardMismatchError(f"channel map names not found: encoder {unknown_enc} (encoder has "
                                        f"{enc_names}), data {unknown_data} (data has {data_names})")
            lookup = dict(channel_map)
            for name in enc_names:  # names not in the map must match by name
                if name not in lookup and name in data_names:
                    lookup[name] = name
            missing = [n for n in enc_names if n not in lookup]
            if missing:
                raise CardMismatchError(f"channel map leaves encoder channels {missing} without data; "
                                        f"data has {data_names}. {how}")
            return [data_names.index(lookup[n]) for n in enc_names]
        idx = [int(i) for i in channel_map]
        if len(idx) != len(enc_names):
            raise CardMismatchError(f"channel map has {len(idx)} indices, the encoder takes {len(enc_names)} "
                                    f"channels {enc_names}. {how}")
        bad = [i for i in idx if not 0 <= i < len(data_names)]
        if bad:
            raise CardMismatchError(f"channel map indices {bad} out of range for {len(data_names)} data "
                                    f"channels {data_names}")
        return idx
    if data_names == enc_names:
        return list(range(len(enc_names)))
    if len(data_names) == len(enc_names) and sorted(data_names) == sorted(enc_names):
        return [data_names.index(n) for n in enc_names]  # same channels, other order: reorder by name
    if len(data_names) == len(enc_names) and _is_generic(data_names) and _is_generic(enc_names):
        return list(range(len(enc_names)))
    missing = [n for n in enc_names if n not in data_names]
    if not missing:
        extra = [n for n in data_names if n not in enc_names]
        suggestion = ",".join(str(data_names.index(n)) for n in enc_names)
        raise CardMismatchError(
            f"data has {len(data_names)} channels {data_names}, the encoder takes {len(enc_names)} "
            f"{enc_names}; the extra channels {extra} would have to be dropped. To use the encoder's "
            f"channels by name pass --channel-map {suggestion} (channel_map=[{suggestion}] in Python).")
    raise CardMismatchError(
        f"data has {len(data_names)} channels {data_names}, the encoder was pretrained on "
        f"{len(enc_names)} channels {enc_names}; encoder channels {missing} are not in the data. {how}")


def normalize_unit(unit) -> str:
    """Short form of a unit spelling (`domainssl.units.normalize_unit`), "px" for no unit."""
    return short_unit(unit) or "px"


def _no_scale(units) -> bool:
    return not units or all(normalize_unit(u) == "px" for u in units)


def has_physical_scale(units) -> bool:
    """True when every axis has a physical unit (no px, "pixel", blank or missing unit)."""
    return bool(units) and all(normalize_unit(u) != "px" for u in units)


def check_spatial(card: dict[str, Any], spatial_dims: int, spacing: Sequence[float] | None = None,
                  units: Sequence[str] | None = None, tolerance: float = 0.1) -> list[float] | None:
    """Check spatial dims and spacing against the card.

    Returns the zoom factor per spatial axis (data spacing / card spacing, both converted to
    metres for length units: 1000 nm data against a 0.5 µm card is a zoom of 2) that resamples
    the data to the encoder's spacing, or None when the spacings are already within `tolerance`
    (relative) or cannot be compared. A card without a physical scale (pixel units) has nothing
    to check. A physical card against data whose scale cannot be compared to it (pixel units, no
    spacing, degrees against metres) warns (`CardMismatchWarning`) and returns None.

    Raises:
        CardMismatchError: a 2D encoder given 3D data or the reverse.
    """
    if spatial_dims != card["spatial_dims"]:
        raise CardMismatchError(
            f"data is {spatial_dims}D, the encoder is {card['spatial_dims']}D "
            f"(input size {card['input_size']}); use a {spatial_dims}D encoder, or for 3D data and a 2D "
            "encoder give one z plane per row in a labels CSV with region columns (z0,z1 with "
            "z1 = z0 + 1: the rows are then 2D slices)")
    card_spacing, card_units = card.get("spacing"), card.get("units")
    if not card_spacing or _no_scale(card_units):
        return None  # the encoder was pretrained without a physical scale: nothing to compare
    card_text = " x ".join(f"{float(s):g} {normalize_unit(u)}" for s, u in zip(card_spacing, card_units))
    how = (f"Resample the data to the encoder's spacing ({card_text}) yourself, or give the data's "
           "physical spacing (e.g. an image format that stores it: OME-TIFF, NIfTI, DICOM, GeoTIFF) "
           "so that it can be checked and resampled")
    if not spacing or not units or len(spacing) != len(card_spacing) or len(units) != len(card_units):
        _warn_scale(f"the data has no physical spacing (spacing {_listed(spacing)}, units {_listed(units)}) "
                    f"while the encoder was pretrained at {card_text}; the physical scale cannot be "
                    f"checked. {how}")
        return None
    zoom, unmatched = [], []
    for axis, (s, u, c, cu) in enumerate(zip(spacing, units, card_spacing, card_units)):
        nu, ncu = normalize_unit(u), normalize_unit(cu)
        if nu == ncu and nu != "px":
            factor = 1.0
        else:
            m, cm = length_in_metres(nu), length_in_metres(ncu)
            if m is None or cm is None:
                unmatched.append(f"axis {axis}: data {float(s):g} {nu}, encoder {float(c):g} {ncu}")
                continue
            factor = m / cm
        zoom.append(float(f"{float(s) * factor / float(c):.12g}"))  # 1e-3 mm / 0.5 µm is 2, not 2.0000000000000004
    if unmatched:
        metres = [length_in_metres(u) for u in card_units]
        if any(normalize_unit(u) in ("deg", "degree", "degrees") for u in units) and None not in metres:
            x_m, y_m = (float(card_spacing[i]) * metres[i] for i in (-1, 0))
            how = ("Reproject the data to a projected coordinate system in metres at the encoder's "
                   f"spacing (e.g. `gdalwarp -t_srs EPSG:<UTM zone> -tr {x_m:g} {y_m:g}` for {card_text}), "
                   "or resample it yourself")
        _warn_scale("the data's spacing units cannot be compared with the encoder's ("
                    + "; ".join(unmatched) + "); the physical scale cannot be checked. " + how)
        return None
    if all(abs(z - 1.0) <= tolerance for z in zoom):
        return None
    return zoom


def _listed(value) -> str:
    return "none" if value is None else str(list(value))


def _warn_scale(text: str) -> None:
    warnings.warn(text, CardMismatchWarning, stacklevel=3)


def _one_signed(card: dict[str, Any]) -> list[bool]:
    """Per card channel: do the pretraining values sit on one side of zero (counts, DNs, reflectance)?

    From the archive's p01..p99 range (else min..max) when the card has it: one-signed unless both
    ends are beyond 10 % of the range on either side of zero. Without them, a mean at least one
    std away from zero counts as one-signed.
    """
    means, stds = stats_vector(card, "mean"), stats_vector(card, "std")
    for low_key, high_key in (("p01", "p99"), ("min", "max")):
        low, high = stats_vector(card, low_key), stats_vector(card, high_key)
        if low and high:
            return [not (lo < -0.1 * (hi - lo) and hi > 0.1 * (hi - lo)) for lo, hi in zip(low, high)]
    return [abs(m) >= s for m, s in zip(means, stds)]


def check_value_range(card: dict[str, Any], channel_means: Sequence[float], max_sigmas: float = 6.0) -> None:
    """Refuse data whose per-channel means sit far outside the pretraining statistics.

    A typical cause is another value scale (reflectance 0..1 vs 0..10000, raw counts vs HU); the
    encoder would then see inputs it never saw in pretraining. `channel_means` are in the card's
    channel order; the reference is the archive statistics in `normalization.stats`.

    A channel is refused when its mean is more than `max_sigmas` archive stds from the archive
    mean, or when the ratio data mean / archive mean is outside (0.1, 10), an order of magnitude
    either way (or of the other sign), and the mean is also off by more than one archive std
    (for channels whose pretraining values sit on one side of zero, `_one_signed`) or two
    (elsewhere). Channels whose pretraining values straddle zero (offsets,
    HU, standardised data) are thus checked for growth only: a mean near zero there does not tell
    a shrunk scale from data centred like the archive.

    Raises:
        CardMismatchError: with the channel, both means, and what to do.
    """
    if card["normalization"]["mode"] in ("percentile", "none"):
        return  # per-image scaling (or none): the encoder never depended on the absolute scale
    means, stds = stats_vector(card, "mean"), stats_vector(card, "std")
    if not means or not stds:
        return
    bad = []
    signs = _one_signed(card)
    for name, m, cm, cs, one_signed in zip(card["channel_names"], channel_means, means, stds, signs):
        m, cm, cs = float(m), float(cm), float(cs)
        far = cs > 0 and abs(m - cm) > max_sigmas * cs
        # Another unit scale (0..1 vs 0..10000) moves the mean by orders of magnitude while it may
        # stay within a few (wide) standard deviations, in either direction.
        ratio = m / cm if cm else None
        off_scale = ratio is not None and not 0.1 < ratio < 10.0
        # one-signed channels: the ratio decides once the mean is also a std off (sparse
        # fluorescence or MR with more background may sit at a tenth of the mean, well inside)
        rescaled = off_scale and ((one_signed and abs(m - cm) > cs)
                                  or (cs > 0 and abs(cm) > 0.1 * cs and abs(m - cm) > 2 * cs))
        if far or rescaled:
            times = f" ({ratio:.3g}x)" if ratio is not None else ""
            bad.append(f"{name}: data mean {m:.4g}{times}, pretraining mean {cm:.4g} ± {cs:.4g}")
    if bad:
        raise CardMismatchError(
            "the data's values look like a different scale than in pretraining (" + "; ".join(bad) +
            "). Rescale the data to the pretraining units, or standardise with the labeled data's own "
            "statistics (--normalization data / normalization='data').")
