"""NIfTI-1/2 reader (.nii memory-mapped, .nii.gz streamed) with a canonical RAS+ orientation.

Canonical orientation (documented contract): whatever the file's voxel order, `read` returns
`(C, Z, Y, X)` where X runs towards the patient's Right (R+), Y towards Anterior (A+) and Z
towards Superior (S+), i.e. the closest RAS+ voxel grid
(the same choice as `nibabel.as_closest_canonical`). It is done lazily by mapping the
requested region back onto the file's own voxel axes (permute + flip), so only that region's
bytes are read; nibabel's `as_closest_canonical` would load the whole array first.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import ImageReadError
from .image import LazyImage

# NIfTI xyzt_units spatial codes -> our unit strings.
_UNITS = {"meter": "m", "mm": "mm", "micron": "µm", "unknown": "mm"}


class NiftiImage(LazyImage):
    """A lazily read NIfTI volume; axes `CZYX` in the closest RAS+ orientation.

    A 4th data dimension (time points, vector components) becomes the channel axis.
    `meta` keeps the file's own affine (`affine`), the canonical one (`canonical_affine`,
    mapping (x, y, z) canonical voxel indices to RAS+ world mm), `orientation`
    (the file's own x, y, z axis codes, e.g. "LPS"), `array_orientation` (where the returned
    z, y, x axes point: always "SAR", the same key as DICOM series), `qform_code`, `sform_code` and `gzip` (True for
    .nii.gz, where a region read still decompresses the stream up to that region).
    """

    format = "nifti"

    def __init__(self, path):
        import nibabel as nib
        from nibabel.orientations import inv_ornt_aff, io_orientation

        try:
            img = nib.load(str(path), mmap=True)
        except Exception as exc:  # nibabel raises many types for bad headers
            raise ImageReadError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
        self._img = img
        hdr = img.header
        shape = tuple(int(s) for s in img.shape)
        if len(shape) < 3:
            shape = shape + (1,) * (3 - len(shape))
        if len(shape) > 4 and any(s > 1 for s in shape[4:]):
            raise ImageReadError(path, f"{len(shape)}-D NIfTI {shape}: only 3-D volumes and 4-D "
                                 "(volumes as channels) are supported; split the file first")
        n_chan = shape[3] if len(shape) >= 4 else 1
        self._file_shape = shape[:3]
        self._ndim = len(img.shape)
        # Check the file size against the header before any read: a truncated .nii would
        # otherwise fail (or return garbage through the memory map) at training time.
        self._check_size(path, hdr, img)

        affine = img.affine
        ornt = io_orientation(affine)
        self._ornt = ornt
        if not np.isfinite(ornt).all():
            raise ImageReadError(path, "affine has no usable orientation (singular matrix)")
        # canonical axis a (0=x/R, 1=y/A, 2=z/S) <- file axis _src[a]
        self._src = [int(np.flatnonzero(ornt[:, 0] == a)[0]) for a in range(3)]
        self._flip = [bool(ornt[n, 1] < 0) for n in range(3)]
        zooms = [float(z) for z in hdr.get_zooms()[:3]]
        canon_shape = [self._file_shape[self._src[a]] for a in range(3)]
        canon_zooms = [zooms[self._src[a]] for a in range(3)]
        canonical_affine = affine @ inv_ornt_aff(ornt, self._file_shape)

        space_unit, _ = hdr.get_xyzt_units()
        unit = _UNITS.get(space_unit, "mm")
        slope, inter = img.dataobj.slope, img.dataobj.inter
        scaled = not (slope in (1, None) and inter in (0, None)) and np.isfinite([slope, inter]).all()
        dtype = np.float32 if scaled else img.get_data_dtype().newbyteorder("=")

        qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
        meta = {
            "affine": affine.tolist(),
            "canonical_affine": canonical_affine.tolist(),
            "orientation": "".join(nib.aff2axcodes(affine)),
            "canonical_orientation": "RAS",
            "array_orientation": "SAR",  # the returned (z, y, x) axes, as DICOM's meta gives them
            "qform_code": qcode,
            "sform_code": scode,
            "scl_slope": float(slope) if scaled else 1.0,
            "scl_inter": float(inter) if scaled else 0.0,
            "gzip": str(path).lower().endswith(".gz"),
            "value_unit": None,
        }
        if qcode > 0 and scode > 0:
            qform = hdr.get_qform()
            sform = hdr.get_sform()
            if not np.allclose(qform, sform, atol=1e-3):
                meta["qform_sform_mismatch"] = True
                warnings.warn(f"{path}: qform and sform disagree; using the sform "
                              "(nibabel's choice). Check the file's provenance.", stacklevel=3)
        names = [f"vol{i}" for i in range(n_chan)] if n_chan > 1 else [hdr.get_intent()[0] or "intensity"]
        if names == ["none"]:
            names = ["intensity"]
        super().__init__(path, (n_chan, canon_shape[2], canon_shape[1], canon_shape[0]), "CZYX",
                         (canon_zooms[2], canon_zooms[1], canon_zooms[0]), (unit,) * 3, names,
                         dtype, meta)

    @staticmethod
    def _check_size(path, hdr, img):
        if str(path).lower().endswith(".gz"):
            return  # size unknown until decompressed; truncation surfaces as a read error
        import os

        need = int(hdr.get_data_offset()) + int(np.prod(img.shape)) * hdr.get_data_dtype().itemsize
        have = os.path.getsize(path)
        if have < need:
            raise ImageReadError(path, f"truncated: header needs {need} bytes, file has {have}")

    def _read(self, bounds):
        (c0, c1), z, y, x = bounds
        canon = {0: x, 1: y, 2: z}
        slices = [slice(None)] * 3
        for a in range(3):
            n = self._src[a]
            start, stop = canon[a]
            size = self._file_shape[n]
            slices[n] = slice(size - stop, size - start) if self._flip[n] else slice(start, stop)
        index = tuple(slices) + ((slice(c0, c1),) if self._ndim >= 4 else ())
        if self._ndim > 4:
            index = index + (0,) * (self._ndim - 4)
        try:
            block = np.asarray(self._img.dataobj[index])
        except Exception as exc:
            raise ImageReadError(self.path, f"reading voxels failed ({type(exc).__name__}: {exc})") from exc
        if self._ndim < 4:
            block = block.reshape(block.shape[:3] + (1,))
        flips = [n for n in range(3) if self._flip[n]]
        if flips:
            block = np.flip(block, axis=flips)
        # file axes (n0, n1, n2, C) -> (C, z, y, x) = (C, src[2], src[1], src[0])
        block = block.transpose(3, self._src[2], self._src[1], self._src[0])
        return block.astype(self.dtype, copy=False)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_img"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        import nibabel as nib

        self._img = nib.load(self.path, mmap=True)


def open_nifti(path, **kwargs) -> NiftiImage:
    """Open a `.nii` / `.nii.gz` file lazily (headers only). See `NiftiImage`."""
    if kwargs:
        raise TypeError(f"open_nifti got unexpected options {sorted(kwargs)}")
    return NiftiImage(path)
