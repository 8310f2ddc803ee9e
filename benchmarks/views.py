"""Views per second: domainssl view generation against naive per-sample pipelines, same run.

Cases (13-band 2D from 256^2 patches; 3D from 160^3 patches):
  a  13-band 224^2 two-view (SimCLR/BYOL)       ours: build_views("multispectral", "two_view", 2)
  b  DINO multi-crop 2 x 224^2 + 10 x 96^2       ours: build_views("multispectral", "multi_crop", 2)
  c  3D 96^3 two-view from a 160^3 CT volume     ours: build_views("ct", "two_view", 3)
Baselines apply the same operations with the same probabilities one view at a time, the way a
user would write them: torchvision v2 Compose for 2D (v2 works on N-channel tensors; the per-band
jitter, band dropout and noise are v2.Lambda steps in plain torch), a MONAI Compose for 3D
(RandSpatialCrop + Resize, window, flips, rot90, RandAffine, intensity, smooth, noise; with
MONAI's metadata tracking switched off, its fastest setting). CPU figures are per core (torch
and OpenCV held to one thread). With CUDA the GPU batch path (`build_batch_views`) is timed
on device-resident batches; that part needs only torch and numpy.

    PYTHONPATH=. python benchmarks/views.py [--quick] [--device auto|cpu|cuda] [--cases abc]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

BANDS = [f"B{i:02d}" for i in range(1, 13)] + ["B8A"]
PATCH_2D = 256
PATCH_3D = 160


def _set_one_thread() -> None:
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


# --------------------------------------------------------------------------- inputs
def patch_2d(seed: int) -> np.ndarray:
    """A 13 x 256 x 256 float32 patch of reflectance x 10000."""
    return np.random.default_rng(seed).uniform(100, 5000, (13, PATCH_2D, PATCH_2D)).astype(np.float32)


def patch_3d(seed: int) -> np.ndarray:
    """A 1 x 160^3 float32 CT patch in HU."""
    return np.random.default_rng(seed).normal(40, 300, (1, PATCH_3D, PATCH_3D, PATCH_3D)).astype(np.float32)


# --------------------------------------------------------------------------- ours
def ours(case: str, seed: int = 0):
    from domainssl.transforms import build_views

    if case == "a":
        return build_views("multispectral", "two_view", 2, BANDS, seed=seed)
    if case == "b":
        return build_views("multispectral", "multi_crop", 2, BANDS, seed=seed)
    return build_views("ct", "two_view", 3, ["CT"], seed=seed)


def ours_batch(case: str, seed: int = 0):
    from domainssl.transforms import build_batch_views

    if case == "a":
        return build_batch_views("multispectral", "two_view", 2, BANDS, seed=seed)
    if case == "b":
        return build_batch_views("multispectral", "multi_crop", 2, BANDS, seed=seed)
    return build_batch_views("ct", "two_view", 3, ["CT"], seed=seed)


# --------------------------------------------------------------------------- torchvision v2 (2D)
def _rot90(x):
    return torch.rot90(x, int(torch.randint(1, 4, ())), dims=(-2, -1))


def _band_jitter(x):
    """Per-band contrast (about the mean), brightness and gamma, as the multispectral preset."""
    c = x.shape[0]
    gain = torch.empty(c, 1, 1).uniform_(0.8, 1.2)
    shift = torch.empty(c, 1, 1).uniform_(-0.1, 0.1)
    gamma = torch.empty(c, 1, 1).uniform_(math.log(0.8), math.log(1.25)).exp()
    mean = x.mean((-2, -1), keepdim=True)
    x = (x - mean) * gain + mean + shift
    lo, hi = x.amin((-2, -1), keepdim=True), x.amax((-2, -1), keepdim=True)
    span = (hi - lo).clamp_min(1e-12)
    return ((x - lo) / span).clamp(0, 1).pow(gamma) * span + lo


def _band_dropout(x):
    drop = torch.rand(x.shape[0]) < 0.2
    if drop.all():
        drop[torch.randint(0, x.shape[0], ())] = False
    return x * (~drop).to(x.dtype)[:, None, None]


def _noise(x):
    return x + torch.randn_like(x) * float(torch.empty(()).uniform_(0.0, 0.03))


def tv_view(size: int, scale, blur_p: float, noise_p: float):
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=False),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        v2.RandomApply([v2.Lambda(_rot90)], p=0.75),
        v2.Normalize(mean=[0.0] * 13, std=[1e4] * 13),
        v2.RandomApply([v2.Lambda(_band_jitter)], p=0.8),
        v2.RandomApply([v2.Lambda(_band_dropout)], p=0.2),
        v2.RandomApply([v2.GaussianBlur(kernel_size=2 * math.ceil(3 * 1.5) + 1, sigma=(0.1, 1.5))], p=blur_p),
        v2.RandomApply([v2.Lambda(_noise)], p=noise_p),
    ])


def baseline(case: str):
    """A per-sample callable returning the list of views, like a user's naive pipeline."""
    if case in ("a", "b"):
        g1 = tv_view(224, (0.3, 1.0), blur_p=0.5, noise_p=0.2)
        g2 = tv_view(224, (0.3, 1.0), blur_p=0.1, noise_p=0.4)
        loc = tv_view(96, (0.05, 0.3), blur_p=0.2, noise_p=0.2)
        n_local = 10 if case == "b" else 0

        def run(image):
            x = torch.from_numpy(image)
            return [g1(x), g2(x)] + [loc(x) for _ in range(n_local)]

        return run
    from monai.data import set_track_meta
    from monai.transforms import (Compose, RandAdjustContrast, RandAffine, RandFlip, RandGaussianNoise,
                                  RandGaussianSmooth, RandRotate90, RandScaleIntensity, RandShiftIntensity,
                                  RandSpatialCrop, Resize, ScaleIntensityRange)

    set_track_meta(False)

    def monai_view(blur_p, noise_p):
        side = int(round(PATCH_3D * 0.35 ** (1 / 3)))
        return Compose([
            RandSpatialCrop(roi_size=side, max_roi_size=PATCH_3D, random_size=True),
            Resize((96, 96, 96), mode="trilinear"),
            ScaleIntensityRange(a_min=-160, a_max=240, b_min=0.0, b_max=1.0, clip=True),
            RandFlip(prob=0.5, spatial_axis=0), RandFlip(prob=0.5, spatial_axis=1),
            RandFlip(prob=0.5, spatial_axis=2),
            RandRotate90(prob=0.75, max_k=3, spatial_axes=(1, 2)),
            RandAffine(prob=0.2, rotate_range=(math.radians(10),) * 3, padding_mode="border"),
            RandScaleIntensity(factors=0.2, prob=0.8), RandShiftIntensity(offsets=0.1, prob=0.8),
            RandAdjustContrast(prob=0.8, gamma=(0.8, 1.25)),
            RandGaussianSmooth(sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 1.0), prob=blur_p),
            RandGaussianNoise(prob=noise_p, std=0.05),
        ])

    v1, v2_ = monai_view(0.5, 0.2), monai_view(0.1, 0.4)
    v1.set_random_state(0)
    v2_.set_random_state(1)

    def run(image):
        x = torch.from_numpy(image)
        return [v1(x), v2_(x)]

    return run


