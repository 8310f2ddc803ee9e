"""Intensity augmentations on batches (B, C, *S) with per-sample parameters, any device.

One implementation serves the CPU generator (B = 1) and the GPU batch module (B = batch), so the
two paths compute the same function of the same parameters. Written in torch rather than with
albumentations/MONAI because those draw their own random numbers one sample at a time and cannot
apply per-sample parameters to a batch on the GPU; the operations themselves are a few lines each.
Operations whose flags are all off are skipped, which makes the B = 1 CPU path cheap.
"""

from __future__ import annotations

import math

import numpy as np

from .params import ViewParams, bias_exponents

# Bias fields are smooth (degree-3 polynomials): evaluating them on a coarse grid and upsampling
# costs a fraction of a full-grid evaluation (MONAI's RandBiasField evaluates every voxel in
# float64) and differs from it by far less than the field's own randomness.
_BIAS_GRID = 16


def _t(a, x):
    import torch

    return torch.as_tensor(np.ascontiguousarray(a), dtype=x.dtype, device=x.device)


def _bcast(v, x):
    """(B, C) or (B,) parameter tensor reshaped to broadcast over x (B, C, *S)."""
    return v.reshape(tuple(v.shape) + (1,) * (x.ndim - v.ndim))


def gaussian_kernels(sigma: np.ndarray, radius: int) -> np.ndarray:
    """(B, 2*radius+1) normalised Gaussian kernels cut at 3 sigma; sigma 0 gives a delta."""
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    sig = np.asarray(sigma, np.float64)[:, None]
    k = np.exp(-0.5 * (grid / np.where(sig > 0, sig, 1.0)) ** 2)
    # Each sample's kernel stops at its own 3-sigma radius, so a batch padded to the largest
    # radius computes exactly what the same sample alone would.
    own = np.ceil(3.0 * sig).clip(1, radius)
    k = np.where(np.abs(grid) <= own, k, 0.0)
    k = np.where(sig > 0, k, (grid == 0).astype(np.float64))
    return k / k.sum(1, keepdims=True)


def blur_radius(sigma_max: float) -> int:
    """Kernel radius covering 3 sigma (at least 1)."""
    return max(1, int(math.ceil(3.0 * float(sigma_max))))


def gaussian_blur(x, sigma: np.ndarray):
    """Separable Gaussian blur of x (B, C, *S) with one sigma (pixels) per sample.

    Borders reflect (as OpenCV's default BORDER_REFLECT_101). Returns a new tensor.
    """
    import torch.nn.functional as F

    bsz, c = x.shape[:2]
    spatial = tuple(x.shape[2:])
    d = len(spatial)
    radius = min(blur_radius(float(np.max(sigma))), min(spatial) - 1)
    if radius < 1:
        return x
    k = _t(gaussian_kernels(sigma, radius), x)  # (B, K)
    weight = k.repeat_interleave(c, 0)  # (B*C, K): one kernel per (sample, channel) group
    y = x.reshape((1, bsz * c) + spatial)
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    for axis in range(d):
        shape = [bsz * c, 1] + [1] * d
        shape[2 + axis] = 2 * radius + 1
        pad = [0] * (2 * d)
        pad[2 * (d - 1 - axis)] = pad[2 * (d - 1 - axis) + 1] = radius  # F.pad lists last axis first
        y = conv(F.pad(y, pad, mode="reflect"), weight.reshape(shape), groups=bsz * c)
    return y.reshape(x.shape)


def bias_field(coeff: np.ndarray, spatial: tuple[int, ...], like):
    """Multiplicative bias fields exp(sum_k c_k * prod_i u_i^e_ik), u in [-1, 1]: (B, 1, *S)."""
    import torch
    import torch.nn.functional as F

    d = len(spatial)
    exps = bias_exponents(d)
    u = np.linspace(-1.0, 1.0, _BIAS_GRID)
    grids = np.meshgrid(*([u] * d), indexing="ij")
    basis = np.stack([np.prod([g ** e for g, e in zip(grids, ex)], 0) for ex in exps], 0)  # (T, G..)
    log_field = np.tensordot(coeff, basis, axes=(1, 0))  # (B, G, ..., G)
    coarse = torch.as_tensor(np.exp(log_field)[:, None], dtype=like.dtype, device=like.device)
    mode = "bilinear" if d == 2 else "trilinear"
    return F.interpolate(coarse, size=spatial, mode=mode, align_corners=True)


