"""Patch loading from an archive of DICOM series: a global shuffle vs the shuffle buffer.

With a global shuffle every patch usually comes from another series than the last one, and a
worker keeps only a few images open (PatchDataset max_open), so on an archive larger than that
nearly every patch pays for opening a series (every slice header read) before its read. The
shuffle buffer (`data.shuffle_buffer`) reads series in random order, each series' patches
together, through a buffer, so a series is opened about once per epoch per worker.

Generates N DICOM series (S slices of 128², the package's synthetic writer), scans them once,
then loads one epoch of 3D patches through PatchDataModule's DataLoader (the path training
uses) with each setting, alternating, and prints patches/s and the ratio. Not a test.

  python benchmarks/shuffle_buffer.py [--series 48] [--slices 48] [--workers 2] [--buffer 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_archive(root: Path, n_series: int, slices: int) -> None:
    from domainssl.data.synthetic import write_dicom_series

    rng = np.random.default_rng(0)
    for i in range(n_series):
        volume = rng.normal(40, 200, (slices, 128, 128)).astype(np.float32)
        write_dicom_series(root / f"series_{i:03d}", volume, seed=i)


def epoch_rate(manifest: Path, work: Path, buffer: int, workers: int, patches_per_image: int) -> float:
    """Patches per second over one epoch (data loading only)."""
    from domainssl.data.datamodule import PatchDataModule

    dm = PatchDataModule(manifest=str(manifest), patch_size=[16, 32, 32], batch_size=8, num_workers=workers,
                         patches_per_image=patches_per_image, shuffle_buffer=buffer, stats_patches=16,
                         work_dir=str(work), seed=0)
    dm.setup()
    loader = dm.train_dataloader()
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=48)
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--buffer", type=int, default=64)
    ap.add_argument("--patches-per-image", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from domainssl.io.scan import scan_archive

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_archive(tmp / "archive", args.series, args.slices)
        scan_archive(tmp / "archive", tmp / "manifest.jsonl", jobs=0)
        rates: dict[int, list[float]] = {0: [], args.buffer: []}
        for r in range(args.rounds):
            for buffer in rates:
                rates[buffer].append(epoch_rate(tmp / "manifest.jsonl", tmp / f"w{buffer}_{r}", buffer,
                                                args.workers, args.patches_per_image))
    best = {b: max(v) for b, v in rates.items()}
    print(f"{args.series} DICOM series of {args.slices} slices, 16x32x32 patches, "
          f"{args.patches_per_image} per series, {args.workers} workers, best of {args.rounds} epochs:")
    print(f"  global shuffle          {best[0]:8.1f} patches/s")
    print(f"  shuffle buffer {args.buffer:<6d}   {best[args.buffer]:8.1f} patches/s  "
          f"({best[args.buffer] / best[0]:.1f}x)")


if __name__ == "__main__":
    main()