# --------------------------------------------------------------------------- timing
def _time_cpu(fn, images, n: int) -> float:
    """Seconds per sample over n samples (after 2 warm-up samples)."""
    for i in range(2):
        fn(images[i % len(images)])
    t0 = time.perf_counter()
    for i in range(n):
        fn(images[i % len(images)])
    return (time.perf_counter() - t0) / n


VIEWS_PER_SAMPLE = {"a": 2, "b": 12, "c": 2}
LABELS = {"a": "13-band 224^2 two-view", "b": "DINO 2x224^2 + 10x96^2, 13 bands", "c": "3D 96^3 two-view from 160^3"}


def bench_cpu(case: str, n: int) -> dict:
    images = [patch_2d(i) for i in range(4)] if case in ("a", "b") else [patch_3d(i) for i in range(2)]
    gen = ours(case)
    ours_fn = lambda img: gen({"image": img, "spacing": (10.0, 10.0) if img.ndim == 3 else (1.0, 1.0, 1.0)})
    name = "torchvision v2 Compose" if case != "c" else "MONAI Compose (track_meta off)"
    try:
        base_fn = baseline(case)
    except ImportError as err:  # the GPU machine may have only torch and numpy
        base_fn, name = None, f"skipped ({err})"
    # Interleave the two to share any drift in machine load equally.
    t_ours, t_base = [], []
    chunks = 2
    for _ in range(chunks):
        t_ours.append(_time_cpu(ours_fn, images, max(1, n // chunks)))
        if base_fn is not None:
            t_base.append(_time_cpu(base_fn, images, max(1, n // chunks)))
    vps = VIEWS_PER_SAMPLE[case]
    ours_vps = vps / float(np.mean(t_ours))
    base_vps = vps / float(np.mean(t_base)) if t_base else float("nan")
    return {"case": case, "what": LABELS[case], "ours_views_per_s_per_core": ours_vps,
            "baseline_views_per_s_per_core": base_vps, "ratio": ours_vps / base_vps,
            "baseline": name, "samples_timed": chunks * max(1, n // chunks)}


GPU_BATCH = {"a": 256, "b": 64, "c": 32}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_gpu(case: str, iters: int, device: str, bsz: int | None = None) -> dict:
    """Views/s of the batch path on device-resident batches (the CPU works too, for smoke runs)."""
    aug = ours_batch(case).to(device)
    bsz = bsz or GPU_BATCH[case]
    if case in ("a", "b"):
        x = torch.rand(bsz, 13, PATCH_2D, PATCH_2D, device=device) * 5000
    else:
        x = torch.randn(bsz, 1, PATCH_3D, PATCH_3D, PATCH_3D, device=device) * 300 + 40
    batch = {"image": x}
    for _ in range(3):
        aug(batch)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        out = aug(batch)
    _sync(device)
    dt = (time.perf_counter() - t0) / iters
    n_views = len(out["views"])
    return {"case": case, "what": LABELS[case], "batch": bsz, "gpu_views_per_s": bsz * n_views / dt,
            "gpu_samples_per_s": bsz / dt, "ms_per_batch": dt * 1e3}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few samples per case (a smoke run)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="cuda also times the GPU batch path; auto uses it when available")
    ap.add_argument("--cases", default="abc", help="subset of a, b, c")
    ap.add_argument("--samples", type=int, default=None, help="CPU samples per pipeline and case")
    ap.add_argument("--gpu-iters", type=int, default=None, help="GPU batches per case")
    ap.add_argument("--gpu-only", action="store_true", help="skip the CPU comparison")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but torch sees no CUDA device", file=sys.stderr)
        return 2
    _set_one_thread()
    n_cpu = {"a": 8, "b": 4, "c": 4} if args.quick else {"a": 60, "b": 20, "c": 16}
    gpu_iters = args.gpu_iters or (5 if args.quick else 30)
    results = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "torch": torch.__version__, "cpu": [], "gpu": []}
    if use_cuda:
        results["gpu_name"] = torch.cuda.get_device_name()
    if not args.gpu_only:
        print(f"{'case':<40} {'ours v/s/core':>14} {'baseline v/s/core':>18} {'ratio':>6}  baseline")
        for case in args.cases:
            r = bench_cpu(case, args.samples or n_cpu[case])
            results["cpu"].append(r)
            print(f"{r['what']:<40} {r['ours_views_per_s_per_core']:>14.1f} "
                  f"{r['baseline_views_per_s_per_core']:>18.1f} {r['ratio']:>6.2f}  {r['baseline']}", flush=True)
    if use_cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        print(f"\nGPU batch path on {results['gpu_name']}")
        print(f"{'case':<40} {'batch':>6} {'views/s':>10} {'ms/batch':>9}")
        for case in args.cases:
            r = bench_gpu(case, gpu_iters, "cuda")
            results["gpu"].append(r)
            print(f"{r['what']:<40} {r['batch']:>6} {r['gpu_views_per_s']:>10.0f} {r['ms_per_batch']:>9.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