def apply_intensity(x, p: ViewParams, generator=None, blur_backend: str = "torch"):
    """Apply the intensity part of views `p` to x (B, C, *S) float; returns the result.

    Order: bias field, contrast/brightness, gamma, RGB colour matrix, blur, solarize, noise,
    channel dropout (last, so dropped channels are exactly 0). x may be modified in place.
    generator: torch.Generator on x's device for the noise (reproducible runs).
    blur_backend: "torch" (any device, batched) or "cv2": blur, gamma and noise with OpenCV when x is
      one contiguous float32 CPU sample (much faster there, same numbers; see cv2_kernels).
    """
    import torch

    from . import cv2_kernels

    spatial_dims = tuple(range(2, x.ndim))
    cv2_ok = (blur_backend == "cv2" and x.shape[0] == 1 and x.device.type == "cpu"
              and x.dtype == torch.float32 and x.is_contiguous() and cv2_kernels.available())
    if p.bias_coeff is not None and np.any(p.bias_coeff):
        x = x.mul_(bias_field(p.bias_coeff, tuple(x.shape[2:]), x))

    if p.jitter.any():
        if np.any(p.gain != 1.0):
            gain = _t(p.gain, x)
            mean = x.mean(dim=spatial_dims)
            offset = mean * (1.0 - gain) + _t(p.shift, x)
            x = x.mul_(_bcast(gain, x)).add_(_bcast(offset, x))
        elif np.any(p.shift):
            x = x.add_(_bcast(_t(p.shift, x), x))
        if np.any(p.gamma != 1.0):
            # Gamma on each channel's own min..max range (as MONAI's RandAdjustContrast), so it
            # is defined for z-scored data too and keeps the range.
            lo = _bcast(x.amin(dim=spatial_dims), x)
            span = _bcast(x.amax(dim=spatial_dims), x) - lo
            span = torch.where(span > 0, span, torch.ones_like(span))
            # The floor of 1e-12 instead of 0 keeps pow/log off their special-case path for zeros
            # (5-10x slower on CPU, and windowed CT is often half zeros); it moves a zero by
            # < 1e-8 of the channel range.
            y = x.sub_(lo).div_(span).clamp_(1e-12, 1.0)
            if cv2_ok:
                from .cv2_kernels import power_

                power_(y[0].numpy(), p.gamma[0])
            else:  # x^g as exp(g log x): ~1.5x faster than pow with a broadcast exponent
                y = y.log_().mul_(_bcast(_t(p.gamma, x), x)).exp_()
            x = y.mul_(span).add_(lo)
        if p.colour is not None:
            from .color import apply_colour_matrix

            x = apply_colour_matrix(x, p.colour)

    if np.any(p.blur_sigma > 0):
        radius = min(blur_radius(float(p.blur_sigma[0])), min(x.shape[2:]) - 1)
        if cv2_ok and x.is_contiguous():
            from .cv2_kernels import gaussian_blur_

            if radius >= 1:
                gaussian_blur_(x[0].numpy(), float(p.blur_sigma[0]), radius)
        else:
            x = gaussian_blur(x, p.blur_sigma)

    if np.isfinite(p.solarize).any():
        x = torch.where(x >= _bcast(_t(p.solarize, x), x), 1.0 - x, x)

    if np.any(p.noise_std > 0) and cv2_ok and x.is_contiguous():
        from .cv2_kernels import add_gaussian_noise_

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        add_gaussian_noise_(x[0].numpy(), float(p.noise_std[0]), seed)
    elif np.any(p.noise_std > 0):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x.add_(noise.mul_(_bcast(_t(p.noise_std, x), x)))

    if p.drop.any():
        x = x.mul_(_bcast(_t(~p.drop, x), x))
    return x

