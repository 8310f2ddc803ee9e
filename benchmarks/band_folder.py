"""Band-folder patch reads: a Sentinel-2 scene as one COG per band vs the same bands in one file.

Reads random 96² patches of all 12 bands (a) from the per-band COG folder of ../shared/data
(B02/B03/B04/B08 at 100 m, six bands at 200 m and two at 600 m, resampled on read onto the 100 m
grid), the 20/60 m bands as scaled windows (what `open_image(folder)` does), (b) the same with
every coarse band warped through a WarpedVRT (the general path, for another CRS or rotation), and
(c) from the derived single 12-band 200 m COG (one file, no resampling: the floor). Rounds of
the three alternate in one process; prints ms per patch and the ratios. Not a test.

  python benchmarks/band_folder.py [--root ../shared/data] [--patches 200] [--size 96]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from domainssl.io import open_image

    default_root = os.environ.get("DOMAINSSL_SHARED_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=default_root, help="folder holding geotiff/ (default ../shared/data)")
    ap.add_argument("--patches", type=int, default=200, help="patches per method per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args()
    geo = Path(args.root) / "geotiff"
    scaled = open_image(geo / "s2_l2a_T29RKH_20200219_cogs")
    warped = open_image(geo / "s2_l2a_T29RKH_20200219_cogs")
    warped._scaled = [False] * len(warped._scaled)  # force the WarpedVRT path for comparison
    single = open_image(geo / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif")
    methods = {"band folder (scaled windows)": scaled, "band folder (WarpedVRT)": warped,
               "one 12-band file": single}
    times = {name: [] for name in methods}
    n = args.size
    for r in range(args.rounds):
        for name, image in methods.items():
            rng = np.random.default_rng(r)
            h, w = image.shape[1:]
            image.read((slice(None), slice(0, n), slice(0, n)))  # open handles outside the clock
            start = time.perf_counter()
            for _ in range(args.patches):
                y, x = int(rng.integers(0, h - n)), int(rng.integers(0, w - n))
                image.read((slice(None), slice(y, y + n), slice(x, x + n)))
            times[name].append((time.perf_counter() - start) / args.patches * 1e3)
    best = {name: min(t) for name, t in times.items()}
    floor = best["one 12-band file"]
    print(f"{n}² x 12-band patches, best of {args.rounds} rounds of {args.patches}:")
    for name, ms in best.items():
        print(f"  {name:30s} {ms:7.2f} ms/patch  {ms / floor:5.1f}x the single file")


if __name__ == "__main__":
    main()
