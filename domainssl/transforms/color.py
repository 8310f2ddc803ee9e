"""RGB-only colour operations (hue, saturation, grayscale), refused on anything but RGB.

Hue, saturation and luma are defined for red/green/blue only; applying them to 13 Sentinel-2
bands or 4 stains would mix unrelated channels. So every entry point takes the channel names
and raises `RGBRequiredError` unless they are R, G, B (or red, green, blue) in that order.

Written by hand rather than with torchvision/albumentations: those take one hue/saturation
factor per call, while the batch path needs one per sample. Hue, saturation and grayscale are
all linear in YIQ space (hue = rotation of the I/Q chroma plane, saturation = scaling it,
grayscale = dropping it), so one 3x3 matrix per view does all three in a single pass. YIQ hue
rotation approximates HSV hue shift (as in several GPU augmentation libraries).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_RGB_NAMES = (("r", "g", "b"), ("red", "green", "blue"))

# NTSC RGB -> YIQ.
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


class RGBRequiredError(ValueError):
    """An RGB-only operation was asked for on channels that are not R, G, B."""


def is_rgb(channel_names: Sequence[str]) -> bool:
    """True when the channel names are R, G, B (or red, green, blue) in that order."""
    names = tuple(str(c).strip().lower() for c in channel_names)
    return names in _RGB_NAMES


def require_rgb(channel_names: Sequence[str], operation: str) -> None:
    """Raise RGBRequiredError with a message the user can act on unless the channels are RGB."""
    if not is_rgb(channel_names):
        shown = list(channel_names)
        if len(shown) > 6:
            shown = shown[:6] + ["..."]
        raise RGBRequiredError(
            f"{operation} is an RGB-only operation, but the image has {len(channel_names)} "
            f"channel(s) {shown}, not R, G, B. Switch it off (hue: 0, saturation: 0, "
            f"grayscale_p: 0) or use a preset made for these channels (multispectral, "
            f"fluorescence, ct, mr); if the channels really are red, green, blue, name them "
            f"['R', 'G', 'B']."
        )


def colour_matrices(hue: np.ndarray, saturation: np.ndarray, grayscale: np.ndarray) -> np.ndarray:
    """(n, 3, 3) RGB->RGB matrices: hue shift (fraction of a turn), saturation factor, grayscale.

    Apply as out[c] = sum_j M[c, j] * rgb[j]. Identity for hue 0, saturation 1, grayscale False.
    """
    hue, saturation = np.asarray(hue, float), np.asarray(saturation, float)
    n = hue.shape[0]
    theta = 2 * np.pi * hue
    chroma = np.zeros((n, 3, 3))
    chroma[:, 0, 0] = 1.0
    keep = np.where(np.asarray(grayscale, bool), 0.0, saturation)
    chroma[:, 1, 1] = chroma[:, 2, 2] = np.cos(theta) * keep
    chroma[:, 1, 2] = -np.sin(theta) * keep
    chroma[:, 2, 1] = np.sin(theta) * keep
    return _YIQ2RGB @ chroma @ _RGB2YIQ


def apply_colour_matrix(x, matrices):
    """Apply per-sample 3x3 colour matrices to (B, 3, *S) torch `x`; matrices (B, 3, 3)."""
    import torch

    m = torch.as_tensor(matrices, dtype=x.dtype, device=x.device)
    return torch.einsum("bij,bj...->bi...", m, x)


def adjust_hue(x, factor: float, channel_names: Sequence[str]):
    """Shift the hue of an RGB image (3, *S) by `factor` of a turn."""
    require_rgb(channel_names, "hue")
    return _single(x, colour_matrices(np.array([factor]), np.ones(1), np.zeros(1, bool)))


def adjust_saturation(x, factor: float, channel_names: Sequence[str]):
    """Scale the saturation of an RGB image (3, *S) by `factor`."""
    require_rgb(channel_names, "saturation")
    return _single(x, colour_matrices(np.zeros(1), np.array([factor]), np.zeros(1, bool)))


def to_grayscale(x, channel_names: Sequence[str]):
    """Luma of an RGB image repeated over its 3 channels; x is (3, *S)."""
    require_rgb(channel_names, "grayscale")
    return _single(x, colour_matrices(np.zeros(1), np.ones(1), np.ones(1, bool)))


def _single(x, matrix: np.ndarray):
    import torch

    t = torch.as_tensor(x)
    if t.shape[0] != 3:
        raise ValueError(f"expected a channel-first RGB image (3, *S), got shape {tuple(t.shape)}")
    return apply_colour_matrix(t[None], matrix)[0]
