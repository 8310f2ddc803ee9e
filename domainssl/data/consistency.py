"""Which images of a manifest can train one encoder together, and what the kept ones still mix.

`select_consistent` keeps the largest group of images with equal axes and channel names (a mixed
archive never feeds 4-band and 13-band images into one model); the messages say what was left
out and warn about mixtures that would train an encoder on unrelated scales or value units.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

import numpy as np


def select_consistent(records: list[dict], channels: Sequence[str] | None = None,
                      spatial_dims: int | None = None, formats: Sequence[str] | None = None):
    """Keep the records that can share one encoder; return (kept, {reason: count} dropped).

    Leaves out the files beside a band folder's bands (a Sentinel-2 product's SCL, AOT, WVP,
    TCI), filters by the requested channel names / spatial dims / formats, then keeps the largest
    group of equal (axes, channel_names): a mixed archive never silently feeds 4-band and
    13-band images into one model. With `channels`, images holding all of them are kept and
    read as those channels in that order (`select_channels`), whatever else they hold.
    """
    if isinstance(channels, str):  # `--data.channels DAPI`: one name, not its letters
        channels = [channels]
    dropped: Counter = Counter()
    kept = []
    # a GeoTIFF record that is a folder is a band folder (one file per band of a scene)
    band_folders = {str(r["path"]) for r in records
                    if r.get("format") == "geotiff" and r.get("path") and os.path.isdir(str(r["path"]))}
    for rec in records:
        if band_folders and str(rec.get("path")) not in band_folders \
                and os.path.dirname(str(rec.get("path"))) in band_folders:
            # a scene's scene-class map, aerosol, water vapour or true-colour file beside its
            # bands: each alone outnumbers the one band-folder image, and would win the majority
            dropped["files beside a band folder's bands (scene classes, aerosol, true colour, ...): "
                    "not bands of the scene; point data.root at them to train on them"] += 1
        elif formats and rec["format"] not in formats:
            dropped[f"format {rec['format']} not in {list(formats)}"] += 1
        elif spatial_dims and len(rec["axes"]) - 1 != spatial_dims:
            dropped[f"axes {rec['axes']} are not {spatial_dims}-D"] += 1
        elif channels and not set(channels) <= set(rec["channel_names"]):
            missing = [c for c in channels if c not in rec["channel_names"]]
            dropped[f"channels {missing} missing (the image has {list(rec['channel_names'])})"] += 1
        else:
            kept.append(select_channels(rec, channels) if channels else rec)
    groups = Counter((r["axes"], tuple(r["channel_names"])) for r in kept)
    if len(groups) > 1:
        (axes, names), _ = groups.most_common(1)[0]
        for (a, n), count in groups.items():
            if (a, n) != (axes, names):
                dropped[f"axes {a} channels {list(n)} differ from the majority {axes} {list(names)}"] += count
        kept = [r for r in kept if (r["axes"], tuple(r["channel_names"])) == (axes, names)]
    return kept, dict(dropped)


def select_channels(record: dict, channels: Sequence[str]) -> dict:
    """A copy of `record` read as `channels` (names it holds), in that order: `channel_index`
    (positions in the file's channels, which `PatchDataset` takes from each patch it reads),
    and channel_names and shape as the patches will have them."""
    names = list(record["channel_names"])
    index = [names.index(c) for c in channels]
    if index == list(range(len(names))):
        return record
    return {**record, "channel_names": list(channels), "channel_index": index,
            "shape": [len(index)] + list(record["shape"][1:])}


def oversized_patch_message(records: list[dict], size, unit: str, tolerance: float = 0.1) -> str | None:
    """A message when the patch is larger than some images along an axis (by more than
    `tolerance`): their patches are then the whole extent along it, resampled to the patch
    shape, i.e. stretched (a 20 mm slab shown as 96 mm), while the card records one spacing.
    None when every image holds the patch. Uses the manifest's shapes only."""
    from .dataset import _HeaderOnly
    from .samplers import requested_pixels

    over = []
    for rec in records:
        image = _HeaderOnly(rec)
        try:
            want = requested_pixels(image, size, unit)
        except ValueError:
            continue  # a size that does not fit the image is reported where patches are cut
        axes = [i for i, (p, n) in enumerate(zip(want, image.spatial_shape)) if p > n * (1 + tolerance)]
        if axes:
            over.append((rec, image, want, axes[0]))
    if not over:
        return None
    rec, image, want, axis = over[0]
    name = image.axes[1:][axis].lower() if len(image.axes) == image.spatial_dims + 1 else str(axis)
    have = image.spatial_shape[axis]
    if unit == "px":
        what = f"{have} px where the patch has {want[axis]} px"
    else:
        what = f"{have * image.spacing[axis]:.4g} {unit} where the patch has {want[axis] * image.spacing[axis]:.4g} {unit}"
    return (f"data: the patch is larger than {len(over)} of {len(records)} image(s) along some axis "
            f"(e.g. {os.path.basename(str(rec['path']).rstrip('/'))} along {name}: {what}); their "
            f"patches take the whole extent there, stretched to the patch shape: lower "
            f"data.patch_size, or leave such images out (data.root, data.formats, data.spatial_dims)")


def record_key(record: dict) -> tuple:
    """Sort key of a manifest record: path, then DICOM series and pyramid level."""
    return (str(record["path"]), str(record.get("series") or ""), int(record.get("level") or 0))


def left_out_message(kept: list[dict], dropped: dict) -> str:
    """One message for what `select_consistent` left out: what is kept, each reason with its
    count, and the settings that choose other images."""
    total = sum(dropped.values())
    head = f"data: {total} usable image(s) left out, {len(kept)} kept"
    if kept:
        head += f" (axes {kept[0]['axes']}, channels {list(kept[0]['channel_names'])})"
    lines = [head + ":"] + [f"  {n:5d} x {reason}" for reason, n in dropped.items()]
    lines.append("  one encoder takes one kind of image: to train on the others, point data.root at "
                 "them or set data.channels / data.spatial_dims / data.formats")
    return "\n".join(lines)


def mixed_scale_message(records: list[dict], patch_unit: str, tolerance: float = 0.1) -> str | None:
    """A message when patches sized in pixels would cover different physical extents: the images'
    spacings are in different units, or along some axis (in one physical unit) they differ by
    more than `tolerance` (relative). None otherwise (physical patch sizes, or pixel units)."""
    if patch_unit != "px" or not records:
        return None
    units = Counter(tuple(r.get("units") or ()) for r in records)
    uncalibrated = sum(n for u, n in units.items() if not u or "px" in u)
    if uncalibrated == len(records):
        return None  # uncalibrated images: pixels are the only scale there is
    if uncalibrated:
        calibrated = ", ".join(f"{n} in {'/'.join(u)}" for u, n in units.most_common() if u and "px" not in u)
        return (f"data: {uncalibrated} image(s) carry no pixel spacing (px) next to {calibrated}: "
                f"patches sized in pixels cover unknown extents there, and the encoder card records "
                f"the spacing most images share; give the uncalibrated images their spacing (e.g. "
                f"OME physical sizes) or point data.root at images of one kind")
    if len(units) > 1:
        shown = ", ".join(f"{n} in {'/'.join(u)}" for u, n in units.most_common())
        return (f"data: patches are sized in pixels but the images' pixel spacings are in different "
                f"units ({shown}), so one patch covers unrelated extents: bring the images to one "
                f"grid unit (e.g. reproject to one CRS) or point data.root at images of one kind")
    spacings = np.array([[float(v) for v in r["spacing"]] for r in records])
    if not (spacings.max(axis=0) > spacings.min(axis=0) * (1 + tolerance)).any():
        return None
    unit = next(iter(units))[0]
    scales = Counter(tuple(float(f"{v:.4g}") for v in row) for row in spacings)
    shown = ", ".join(f"{n} at {' x '.join(f'{v:g}' for v in sp)} {unit}"
                      for sp, n in sorted(scales.items(), key=lambda kv: (-kv[1], kv[0]))[:4])
    more = "" if len(scales) <= 4 else f", {len(scales) - 4} more spacings"
    return (f"data: patches are sized in pixels but the images' pixel spacings differ ({shown}{more}): "
            f"one patch covers different ground/tissue extents and the encoder card's spacing (the "
            f"median) fits not every image. To train at one scale, size patches in {unit} "
            f"(data.patch_unit: {unit}, data.patch_size in {unit}, data.target_shape in voxels), or "
            f"point data.root at images of one spacing")


def mixed_units_message(records: list[dict]) -> str | None:
    """A message when the images' values are in different declared units (e.g. reflectance
    next to raw digital numbers): one set of normalisation statistics would mix them."""
    units = Counter(str((r.get("meta") or {}).get("value_unit") or "not declared") for r in records)
    if len(units) < 2:
        return None
    shown = ", ".join(f"{n} {u}" for u, n in sorted(units.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"data: the images' values are in different units ({shown}): one set of statistics "
            f"normalises them all, so the same ground or tissue looks different by source. Train on "
            f"images of one unit (point data.root at them), or convert the others first")


def mixture_messages(records: list[dict], patch_size, patch_unit: str) -> list[str]:
    """What the kept images still mix, as messages (pretraining warns them, `domainssl stats`
    prints them): pixel spacings under pixel patches, value units, patches larger than images."""
    found = (mixed_scale_message(records, patch_unit), mixed_units_message(records),
             oversized_patch_message(records, patch_size, patch_unit))
    return [m for m in found if m]
