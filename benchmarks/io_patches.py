"""Patch-read benchmark: our dataset vs the bare library call, the peers and the naive way.

For each format (tiled GeoTIFF, OME-Zarr v3, uncompressed NIfTI, DICOM series) it generates a
large file (default >= 2 GiB) and a small one (50 MB), then measures random patches
(256² x all bands in 2D, 96³ in 3D) per second and the peak RSS of:

  ours    PatchDataset (RandomPatchSampler + lazy reader) + collation into batches
  floor   the bare library call for the same regions (rasterio window, zarr slice,
          memory-mapped NIfTI slice, pydicom on the slice files in the z-range), with the
          library's defaults: the floor the ratios are taken against
  floor+opts  (GeoTIFF, for information) the bare rasterio call with the GDAL options our
          reader opens the file with (GTIFF_DIRECT_IO for large uncompressed tiled files), so a
          ratio above what the options explain is not mistaken for less Python overhead
  paired  ours, floor and floor+opts alternated in half-second rounds in one process: the
          ratios to decide on (this machine's process-to-process noise reaches 30%)
  peer    TorchGeo RasterDataset + RandomGeoSampler (GeoTIFF); MONAI LoadImage +
          RandSpatialCrop, and MONAI's PatchDataset (NIfTI / DICOM)
  naive   read the whole image, then crop

Each measurement runs in its own spawned process, so peak RSS is that method's alone
(it includes the interpreter and imports: see the `idle` row). Prints a table and the
ratios the issue asks for. This is a benchmark, not a test: numbers vary with the machine.

  python benchmarks/io_patches.py                 # 2 GiB files in /tmp/domainssl_io_bench
  python benchmarks/io_patches.py --size-gb 0.5 --seconds 3 --formats geotiff,nifti
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ----------------------------------------------------------------------------- generation
def _pattern(shape_yx, k: int) -> np.ndarray:
    """Cheap, non-constant uint16 content for slice/band k (real files compress; ours need not)."""
    y = np.arange(shape_yx[0], dtype=np.uint32)[:, None]
    x = np.arange(shape_yx[1], dtype=np.uint32)[None, :]
    return ((y * 7 + x * 3 + k * 11) % 4000 + 100).astype(np.uint16)


def make_geotiff(path: Path, side: int, bands: int = 4) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=side, height=side, count=bands, dtype="uint16",
                   crs="EPSG:32629", transform=from_origin(300000, 5000000, 10, 10), tiled=True,
                   blockxsize=256, blockysize=256, nodata=0, BIGTIFF="YES")
    with rasterio.open(path, "w", **profile) as dst:
        for y0 in range(0, side, 1024):
            h = min(1024, side - y0)
            block = np.stack([_pattern((h, side), b + y0) for b in range(bands)])
            dst.write(block, window=Window(0, y0, side, h))
        for b in range(bands):
            dst.set_band_description(b + 1, f"B{b + 1}")


def make_volume_raw(path: Path, side: int) -> np.memmap:
    vol = np.lib.format.open_memmap(path, mode="w+", dtype=np.int16, shape=(side, side, side))
    for z in range(side):
        vol[z] = (_pattern((side, side), z) // 2).astype(np.int16) - 1000
    vol.flush()
    return vol


def make_nifti(path: Path, vol: np.ndarray) -> None:
    import nibabel as nib

    # (Z, Y, X) C-order bytes are (X, Y, Z) Fortran-order: the transpose is a free view.
    img = nib.Nifti1Image(vol.T, np.diag([0.8, 0.8, 1.0, 1.0]))
    img.header.set_data_dtype(np.int16)
    nib.save(img, str(path))


def make_zarr(path: Path, vol: np.ndarray) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = group.create_array("0", shape=(1,) + vol.shape, chunks=(1, 64, 64, 64), dtype="int16",
                             compressors=None)
    for z0 in range(0, vol.shape[0], 64):
        arr[0, z0:z0 + 64] = vol[z0:z0 + 64]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "c", "type": "channel"}] + [
            {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 0.5, 0.5]}]}]}]}


def make_dicom(folder: Path, vol: np.ndarray) -> None:
    from domainssl.data.synthetic import write_dicom_series

    write_dicom_series(folder, vol, spacing=(1.0, 0.8, 0.8))


def prepare(workdir: Path, fmt: str, gb: float, tag: str) -> Path:
    """Create (once) the benchmark file of `fmt` with about `gb` GiB of pixels."""
    workdir.mkdir(parents=True, exist_ok=True)
    nbytes = gb * 2 ** 30
    if fmt == "geotiff":
        side = int(math.sqrt(nbytes / (4 * 2)))
        path = workdir / f"{tag}_{side}.tif"
        if not path.exists():
            make_geotiff(path, side)
        return path
    side = max(96, int(round((nbytes / 2) ** (1 / 3))))
    raw = workdir / f"{tag}_vol_{side}.npy"
    paths = {"nifti": workdir / f"{tag}_{side}.nii", "zarr": workdir / f"{tag}_{side}.ome.zarr",
             "dicom": workdir / f"{tag}_{side}_dicom"}
    if not paths[fmt].exists():
        vol = np.load(raw, mmap_mode="r") if raw.exists() else make_volume_raw(raw, side)
        {"nifti": make_nifti, "zarr": make_zarr, "dicom": make_dicom}[fmt](paths[fmt], vol)
    return paths[fmt]


# ----------------------------------------------------------------------------- methods
def warm_page_cache(path) -> None:
    """Read every file under `path` once, so no method pays (or profits from) a cold disk cache."""
    files = [Path(path)] if Path(path).is_file() else [p for p in Path(path).rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def _regions(shape_spatial, patch, n, seed=0):
    """`n` random patch corners, lazily (a list of a million tuples would slow every garbage
    collection in the process and tax whichever method allocates more objects)."""
    rng = np.random.default_rng(seed)
    highs = [s - p + 1 for s, p in zip(shape_spatial, patch)]
    for _ in range(n):
        yield tuple(int(rng.integers(0, h)) for h in highs)


def _loop(fetch, corners, seconds, min_patches=1):
    """Call fetch(corner) until `seconds` pass (at least `min_patches` times); returns (n, secs)."""
    t0 = time.perf_counter()
    n = 0
    for corner in corners:
        fetch(corner)
        n += 1
        if n >= min_patches and time.perf_counter() - t0 > seconds:
            break
    return n, time.perf_counter() - t0


def ours_fetcher(path, fmt, patch, batch):
    """One call = one collated batch of `batch` random patches, the way training gets them:
    PatchDataset + EpochSampler + collate_samples in a DataLoader built as
    PatchDataModule.train_dataloader builds it (here in-process: num_workers=0)."""
    from torch.utils.data import DataLoader

    from domainssl.data.dataset import EpochSampler, PatchDataset, collate_samples
    from domainssl.data.samplers import RandomPatchSampler
    from domainssl.io import open_image

    rec = open_image(path).describe()
    rec["status"] = "ok"
    ds = PatchDataset([rec], RandomPatchSampler(list(patch)), patches_per_image=10 ** 6, seed=0)
    sampler = EpochSampler(len(ds), shuffle=True, seed=0, rank=0, world_size=1)
    sampler.set_epoch(1)
    loader = iter(DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=0,
                             collate_fn=collate_samples, drop_last=True))

    def fetch():
        return next(loader)

    return fetch, batch


def floor_fetcher(path, fmt, patch, batch, reader_options=False):
    """One call = one random patch by the bare library call; `reader_options`: (GeoTIFF) open
    the file with the GDAL options our reader uses for it, else with GDAL's defaults."""
    from domainssl.io import open_image

    img = open_image(path)
    corners = iter(_regions(img.shape[1:], patch, 10 ** 6, seed=1))
    if fmt == "geotiff":
        import rasterio
        from rasterio.windows import Window

        from domainssl.io.geotiff import read_options

        options = (read_options(img.meta["tiled"], img.meta["compress"], img.nbytes())
                   if reader_options else {})
        with rasterio.Env(**options):  # GDAL takes these options when the file is opened
            src = rasterio.open(path)

        def fetch():
            c = next(corners)
            return src.read(window=Window(c[1], c[0], patch[1], patch[0]))

        return fetch, 1
    # The other floors return views into memory maps or stores; np.array makes each call
    # really move the patch's bytes into memory, as any consumer must.
    if fmt == "zarr":
        import zarr

        arr = zarr.open_array(str(Path(path) / "0"), mode="r")

        def fetch():
            c = next(corners)
            return np.array(arr[0:1, c[0]:c[0] + patch[0], c[1]:c[1] + patch[1], c[2]:c[2] + patch[2]])

        return fetch, 1
    if fmt == "nifti":
        import nibabel as nib

        img = nib.load(str(path), mmap=True)

        def fetch():  # file axes are (x, y, z); our corner is (z, y, x)
            c = next(corners)
            return np.array(img.dataobj[c[2]:c[2] + patch[2], c[1]:c[1] + patch[1], c[0]:c[0] + patch[0]])

        return fetch, 1
    if fmt == "dicom":
        import pydicom

        files = sorted(os.listdir(path))
        headers = [pydicom.dcmread(os.path.join(path, f), stop_before_pixels=True) for f in files]
        order = np.argsort([float(h.ImagePositionPatient[2]) for h in headers])
        ordered = [(os.path.join(path, files[i]), float(headers[i].RescaleSlope),
                    float(headers[i].RescaleIntercept)) for i in order]

        def fetch():
            c = next(corners)
            out = []
            for f, slope, inter in ordered[c[0]:c[0] + patch[0]]:
                px = pydicom.dcmread(f).pixel_array[c[1]:c[1] + patch[1], c[2]:c[2] + patch[2]]
                out.append(px * slope + inter)
            return np.stack(out)

        return fetch, 1
    raise ValueError(fmt)


