"""NIfTI reader: canonical RAS+ orientation, lazy regions, 4-D channels, scaling, bad files."""

import nibabel as nib
import numpy as np
import pytest

from domainssl.io import ImageReadError, open_image


def _canonical_reference(path) -> np.ndarray:
    """The full volume via nibabel's own as_closest_canonical, as (C, Z, Y, X)."""
    can = nib.as_closest_canonical(nib.load(str(path)))
    ref = np.asarray(can.dataobj)
    if ref.ndim == 3:
        ref = ref[..., None]
    return ref.transpose(3, 2, 1, 0)


@pytest.fixture
def lps_volume(tmp_path):
    """A 3-D int16 volume stored in LPS voxel order with 0.5 x 0.8 x 2.0 mm voxels and a known marker."""
    data = np.arange(10 * 12 * 6, dtype=np.int16).reshape(10, 12, 6)
    affine = np.diag([-0.5, -0.8, 2.0, 1.0])
    affine[:3, 3] = [30, 40, -6]
    path = tmp_path / "lps.nii"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path, data


def test_lps_file_is_read_in_ras_order_with_spacing(lps_volume):
    path, data = lps_volume
    img = open_image(path)
    assert img.format == "nifti" and img.axes == "CZYX"
    assert img.meta["orientation"] == "LPS" and img.meta["canonical_orientation"] == "RAS"
    assert img.meta["array_orientation"] == "SAR"  # z, y, x of the returned array, as DICOM gives it
    assert img.shape == (1, 6, 12, 10)
    assert img.spacing == pytest.approx((2.0, 0.8, 0.5)) and img.units == ("mm", "mm", "mm")
    full = img.read()
    # voxel (i, j, k) of the file lands at canonical x = 9 - i, y = 11 - j, z = k
    assert full[0, 4, 11 - 3, 9 - 2] == data[2, 3, 4]
    np.testing.assert_array_equal(full, _canonical_reference(path))
    # the canonical affine maps canonical voxel (x, y, z) to the same world point
    world_file = nib.load(str(path)).affine @ np.array([2, 3, 4, 1])
    world_can = np.array(img.meta["canonical_affine"]) @ np.array([9 - 2, 11 - 3, 4, 1])
    np.testing.assert_allclose(world_file, world_can)


def test_region_equals_full_read_slice(lps_volume):
    img = open_image(lps_volume[0])
    full = img.read()
    region = (slice(None), slice(1, 5), slice(2, 11, 3), slice(0, 7))
    np.testing.assert_array_equal(img.read(region), full[region])


def test_uncompressed_nifti_is_memory_mapped(lps_volume):
    img = open_image(lps_volume[0])
    # nibabel keeps an ArrayProxy (no pixels in memory) and maps the file on access
    assert not isinstance(img._img.dataobj, np.ndarray)
    assert img._img.dataobj.is_proxy


def test_4d_becomes_channels_and_scaling_applied(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, size=(5, 6, 7, 3)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, -10)
    path = tmp_path / "four_d.nii.gz"
    nib.save(img, str(path))
    im = open_image(path)
    assert im.shape == (3, 7, 6, 5) and im.channel_names == ["vol0", "vol1", "vol2"]
    assert im.dtype == np.float32 and im.meta["gzip"] is True
    out = im.read((slice(1, 2),))
    np.testing.assert_allclose(out[0, 4, 3, 2], data[2, 3, 4, 1] * 0.5 - 10)


def test_truncated_nifti_is_a_read_error(lps_volume, tmp_path):
    raw = lps_volume[0].read_bytes()
    bad = tmp_path / "cut.nii"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="truncated") as err:
        open_image(bad)
    assert str(bad) in str(err.value)


def test_a_level_or_series_a_nifti_cannot_honour_is_refused(lps_volume):
    # level=1 used to return the full-resolution volume as if it were level 1
    with pytest.raises(ImageReadError, match="level=1 asked, but nifti images have no pyramid levels"):
        open_image(lps_volume[0], level=1)
    with pytest.raises(ImageReadError, match="series='2' asked, but a nifti image holds one series"):
        open_image(lps_volume[0], series="2")
    assert open_image(lps_volume[0], level=0).shape == (1, 6, 12, 10)


def test_garbage_nifti_is_a_read_error(tmp_path):
    bad = tmp_path / "noise.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(ImageReadError, match="noise.nii.gz"):
        open_image(bad)


def test_real_files_match_nibabel_canonical(shared_data):
    for name in ("anatomical.nii", "example4d.nii.gz", "image_10426.nii.gz"):
        path = shared_data / "nifti" / name
        img = open_image(path)
        np.testing.assert_array_equal(img.read(), _canonical_reference(path).astype(img.dtype))
    anat = open_image(shared_data / "nifti" / "anatomical.nii")  # big-endian int16 on disk
    assert anat.dtype == np.dtype("int16") and anat.dtype.byteorder in ("=", "|")
    assert anat.spacing == (2.0, 2.0, 2.0)


def test_mni_template_values(shared_data):
    path = shared_data / "nifti" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    img = open_image(path)
    assert img.shape == (1, 189, 233, 197) and img.meta["orientation"] == "RAS"
    raw = np.asarray(nib.load(str(path)).dataobj)
    patch = img.read((slice(None), slice(90, 96), slice(100, 110), slice(80, 90)))
    np.testing.assert_array_equal(patch[0], raw[80:90, 100:110, 90:96].transpose(2, 1, 0))
