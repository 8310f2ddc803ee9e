"""OME-Zarr (OME-NGFF 0.4 on zarr v2, 0.5 on zarr v3) reader with the zarr 3 library.

The multiscales metadata gives the axes (a subset of t, c, z, y, x), one array per pyramid level
and a scale per level; `omero` optionally names the channels. A region read is a zarr slice, so
only the chunks it touches are fetched, from a local folder or any fsspec URL.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ImageReadError
from .axis_roles import read_by_roles
from .image import LazyImage, time_index
from .tiff import normalize_unit

_SPATIAL_ORDER = "zyx"


def _axes_list(raw_axes, ndim: int) -> list[dict[str, Any]]:
    """NGFF axes as dicts with name/type/unit (0.3 wrote plain names; 0.1/0.2 had none: tczyx)."""
    if raw_axes is None:
        raw_axes = list("tczyx")[-ndim:]
    axes = []
    for ax in raw_axes:
        if isinstance(ax, str):
            ax = {"name": ax}
        name = str(ax.get("name", "")).lower()
        kind = ax.get("type") or {"t": "time", "c": "channel"}.get(name, "space" if name in "zyx" else None)
        axes.append({"name": name, "type": kind, "unit": ax.get("unit")})
    return axes


def _scale_translation(transforms, ndim: int) -> tuple[list[float], list[float]]:
    """Combine a list of NGFF coordinateTransformations into one scale and one translation."""
    scale, translation = [1.0] * ndim, [0.0] * ndim
    for tr in transforms or []:
        if tr.get("type") == "scale" and "scale" in tr:
            scale = [s * float(v) for s, v in zip(scale, tr["scale"])]
        elif tr.get("type") == "translation" and "translation" in tr:
            translation = [t + float(v) for t, v in zip(translation, tr["translation"])]
    return scale, translation


class OmeZarrImage(LazyImage):
    """One multiscale level of an OME-Zarr image as a lazy `(C, Y, X)` / `(C, Z, Y, X)` image."""

    format = "ome-zarr"

    def __init__(self, url: str, level: int = 0, t: int | None = None,
                 storage_options: dict | None = None):
        self._url = url
        self._storage_options = storage_options
        self._array = None
        self._pid = None
        group = self._open_group()
        attrs = dict(group.attrs)
        if "ome" in attrs:  # NGFF 0.5: everything under the "ome" key of zarr.json attributes
            ome = attrs["ome"]
            version = str(ome.get("version", "0.5"))
        else:
            ome = attrs
            version = None
        multiscales = ome.get("multiscales")
        if not multiscales and "bioformats2raw.layout" in ome:
            raise ImageReadError(url, "a bioformats2raw container (one image per numbered "
                                 f"subgroup): open {url.rstrip('/')}/0 (or /1, ...) instead")
        if not multiscales:
            raise ImageReadError(url, "no OME-NGFF 'multiscales' metadata in the group attributes "
                                 f"(found keys {sorted(attrs)}); is this a plain zarr group or an "
                                 "HCS plate? Open one image group of it")
        ms = multiscales[0]
        version = version or str(ms.get("version", "unknown"))
        datasets = ms.get("datasets") or []
        if not 0 <= level < len(datasets):
            raise ImageReadError(url, f"level {level} requested but the multiscale has {len(datasets)} "
                                 f"level(s) (0..{len(datasets) - 1}: {[d.get('path') for d in datasets]})")
        ds = datasets[level]
        self._array_path = str(ds["path"])
        try:
            array = group[self._array_path]
        except Exception as exc:
            raise ImageReadError(url, f"level {level} array {self._array_path!r} is missing or "
                                 f"unreadable ({type(exc).__name__}: {exc})") from exc
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            raise ImageReadError(url, f"{self._array_path!r} is a group, not an array")
        ndim = len(array.shape)
        axes = _axes_list(ms.get("axes"), ndim)
        if len(axes) != ndim:
            raise ImageReadError(url, f"multiscales axes {[a['name'] for a in axes]} do not match the "
                                 f"{ndim}-d array {self._array_path!r} of shape {array.shape}")
        scale, translation = _scale_translation(ds.get("coordinateTransformations"), ndim)
        global_scale, global_translation = _scale_translation(ms.get("coordinateTransformations"), ndim)
        scale = [s * g for s, g in zip(scale, global_scale)]
        translation = [t0 * g + gt for t0, g, gt in zip(translation, global_scale, global_translation)]

        self._src_shape = tuple(int(s) for s in array.shape)
        self._roles = self._axis_roles(url, axes, t)
        spatial = [i for i, r in enumerate(self._roles) if r in ("z", "y", "x")]
        n_channels = next((self._src_shape[i] for i, r in enumerate(self._roles) if r == "c"), 1)
        shape = (n_channels,) + tuple(self._src_shape[i] for i in spatial)
        spacing = [scale[i] for i in spatial]
        units = [normalize_unit(axes[i]["unit"]) or "px" for i in spatial]

        names = [f"ch{i}" for i in range(n_channels)]
        omero = ome.get("omero") or {}
        labels = [c.get("label") for c in omero.get("channels", []) if isinstance(c, dict)]
        if len(labels) == n_channels and all(labels):
            names = [str(x) for x in labels]
        meta = {
            "ngff_version": version,
            "zarr_format": group.metadata.zarr_format,
            "axes": [a["name"] for a in axes],
            "scale": scale,
            "translation": translation,
            "level": level,
            "levels": len(datasets),
            "level_paths": [str(d.get("path")) for d in datasets],
            "array_path": self._array_path,
            "chunks": list(getattr(array, "chunks", ()) or ()),
            "source_shape": list(self._src_shape),
        }
        if t is not None:
            meta["t"] = t
        axes_name = "CZYX" if len(spatial) == 3 else "CYX"
        super().__init__(url, shape, axes_name, spacing, units, names, array.dtype, meta)
        c_axis = next((i for i, r in enumerate(self._roles) if r == "c"), None)
        # a chunk per channel: reading chosen channels apart fetches only their chunks
        self.channels_apart = c_axis is not None and len(meta["chunks"]) > c_axis \
            and int(meta["chunks"][c_axis]) == 1

    def _open_group(self):
        import zarr

        try:
            return zarr.open_group(self._url, mode="r", storage_options=self._storage_options)
        except Exception as exc:
            raise ImageReadError(self._url, f"not a readable zarr group "
                                 f"({type(exc).__name__}: {exc})") from exc

    def _axis_roles(self, url, axes: list[dict], t: int | None) -> list[Any]:
        """Role per source axis: 'c', 'z', 'y', 'x', or a fixed int index (time, size-1 extras)."""
        names = [a["name"] for a in axes]
        space = [i for i, a in enumerate(axes) if a["type"] == "space"]
        if len(space) not in (2, 3):
            raise ImageReadError(url, f"{len(space)} space axes in {names}; need 2 (yx) or 3 (zyx)")
        space_names = [names[i] for i in space]
        if sorted(space_names, key=_SPATIAL_ORDER.find) != space_names and set(space_names) <= set("zyx"):
            raise ImageReadError(url, f"space axes in order {space_names}; NGFF requires z, y, x order")
        letters = _SPATIAL_ORDER[-len(space):]  # by position: the last space axis is x
        roles: list[Any] = [None] * len(axes)
        for i, letter in zip(space, letters):
            roles[i] = letter
        if sum(a["type"] == "channel" for a in axes) > 1:
            raise ImageReadError(url, f"more than one channel axis in {names}")
        for i, ax in enumerate(axes):
            if roles[i] is not None:
                continue
            size = self._src_shape[i]
            if ax["type"] == "channel":
                roles[i] = "c"
            elif ax["type"] == "time":
                roles[i] = time_index(url, t, size, f"image (axes {names})")
            elif size == 1:
                roles[i] = 0
            else:
                raise ImageReadError(url, f"axis {ax['name']!r} (type {ax['type']}) of size {size} "
                                     "has no place in CYX/CZYX")
        if t is not None and not any(a["type"] == "time" for a in axes):
            raise ImageReadError(url, f"t={t} given but the image has no time axis (axes {names})")
        return roles

    # -- handles, one per process ----------------------------------------------
    def _zarr(self):
        if self._array is None or self._pid != os.getpid():
            self._array = self._open_group()[self._array_path]
            self._pid = os.getpid()
        return self._array

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_array=None, _pid=None)
        return state

    def close(self) -> None:
        self._array = None

    def _read(self, bounds) -> np.ndarray:
        (c0, c1), *spatial_bounds = bounds
        spatial = [r for r in self._roles if r in ("z", "y", "x")]
        spans = {"c": slice(c0, c1), **{r: slice(*b) for r, b in zip(spatial, spatial_bounds)}}
        block, kept = read_by_roles(self.path, self._zarr(), self._roles, spans, "czyx",
                                    f"{bounds} from {self._array_path!r}")
        if "c" not in kept:
            block = block[None]
        return block


def open_ome_zarr(path_or_url, level: int = 0, t: int | None = None,
                  storage_options: dict | None = None, **kw) -> OmeZarrImage:
    """Open one level of an OME-Zarr image (NGFF 0.4 / zarr v2 or 0.5 / zarr v3) lazily.

    Args:
        path_or_url: the image group: a local folder or an fsspec URL (file://, s3://, https://).
        level: index into the multiscale datasets (0 = full resolution).
        t: time index for images with a time axis longer than 1 (required there).
        storage_options: passed to fsspec for remote URLs (credentials, anonymous access...).

    Returns:
        An `OmeZarrImage`: axes "CYX" or "CZYX" (no channel axis -> one channel), spacing from
        the level's scale (times any multiscale-wide scale) per spatial axis, units from the
        axes ("micrometer" -> "µm"; "px" when absent), channel names from omero labels else
        "ch0".., meta with ngff_version, axes, scale, translation, levels (count) and level_paths.

    Raises:
        ImageReadError: not a zarr group, no multiscales metadata, level/t out of range,
        axes that do not fit the data contract.
    """
    if kw:
        raise TypeError(f"open_ome_zarr got unexpected options {sorted(kw)}")
    url = os.fspath(path_or_url) if not isinstance(path_or_url, str) else path_or_url
    if "://" not in url and not os.path.isdir(url):
        raise ImageReadError(url, "no such OME-Zarr folder")
    return OmeZarrImage(url.rstrip("/"), level=int(level), t=t, storage_options=storage_options)