def _timed(fetch, per_call, seconds):
    t0 = time.perf_counter()
    n = 0
    while n == 0 or time.perf_counter() - t0 < seconds:
        fetch()
        n += per_call
    return n, time.perf_counter() - t0


def run_ours(path, fmt, patch, seconds, batch):
    return _timed(*ours_fetcher(path, fmt, patch, batch), seconds)


def run_floor(path, fmt, patch, seconds, batch):
    return _timed(*floor_fetcher(path, fmt, patch, batch), seconds)


def run_floor_opts(path, fmt, patch, seconds, batch):
    if fmt != "geotiff":
        return None
    return _timed(*floor_fetcher(path, fmt, patch, batch, reader_options=True), seconds)


def run_paired(path, fmt, patch, seconds, batch):
    """Ours and the floor (and, for GeoTIFF, floor+opts) in one process, alternating short
    rounds: ratios robust to machine noise. Returns (n, secs) of ours, then of floor, then of
    floor+opts where measured."""
    fetchers = {"ours": ours_fetcher(path, fmt, patch, batch),
                "floor": floor_fetcher(path, fmt, patch, batch)}
    if fmt == "geotiff":
        fetchers["floor+opts"] = floor_fetcher(path, fmt, patch, batch, reader_options=True)
    totals = {name: [0, 0.0] for name in fetchers}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for name, (fetch, per_call) in fetchers.items():
            n, dt = _timed(fetch, per_call, 0.5)
            totals[name][0] += n
            totals[name][1] += dt
    return tuple(v for name in fetchers for v in totals[name])


