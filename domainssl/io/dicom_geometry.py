"""DICOM slice geometry: order the planes of a series in space, spacing, gaps, affine.

Conventions (DICOM patient coordinates, LPS, millimetres):
- the slice normal is `cross(row_cosines, column_cosines)` of ImageOrientationPatient;
- slices are ordered by `dot(normal, ImagePositionPatient)` ascending (never by file
  name or InstanceNumber), so the volume's z index runs along +normal;
- z spacing is the median step between neighbouring slices along the normal; missing
  slices and uneven steps are reported (meta + `DicomGeometryWarning`); with `regular_z` the
  geometry also gives the regular grid (`regular_z_grid`) that `dicom.DicomImage` reads onto;
- the affine maps a voxel index `(z, y, x, 1)` (the array order of `read()`) to LPS mm;
  its z column is the mean slice-to-slice displacement, so a gantry-tilted (sheared)
  stack keeps its shear.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .dicom_series import DicomHeader
from .errors import ImageReadError

# Tolerances for geometry checks, in mm / direction-cosine units. DICOM decimal strings
# carry ~6 significant digits, so positions agree to ~1e-4 mm at best.
_ORIENTATION_TOL = 1e-3
_POSITION_TOL_MM = 1e-3


class DicomGeometryWarning(UserWarning):
    """Uneven spacing, missing slices, duplicates or gantry tilt found in a series."""


def warn_at_caller(message: str, category: type[Warning] = DicomGeometryWarning) -> None:
    """Warn with the location of the first caller outside domainssl.io (the user's open call)."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@dataclass
class Plane:
    """One z-slice of the volume: which file, which frame, and its rescale."""

    header_index: int
    frame: int | None  # None: single-frame file
    slope: float
    intercept: float


@dataclass
class SeriesGeometry:
    """Ordered planes plus spacing/affine facts of a series (see module docstring)."""

    planes: list[Plane]
    spacing_zyx: tuple[float, float, float]
    units_zyx: tuple[str, str, str]
    meta: dict[str, Any]
    # with regular_z and uneven slices: (lower stored slice, weight) per grid plane (`regular_z_grid`)
    z_grid: tuple[np.ndarray, np.ndarray] | None = None


def _check_consistent(headers: Sequence[DicomHeader]) -> None:
    """Slices of one volume must share size, encoding layout and orientation."""
    ref = headers[0]
    for h in headers[1:]:
        for name in ("rows", "cols", "samples", "photometric", "bits_allocated"):
            if getattr(h, name) != getattr(ref, name):
                raise ImageReadError(h.path, f"{name} is {getattr(h, name)} but {getattr(ref, name)} "
                                     f"in {ref.path} of the same series {ref.series_uid}: slices "
                                     "of one volume must match; open the files separately")
        if (h.orientation is None) != (ref.orientation is None) or (
                h.orientation is not None and
                max(abs(a - b) for a, b in zip(h.orientation, ref.orientation)) > _ORIENTATION_TOL):
            raise ImageReadError(h.path, f"ImageOrientationPatient {h.orientation} differs from "
                                 f"{ref.orientation} in {ref.path} of the same series: a series "
                                 "with several orientations (e.g. a localizer) is not one volume")


def _orientation_code(direction: np.ndarray) -> str:
    """LPS letter of the dominant component of a direction (e.g. (0, 0, -1) -> 'I')."""
    axis = int(np.argmax(np.abs(direction)))
    return ("LPS" if direction[axis] > 0 else "RAI")[axis]


def _is_oblique(cosines: np.ndarray) -> bool:
    return bool(np.any(np.abs(np.abs(cosines) - np.round(np.abs(cosines))) > _ORIENTATION_TOL))


def _spacing_report(steps: np.ndarray, typical: float) -> dict[str, Any]:
    """Classify steps between sorted slices: whole missing slices vs uneven spacing.

    A step of about k× the typical step (k >= 2, within 10 % of a slice) counts as
    k-1 missing slices; any other step further than 1 % (+ 1e-3 mm) from the typical
    step makes the spacing uneven.
    """
    tol = 0.01 * typical + _POSITION_TOL_MM
    missing, gaps, uneven_at = 0, [], []
    for i, step in enumerate(steps):
        if abs(step - typical) <= tol:
            continue
        ratio = step / typical
        k = int(round(ratio))
        if k >= 2 and abs(ratio - k) < 0.1:
            missing += k - 1
            gaps.append({"after_slice": i, "missing": k - 1, "step_mm": float(step)})
        else:
            uneven_at.append(i)
    return {
        "uneven": bool(uneven_at),
        "uneven_after_slices": uneven_at,
        "missing_slices": missing,
        "gaps": gaps,
        "typical_step_mm": float(typical),
        "steps_mm": [round(float(s), 6) for s in steps],
    }


def series_geometry(headers: Sequence[DicomHeader], *, source: str, regular_z: bool = False) -> SeriesGeometry:
    """Order the planes of a series (one multi-frame file or single-frame slices) in space.

    Args:
        headers: one multi-frame file, or single-frame files of one series.
        source: path named in errors and warnings.
        regular_z: uneven or missing slices go onto a regular grid at the median step:
            `z_grid` (which stored slices each plane lies between), meta `z_positions` of the
            grid planes, `stored_z_positions`, `z_grid` facts.

    Returns:
        `SeriesGeometry` with planes ordered along +normal, spacing (z, y, x) in mm
        (y, x from PixelSpacing rows/cols; z the median step along the normal), and
        meta: `z_positions` (mm along the normal), `spacing_report`, `affine`
        (4×4, voxel (z, y, x) -> LPS mm), `orientation` and `array_orientation` (where
        the z, y, x axes point, e.g. "SPL"), `image_orientation_patient`, `slice_normal`, `oblique`,
        `gantry_tilt_deg` where the slice stack is sheared.

    Raises:
        ImageReadError: inconsistent slices or several slices at one position.
    """
    if any(h.multi_frame for h in headers) and len(headers) > 1:
        raise ImageReadError(source, f"series holds {len(headers)} files of which some are "
                             "multi-frame; open each multi-frame file on its own")
    _check_consistent(headers)
    ref = headers[0]
    meta: dict[str, Any] = {}
    row_mm, col_mm = ref.pixel_spacing if ref.pixel_spacing else (1.0, 1.0)
    yx_units = ("mm", "mm") if ref.pixel_spacing else ("px", "px")
    if ref.pixel_spacing is None:
        meta["spacing_note"] = "no PixelSpacing in the header: in-plane spacing is 1 px"

    # candidate planes with their positions (None when the header has none)
    if ref.multi_frame:
        positions = ref.frame_positions or [None] * ref.n_frames
        slopes = ref.frame_slopes or [ref.slope] * ref.n_frames
        intercepts = ref.frame_intercepts or [ref.intercept] * ref.n_frames
        cands = [(Plane(0, i, slopes[i], intercepts[i]), positions[i], ref.sop_uid, i)
                 for i in range(ref.n_frames)]
    else:
        cands = [(Plane(i, None, h.slope, h.intercept), h.position, h.sop_uid, i)
                 for i, h in enumerate(headers)]

    have_geometry = ref.orientation is not None and all(c[1] is not None for c in cands)
    fallback_step = ref.spacing_between_slices or ref.slice_thickness
    if not have_geometry:
        # No positions: keep InstanceNumber order (single-frame) or stored frame order.
        if not ref.multi_frame:
            cands.sort(key=lambda c: (headers[c[0].header_index].instance_number or 0, c[3]))
        meta["z_order"] = "stored frame order" if ref.multi_frame else "InstanceNumber"
        if len(cands) > 1:
            warn_at_caller(f"{source}: no ImagePositionPatient/ImageOrientationPatient; slices kept "
                  f"in {meta['z_order']}")
        z_mm = fallback_step or 1.0
        meta["spacing_report"] = None
        if ref.orientation is not None and ref.position is not None:
            meta.update(_affine_meta(ref.orientation, ref.position, (row_mm, col_mm), None, z_mm))
        return SeriesGeometry([c[0] for c in cands], (z_mm, row_mm, col_mm),
                              ("mm" if fallback_step else "px",) + yx_units, meta)

    cosines = np.asarray(ref.orientation, dtype=np.float64)
    row_cos, col_cos = cosines[:3], cosines[3:]
    normal = np.cross(row_cos, col_cos)
    dist = np.array([float(np.dot(normal, c[1])) for c in cands])
    order = np.argsort(dist, kind="stable")
    cands = [cands[i] for i in order]
    dist = dist[order]

    # several slices at one position: same instance twice (drop) or several acquisitions (error)
    keep = [0]
    for i in range(1, len(cands)):
        if abs(dist[i] - dist[keep[-1]]) > _POSITION_TOL_MM * 10:
            keep.append(i)
            continue
        a, b = cands[keep[-1]], cands[i]
        if a[2] and a[2] == b[2]:
            warn_at_caller(f"{source}: {headers[b[0].header_index].path} repeats SOPInstanceUID "
                  f"{b[2]} of {headers[a[0].header_index].path}; using the first")
            continue
        if ref.multi_frame:
            raise ImageReadError(source, f"frames {a[3]} and {b[3]} share the position "
                                 f"{dist[i]:.3f} mm along the slice normal (several stacks, "
                                 "phases or echoes in one file are not read as one volume)")
        raise ImageReadError(source, f"{headers[a[0].header_index].path} and "
                             f"{headers[b[0].header_index].path} share the position {dist[i]:.3f} mm "
                             "along the slice normal: the series holds several acquisitions "
                             "(echoes, phases, repeats); pass the files of one of them")
    cands = [cands[i] for i in keep]
    dist = dist[keep]
    positions = np.array([c[1] for c in cands], dtype=np.float64)

    meta["z_positions"] = [round(float(d), 6) for d in dist]
    meta["z_order"] = "position along the slice normal"
    if len(cands) > 1:
        steps = np.diff(dist)
        typical = float(np.median(steps))
        report = _spacing_report(steps, typical)
        z_mm = typical
        done = (f"resampled onto a regular {typical:.4g} mm grid (linear between the two nearest "
                "slices; z_grid='slices' keeps the stored slices)" if regular_z
                else "the volume is not resampled")
        if report["missing_slices"]:
            warn_at_caller(f"{source}: {report['missing_slices']} missing slice(s) "
                  f"(gaps {report['gaps']}); {done}")
        if report["uneven"]:
            warn_at_caller(f"{source}: uneven slice spacing (steps {sorted(set(report['steps_mm']))} "
                  f"mm, z spacing is the median {typical:.4g} mm); {done}")
        # mean displacement between neighbours; its angle to the normal is the gantry tilt
        displacement = (positions[-1] - positions[0]) / (dist[-1] - dist[0])
    else:
        report = None
        z_mm = fallback_step or 1.0
        displacement = None
    meta["spacing_report"] = report
    meta.update(_affine_meta(ref.orientation, positions[0], (row_mm, col_mm), displacement, z_mm))
    if meta.get("gantry_tilt_deg"):
        warn_at_caller(f"{source}: slice stack sheared by {meta['gantry_tilt_deg']:.2f}° (gantry "
              "tilt); the affine keeps the shear, the volume is not resampled")
    units = ("mm",) + yx_units
    z_grid = None
    if regular_z and report and (report["uneven"] or report["missing_slices"]):
        grid, lower, weight = regular_z_grid(dist, z_mm)
        z_grid = (lower, weight)
        meta["stored_z_positions"] = meta["z_positions"]
        meta["z_positions"] = [round(float(g), 6) for g in grid]
        meta["z_grid"] = {"step_mm": z_mm, "planes": len(grid), "stored_slices": len(cands),
                          "interpolation": "linear"}
    return SeriesGeometry([c[0] for c in cands], (z_mm, row_mm, col_mm), units, meta, z_grid)


def regular_z_grid(z_positions: Sequence[float], step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular grid from the first to the last slice at `step` mm, for slices at uneven
    positions (mixed thickness, missing slices).

    Args:
        z_positions: increasing slice positions along the normal (mm), N of them.
        step: grid step (mm), > 0.

    Returns:
        (grid positions (M,) mm, lower slice index (M,) int, weight (M,) float): grid plane k is
        `(1 - w[k]) * slice[i[k]] + w[k] * slice[i[k] + 1]` (w = 0 on a stored slice; the last
        grid plane may fall short of the last slice by less than one step).
    """
    z = np.asarray(z_positions, dtype=np.float64)
    count = int(np.floor((z[-1] - z[0]) / step + 1e-6)) + 1
    grid = z[0] + step * np.arange(count)
    lower = np.clip(np.searchsorted(z, grid + _POSITION_TOL_MM, side="right") - 1, 0, len(z) - 2)
    weight = np.clip((grid - z[lower]) / (z[lower + 1] - z[lower]), 0.0, 1.0)
    weight[np.abs(grid - z[lower]) <= _POSITION_TOL_MM] = 0.0  # on a stored slice: that slice exactly
    return grid, lower, weight


def _affine_meta(orientation, origin, row_col_mm, displacement, z_mm) -> dict[str, Any]:
    """Affine and orientation facts; `displacement` is the per-unit-normal slice offset or None."""
    cosines = np.asarray(orientation, dtype=np.float64)
    row_cos, col_cos = cosines[:3], cosines[3:]
    normal = np.cross(row_cos, col_cos)
    z_dir = normal if displacement is None else np.asarray(displacement, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, 0] = z_dir * z_mm               # z index: one slice step (may be sheared)
    affine[:3, 1] = col_cos * row_col_mm[0]     # y index = row number: along the column cosines
    affine[:3, 2] = row_cos * row_col_mm[1]     # x index = column number: along the row cosines
    affine[:3, 3] = np.asarray(origin, dtype=np.float64)
    codes = _orientation_code(normal) + _orientation_code(col_cos) + _orientation_code(row_cos)
    out: dict[str, Any] = {
        "affine": [[round(float(v), 6) for v in row] for row in affine],
        "affine_index_order": "zyx",
        "coordinate_system": "LPS",
        "orientation": codes,
        "array_orientation": codes,  # the same key as NIfTI's: where the returned z, y, x axes point
        "image_orientation_patient": [float(v) for v in cosines],
        "slice_normal": [round(float(v), 6) for v in normal],
        "oblique": _is_oblique(cosines),
    }
    if displacement is not None:
        unit = z_dir / np.linalg.norm(z_dir)
        tilt = math.degrees(math.acos(min(1.0, abs(float(np.dot(unit, normal))))))
        if tilt > 0.01:
            out["gantry_tilt_deg"] = round(tilt, 4)
    return out