def run_naive(path, fmt, patch, seconds, batch):
    from domainssl.io import open_image

    img = open_image(path)
    corners = _regions(img.shape[1:], patch, 10 ** 6)

    def fetch(c):
        # the whole image, every time, really in memory (a NIfTI read may be a memory-map view)
        full = np.array(img.read(), copy=True)
        return full[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(c, patch))].copy()

    return _loop(fetch, corners, seconds)


def run_peer(path, fmt, patch, seconds, batch):
    if fmt == "geotiff":
        try:
            from torchgeo.datasets import RasterDataset
            from torchgeo.samplers import RandomGeoSampler
        except ImportError:
            return None
        ds = RasterDataset(paths=str(path))
        res = ds.res[0] if isinstance(ds.res, tuple) else ds.res
        sampler = RandomGeoSampler(ds, size=patch[0] * res, length=10 ** 6)
        it = iter(sampler)
        return _loop(lambda _: ds[next(it)], range(10 ** 6), seconds)
    if fmt in ("nifti", "dicom"):
        from monai.transforms import LoadImage, RandSpatialCrop

        loader = LoadImage(image_only=True, ensure_channel_first=True,
                           reader="PydicomReader" if fmt == "dicom" else "NibabelReader")
        crop = RandSpatialCrop(roi_size=list(patch), random_size=False)
        return _loop(lambda _: crop(loader(str(path))), range(10 ** 6), seconds)
    return None


def run_peer_patchds(path, fmt, patch, seconds, batch):
    """MONAI's PatchDataset: loads the whole image once per item, then cuts `batch` patches."""
    if fmt not in ("nifti", "dicom"):
        return None
    from monai.data import PatchDataset as MonaiPatchDataset
    from monai.transforms import LoadImage, RandSpatialCropSamples

    loader = LoadImage(image_only=True, ensure_channel_first=True,
                       reader="PydicomReader" if fmt == "dicom" else "NibabelReader")
    sampler = RandSpatialCropSamples(roi_size=list(patch), num_samples=batch, random_size=False)
    ds = MonaiPatchDataset(data=[str(path)] * 1000, patch_func=lambda p: sampler(loader(p)),
                           samples_per_image=batch)
    it = iter(ds)
    return _loop(lambda _: next(it), range(10 ** 6), seconds)


def run_idle(path, fmt, patch, seconds, batch):
    return 0, 1.0  # the baseline RSS of an interpreter with torch and our imports


METHODS = {"ours": run_ours, "floor": run_floor, "floor+opts": run_floor_opts, "paired": run_paired, "peer": run_peer, "peer_patchds": run_peer_patchds,
           "naive": run_naive, "idle": run_idle}


def _child(method, path, fmt, patch, seconds, batch, queue):
    import torch  # noqa: F401  every method starts from the same interpreter footprint
    import domainssl.data.dataset  # noqa: F401

    try:
        res = METHODS[method](path, fmt, patch, seconds, batch)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(None if res is None else tuple(res[:2]) + (rss_mb,) + tuple(res[2:]))
    except Exception as exc:  # report and go on with the other methods
        queue.put(f"{type(exc).__name__}: {exc}")


def measure(method, path, fmt, patch, seconds, batch, timeout):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, str(path), fmt, tuple(patch), seconds, batch, queue))
    proc.start()
    try:
        res = queue.get(timeout=timeout)
    except Exception:
        res = f"timed out after {timeout:.0f} s"
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=2.0, help="large file size in GiB (default 2)")
    ap.add_argument("--small-gb", type=float, default=0.05, help="small file size in GiB (default 0.05)")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per fast measurement")
    ap.add_argument("--slow-timeout", type=float, default=240.0, help="give up on a method after this")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--formats", default="geotiff,zarr,nifti,dicom")
    ap.add_argument("--workdir", default="/tmp/domainssl_io_bench")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--prepare-only", action="store_true", help="generate the files and stop")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    results = []
    if args.prepare_only:
        for fmt in args.formats.split(","):
            for gb, tag in ((args.size_gb, "big"), (args.small_gb, "small")):
                print(fmt, prepare(workdir, fmt, gb, tag), flush=True)
        return 0
    idle = measure("idle", "", "", (1,), 0, 1, 120)
    print(f"idle interpreter with torch + domainssl imported (every method's starting point): "
          f"peak RSS {idle[2]:.0f} MB", flush=True)
    for fmt in args.formats.split(","):
        patch = (256, 256) if fmt == "geotiff" else (96, 96, 96)
        t = time.perf_counter()
        big = prepare(workdir, fmt, args.size_gb, "big")
        small = prepare(workdir, fmt, args.small_gb, "small")
        warm_page_cache(big)
        warm_page_cache(small)
        print(f"[{fmt}] files ready and in the page cache in {time.perf_counter() - t:.0f} s: {big}",
              flush=True)
        row = {"format": fmt, "patch": patch, "file": str(big)}
        for method in ("ours", "floor", "floor+opts", "peer", "peer_patchds", "naive"):
            if method == "floor+opts" and fmt != "geotiff":
                continue
            slow = method in ("naive", "peer", "peer_patchds")
            # the naive way costs a whole-file read per patch: one or two are enough to time it
            res = measure(method, big, fmt, patch, 1.0 if method == "naive" else args.seconds,
                          args.batch, args.slow_timeout if slow else args.seconds * 20 + 60)
            row[method] = res
            print(f"  {method:13s} {_fmt(res)}", flush=True)
        paired = measure("paired", big, fmt, patch, args.seconds * 2, args.batch, args.seconds * 40 + 60)
        row["paired_ratio"] = row["paired_ratio_opts"] = None
        if isinstance(paired, tuple):  # (n, secs) ours, peak RSS, (n, secs) floor[, floor+opts]
            ours_rate, floor_rates = paired[0] / paired[1], paired[3:]
            row["paired_ratio"] = ours_rate / (floor_rates[0] / floor_rates[1])
            print(f"  {'paired':13s} ours/floor = {row['paired_ratio']:.2f}x when alternated in one "
                  f"process ({ours_rate:.0f} vs {floor_rates[0] / floor_rates[1]:.0f} patches/s)", flush=True)
            if len(floor_rates) == 4:
                row["paired_ratio_opts"] = ours_rate / (floor_rates[2] / floor_rates[3])
                print(f"  {'paired':13s} ours/floor+opts = {row['paired_ratio_opts']:.2f}x (for "
                      f"information: the bare call with our reader's GDAL options, "
                      f"{floor_rates[2] / floor_rates[3]:.0f} patches/s)", flush=True)
        else:
            print(f"  paired        {paired}", flush=True)
        row["ours_small"] = measure("ours", small, fmt, patch, args.seconds, args.batch, args.seconds * 20 + 60)
        print(f"  {'ours (50 MB)':13s} {_fmt(row['ours_small'])}", flush=True)
        # the bare call on the small file too: a small file fits GDAL's block cache, which
        # flatters every reader of it, not only ours
        row["floor_small"] = measure("floor", small, fmt, patch, args.seconds, args.batch, args.seconds * 20 + 60)
        print(f"  {'floor (50 MB)':13s} {_fmt(row['floor_small'])}", flush=True)
        results.append(row)
    base = idle[2] if isinstance(idle, tuple) else 0.0
    print("\nsummary (patches/s, peak RSS MB; ratios against the bare library call 'floor';"
          f" RSS ratio counted above the idle interpreter's {base:.0f} MB):")
    print(f"{'format':8s} {'ours':>16s} {'floor':>16s} {'peer':>16s} {'naive':>16s} "
          f"{'ours/floor':>10s} {'paired':>7s} {'paired/floor+opts':>17s} {'ours/peer':>10s} "
          f"{'RSS ours/naive':>14s} {'cost 2GB/50MB':>13s} {'floor 2GB/50MB':>14s}")
    for r in results:
        ours, floor, peer, naive, small = (r[k] for k in ("ours", "floor", "peer", "naive", "ours_small"))
        best_peer = max([p for p in (r["peer"], r["peer_patchds"]) if isinstance(p, tuple)],
                        key=lambda p: p[0] / p[1], default=None)
        print(f"{r['format']:8s} {_cell(ours):>16s} {_cell(floor):>16s} {_cell(best_peer):>16s} "
              f"{_cell(naive):>16s} {_ratio(ours, floor):>10s} "
              f"{_times(r['paired_ratio']):>7s} {_times(r.get('paired_ratio_opts')):>17s} "
              f"{_ratio(ours, best_peer):>10s} "
              f"{_rss_ratio(ours, naive, base):>14s} {_ratio(small, ours):>13s} "
              f"{_ratio(r['floor_small'], floor):>14s}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def _rate(res):
    return res[0] / res[1] if isinstance(res, tuple) and res[1] > 0 else None


def _fmt(res):
    if isinstance(res, tuple):
        return f"{_rate(res):9.2f} patches/s  peak RSS {res[2]:7.0f} MB  ({res[0]} patches in {res[1]:.1f} s)"
    return "not available (peer not installed)" if res is None else f"failed: {res}"


def _cell(res):
    return f"{_rate(res):.2f} / {res[2]:.0f}" if isinstance(res, tuple) else "-"


def _times(ratio):
    return f"{ratio:.2f}x" if ratio else "-"


def _ratio(a, b):
    ra, rb = _rate(a), _rate(b)
    return _times(ra / rb) if ra and rb else "-"


def _rss_ratio(a, b, base=0.0):
    if not (isinstance(a, tuple) and isinstance(b, tuple)):
        return "-"
    return f"{(a[2] - base) / max(b[2] - base, 1.0):.3f}"


if __name__ == "__main__":
    sys.exit(main())
