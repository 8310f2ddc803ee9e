"""DICOM reader: real series and single files from ../shared/data, generated edge cases."""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import dicom_factory as factory  # noqa: E402

from domainssl.io import ImageReadError, open_image  # noqa: E402
from domainssl.io import dicom as dicom_module  # noqa: E402
from domainssl.io.dicom import open_dicom  # noqa: E402
from domainssl.io.dicom_geometry import DicomGeometryWarning  # noqa: E402
from domainssl.io.dicom_series import NOT_AN_IMAGE, index_dicom_files  # noqa: E402

ALL = slice(None)


def _open_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomGeometryWarning)
        return open_image(*args, **kwargs)


def _raw_hu(path) -> np.ndarray:
    """Independent reference: pydicom's full decode with the file's slope/intercept."""
    import pydicom

    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0))


# ---------------------------------------------------------------------------------
# real files
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ge_series(shared_data):
    # the stored slices as they are (z_grid="slices"); the default regular grid is tested below
    folder = shared_data / "dicom" / "ct_head_series_ge"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = open_image(folder, z_grid="slices")
    return folder, image, [str(w.message) for w in caught if issubclass(w.category, DicomGeometryWarning)]


def test_ge_head_ct_geometry(ge_series):
    folder, image, warned = ge_series
    assert image.format == "dicom"
    assert image.shape == (1, 28, 512, 512) and image.axes == "CZYX"
    assert image.channel_names == ["CT"] and image.units == ("mm", "mm", "mm")
    assert image.spacing[1:] == pytest.approx((0.4882812, 0.4882812))
    # 4 mm slices, then 7 mm slices: median step along the tilted normal is 4.0 mm
    assert image.spacing[0] == pytest.approx(4.0, abs=0.01)
    report = image.meta["spacing_report"]
    assert report["uneven"] is True and report["missing_slices"] == 0
    assert sorted({round(s, 1) for s in report["steps_mm"]}) == [1.1, 4.0, 7.0]
    assert any("uneven" in w for w in warned) and any("gantry tilt" in w for w in warned)
    assert image.meta["gantry_tilt_deg"] == pytest.approx(18.5, abs=0.01)
    assert image.meta["value_unit"] == "HU" and image.meta["oblique"] is True
    z = np.array(image.meta["z_positions"])
    assert np.all(np.diff(z) > 0)
    # here position order happens to be file-name order 01..28
    assert [Path(f).name for f in image.files] == [f"{i:02d}.dcm" for i in range(1, 29)]


def test_ge_head_ct_hu_values_match_pydicom(ge_series):
    import pydicom

    folder, image, _ = ge_series
    # independent order: position along the normal computed here from the raw headers
    files = sorted(folder.glob("*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    order = np.argsort([np.dot(normal, np.array(h.ImagePositionPatient, dtype=float)) for h in headers])
    volume = image.read()
    assert volume.dtype == np.float32
    assert volume.min() == -1500.0 and volume.max() == 2121.0
    for z in (0, 13, 14, 27):
        np.testing.assert_array_equal(volume[0, z], _raw_hu(files[order[z]]))
    # known voxels (HU)
    assert volume[0, 0, 256, 256] == 997.0
    assert volume[0, 13, 200, 300] == 34.0
    assert volume[0, 14, 100, 256] == 37.0
    assert volume[0, 27, 256, 256] == 3.0
    # the affine maps voxel (z, y, x) to each slice's ImagePositionPatient
    affine = np.array(image.meta["affine"])
    for z in (0, 5, 13):
        ipp = np.array(headers[order[z]].ImagePositionPatient, dtype=float)
        expected_z = affine[:3, 3] + z * affine[:3, 0]
        np.testing.assert_allclose(expected_z, ipp, atol=1e-3)


def test_ge_uneven_slices_are_resampled_onto_a_regular_grid(ge_series):
    # 4 mm then 7 mm slices (one 1.08 mm step between): by default every z index is 4.002 mm from
    # the next, each plane linear between the two stored slices around it, so a patch of N mm is
    # N mm anywhere in the head and the affine holds for every index
    folder, stored, _ = ge_series
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = open_image(folder)
    assert any("resampled onto a regular 4.002 mm grid" in str(w.message) for w in caught)
    z = np.array(image.meta["stored_z_positions"])
    step = stored.spacing[0]
    assert image.spacing == pytest.approx(stored.spacing)
    grid = np.array(image.meta["z_positions"])
    assert image.shape == (1, len(grid), 512, 512) and len(grid) == 1 + int((z[-1] - z[0]) // step) == 37
    np.testing.assert_allclose(np.diff(grid), step, atol=1e-5)
    assert image.meta["z_grid"] == {"step_mm": step, "planes": 37, "stored_slices": 28, "interpolation": "linear"}
    raw, volume = stored.read()[0].astype(np.float64), image.read()[0].astype(np.float64)
    for k in (0, 5, 13, 20, 36):
        i = int(np.searchsorted(z, grid[k] + 1e-3)) - 1
        w = (grid[k] - z[i]) / (z[i + 1] - z[i]) if abs(grid[k] - z[i]) > 1e-3 else 0.0
        expected = raw[i] if w == 0 else (1 - w) * raw[i] + w * raw[i + 1]
        np.testing.assert_allclose(volume[k], expected, atol=2e-3 * 2121)
    np.testing.assert_array_equal(volume[:14], raw[:14])  # the evenly spaced part is the stored slices
    # the affine maps a grid index onto the line through the stored slices' positions
    affine = np.array(image.meta["affine"])
    stored_affine = np.array(stored.meta["affine"])
    np.testing.assert_allclose(affine, stored_affine, atol=1e-6)
    np.testing.assert_allclose(np.dot(image.meta["slice_normal"], affine[:3, 3] + 20 * affine[:3, 0]), grid[20],
                               atol=1e-3)
    # a region read equals the full read, interpolated planes included
    region = (ALL, slice(12, 19), slice(100, 196), slice(250, 346))
    np.testing.assert_array_equal(image.read(region), image.read()[region])
    assert pickle.loads(pickle.dumps(image)).read(region).shape == (1, 7, 96, 96)
    with pytest.raises(ImageReadError, match="z_grid='grid'"):
        open_image(folder, z_grid="grid")


def test_ge_region_reads_equal_full_read(ge_series):
    _, image, _ = ge_series
    full = image.read()
    for region in [(ALL, slice(3, 9), slice(100, 196), slice(250, 346)),
                   (ALL, slice(12, 16), slice(0, 512, 4), slice(7, 8)),
                   (ALL, slice(27, 28), slice(500, 512), slice(0, 512, 3))]:
        np.testing.assert_array_equal(image.read(region), full[region])


def test_single_ct_file_is_2d_in_hu(shared_data):
    path = shared_data / "dicom" / "single" / "CT_small.dcm"
    image = open_image(path)
    assert image.axes == "CYX" and image.shape == (1, 128, 128)
    assert image.spacing == pytest.approx((0.661468, 0.661468))
    data = image.read()
    np.testing.assert_array_equal(data[0], _raw_hu(path))
    assert data[0, 64, 64] == 904.0 and image.meta["value_unit"] == "HU"


def test_fractional_rescale_matches_float64_reference(shared_data):
    path = shared_data / "dicom" / "single" / "MR2_UNCR.dcm"
    image = open_image(path)
    assert image.shape == (1, 1024, 1024) and image.spacing == pytest.approx((0.195313, 0.195313))
    assert image.meta["rescale"]["slope"] == pytest.approx(3.774114)
    reference = _raw_hu(path).astype(np.float32)  # slope 3.774114, intercept 0.000061
    block = image.read((ALL, slice(300, 400), slice(500, 620)))
    np.testing.assert_array_equal(block[0], reference[300:400, 500:620])


def test_jpeg2000_lossless_decodes_equal_to_uncompressed(shared_data):
    single = shared_data / "dicom" / "single"
    plain = open_image(single / "MR_small.dcm")
    j2k = open_image(single / "MR_small_jp2klossless.dcm")
    assert j2k.meta["transfer_syntax"] == ["1.2.840.10008.1.2.4.90"]
    np.testing.assert_array_equal(j2k.read(), plain.read())
    np.testing.assert_array_equal(j2k.read((ALL, slice(10, 30), slice(5, 60, 2))),
                                  plain.read()[:, 10:30, 5:60:2])


def test_jpeg2000_lossy_nm_file(shared_data):
    path = shared_data / "dicom" / "single" / "JPEG2000.dcm"
    image = open_image(path)
    assert image.shape == (1, 1024, 256) and image.channel_names == ["NM"]
    assert image.spacing == pytest.approx((2.26, 2.26))
    np.testing.assert_array_equal(image.read()[0], _raw_hu(path))


def test_multiframe_mr_frames_are_z(shared_data):
    import pydicom

    path = shared_data / "dicom" / "single" / "emri_small.dcm"
    with pytest.warns(DicomGeometryWarning, match="no ImagePositionPatient"):
        image = open_image(path)
    assert image.axes == "CZYX" and image.shape == (1, 10, 64, 64)
    assert image.spacing[0] == pytest.approx(1.2) and image.units == ("mm", "px", "px")
    frames = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(image.read()[0], frames)
    np.testing.assert_array_equal(image.read((ALL, slice(4, 7), slice(8, 40))), frames[None, 4:7, 8:40])


def test_enhanced_ct_frames_ordered_by_position(shared_data):
    import pydicom

    path = shared_data / "dicom" / "single" / "eCT_Supplemental.dcm"
    image = open_image(path)
    assert image.shape == (1, 2, 512, 512) and image.channel_names == ["CT"]
    assert image.spacing == pytest.approx((10.0, 0.388672, 0.388672))
    # stored frame 0 sits at z=-159 and frame 1 at z=-149; the normal is -z, so frame 1 comes first
    frames = pydicom.dcmread(path).pixel_array.astype(np.float64) - 1024.0
    data = image.read()
    np.testing.assert_array_equal(data[0, 0], frames[1])
    np.testing.assert_array_equal(data[0, 1], frames[0])
    assert image.meta["value_unit"] == "HU" and image.meta["orientation"] == image.meta["array_orientation"] == "IPR"


def test_ultrasound_rgb(shared_data):
    import pydicom

    path = shared_data / "dicom" / "single" / "US1_UNCR.dcm"
    image = open_image(path)
    assert image.shape == (3, 480, 640) and image.channel_names == ["R", "G", "B"]
    rgb = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(image.read(), np.moveaxis(rgb, -1, 0))
    np.testing.assert_array_equal(image.read((slice(1, 3), slice(100, 120), slice(0, 640, 7))),
                                  np.moveaxis(rgb, -1, 0)[1:3, 100:120, ::7])


def test_folder_with_duplicate_instance_dedupes(shared_data):
    # MR_small and its JPEG 2000 twin are the same SOP instance: one slice, with a warning
    single = shared_data / "dicom" / "single"
    files = [single / "MR_small.dcm", single / "MR_small_jp2klossless.dcm"]
    with pytest.warns(DicomGeometryWarning, match="repeats SOPInstanceUID"):
        image = open_image(files)
    assert image.shape == (1, 64, 64) and image.axes == "CYX"


def test_shared_single_folder_lists_its_series(shared_data):
    with pytest.raises(ImageReadError) as err:
        open_image(shared_data / "dicom" / "single")
    message = str(err.value)
    assert "choose one with series=" in message
    assert "1.3.6.1.4.1.5962.1.3.10.3.1166562673.14401 [CT]" in message  # enhanced CT
    assert "[US]" in message and "[NM]" in message


# ---------------------------------------------------------------------------------
# generated edge cases
# ---------------------------------------------------------------------------------
def test_two_series_in_one_folder(tmp_path):
    a = factory.write_series(tmp_path, n=4, description="head", name_prefix="a_", seed=1)
    b = factory.write_series(tmp_path, n=3, modality="MR", description="t1", name_prefix="b_", seed=2,
                             rows=8, cols=8)
    with pytest.raises(ImageReadError) as err:
        open_image(tmp_path)
    message = str(err.value)
    assert "2 DICOM series" in message
    assert f"{a.uid} [CT] 'head': 4 slices in 4 files" in message
    assert f"{b.uid} [MR] 't1': 3 slices in 3 files" in message
    for generated in (a, b):
        image = open_image(tmp_path, series=generated.uid)
        np.testing.assert_array_equal(image.read()[0], generated.hu)
        described = image.describe()
        assert described["series"] == generated.uid and described["path"] == str(tmp_path)
        reopened = open_image(described["path"], series=described["series"])
        assert reopened.shape == image.shape
    with pytest.raises(ImageReadError, match="not found"):
        open_image(tmp_path, series="1.2.3")


def test_order_by_position_not_names_or_instance_numbers(tmp_path):
    generated = factory.write_series(tmp_path, n=7, shuffle=True, seed=3)
    image = open_image(tmp_path)
    # the factory's names/InstanceNumbers are a permutation unrelated to position
    assert [Path(f).name for f in image.files] != sorted(Path(f).name for f in image.files)
    assert [Path(f) for f in image.files] == generated.files
    np.testing.assert_array_equal(image.read()[0], generated.hu)
    assert image.spacing == pytest.approx(generated.spacing, abs=1e-5)
    assert image.meta["spacing_report"]["uneven"] is False
    assert image.meta["spacing_report"]["missing_slices"] == 0


def test_oblique_series_spacing_and_affine(tmp_path):
    orientation = factory.oblique_orientation(30.0)
    generated = factory.write_series(tmp_path, n=5, orientation=orientation, spacing=(3.0, 0.6, 0.9))
    image = open_image(tmp_path)
    assert image.spacing == pytest.approx((3.0, 0.6, 0.9), abs=1e-5)
    assert image.meta["oblique"] is True and "gantry_tilt_deg" not in image.meta
    np.testing.assert_allclose(image.meta["image_orientation_patient"], orientation, atol=1e-7)
    affine = np.array(image.meta["affine"])
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    for z in range(5):
        for y, x in [(0, 0), (3, 7)]:
            expected = generated.positions[z] + y * 0.6 * col + x * 0.9 * row
            np.testing.assert_allclose(affine @ [z, y, x, 1], list(expected) + [1], atol=1e-4)
    np.testing.assert_array_equal(image.read()[0], generated.hu)


def test_missing_slice_is_reported_and_filled_between_its_neighbours(tmp_path):
    generated = factory.write_series(tmp_path, n=8, skip=[5], spacing=(2.0, 0.5, 0.5))
    with pytest.warns(DicomGeometryWarning, match="1 missing slice.*resampled onto a regular 2 mm grid"):
        image = open_image(tmp_path)
    report = image.meta["spacing_report"]
    assert report["missing_slices"] == 1 and report["uneven"] is False
    assert report["gaps"] == [{"after_slice": 4, "missing": 1, "step_mm": pytest.approx(4.0, abs=1e-4)}]
    # 8 planes 2 mm apart: the 6th (index 5), lost, is the mean of its neighbours
    assert image.shape[1] == 8 and image.spacing[0] == pytest.approx(2.0, abs=1e-5)
    hu = generated.hu.astype(np.float32)
    volume = image.read()[0]
    np.testing.assert_array_equal(volume[[0, 1, 2, 3, 4, 6, 7]], hu)
    np.testing.assert_allclose(volume[5], (hu[4] + hu[5]) / 2, rtol=1e-6)
    with pytest.warns(DicomGeometryWarning, match="1 missing slice.*not resampled"):
        stored = open_image(tmp_path, z_grid="slices")
    assert stored.shape[1] == 7
    np.testing.assert_array_equal(stored.read()[0], generated.hu)


def test_per_slice_rescale_and_regions(tmp_path):
    generated = factory.write_series(tmp_path, n=6, per_slice_rescale=True, rows=16, cols=12)
    image = open_image(tmp_path)
    assert image.meta["rescale"] == "per slice"
    full = image.read()
    np.testing.assert_array_equal(full[0], generated.hu)
    for region in [(ALL, slice(1, 4), slice(2, 9), slice(3, 11)),
                   (ALL, slice(0, 6, 2), slice(None), slice(0, 12, 5)),
                   (ALL, slice(5, 6), slice(15, 16), slice(11, 12)),
                   (ALL, slice(2, 2))]:
        np.testing.assert_array_equal(image.read(region), full[region])


def test_compressed_series_region_reads(tmp_path):
    generated = factory.write_series(tmp_path, n=4, compress_rle=True)
    image = open_image(tmp_path)
    assert image.meta["transfer_syntax"] == ["1.2.840.10008.1.2.5"]
    full = image.read()
    np.testing.assert_array_equal(full[0], generated.hu)
    region = (ALL, slice(1, 3), slice(4, 10), slice(2, 7))
    np.testing.assert_array_equal(image.read(region), full[region])


def test_z_range_read_touches_only_its_files(tmp_path, monkeypatch):
    generated = factory.write_series(tmp_path, n=10, shuffle=True, seed=5)
    image = open_image(tmp_path)
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(Path(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(dicom_module, "open", counting_open, raising=False)
    block = image.read((ALL, slice(3, 6), slice(2, 5), slice(1, 4)))
    assert opened == generated.files[3:6]
    np.testing.assert_array_equal(block[0], generated.hu[3:6, 2:5, 1:4])


def test_compressed_z_range_decodes_only_its_files(tmp_path, monkeypatch):
    generated = factory.write_series(tmp_path, n=6, compress_rle=True, seed=6)
    image = open_image(tmp_path)
    decoded = []
    real_decode = dicom_module._decode_with_pydicom

    def counting_decode(header, *args):
        decoded.append(Path(header.path))
        return real_decode(header, *args)

    monkeypatch.setattr(dicom_module, "_decode_with_pydicom", counting_decode)
    image.read((ALL, slice(4, 6)))
    assert decoded == generated.files[4:6]


def test_unused_high_bits_match_pydicom(tmp_path):
    import pydicom

    stored = np.array([[-2048, -1, 0, 2047], [5, -5, 100, -100]], dtype=np.int16)
    garbage = (stored.view(np.uint16) & 0x0FFF) | 0xA000  # 12-bit values, junk in the top 4 bits
    path = factory.write_slice(tmp_path / "x.dcm", stored, series_uid="1.2.3.4", bits_stored=12,
                               intercept=0.0, raw_pixel_bytes=garbage.astype("<u2").tobytes())
    expected = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(expected, stored)
    np.testing.assert_array_equal(open_image(path).read()[0], stored)


def test_implicit_vr_file_reads_at_the_right_offset(tmp_path):
    import pydicom

    stored = np.arange(-60, 60, dtype=np.int16).reshape(10, 12)
    path = factory.write_slice(tmp_path / "implicit.dcm", stored, series_uid="1.2.3.5", implicit_vr=True,
                               slope=2.0, intercept=-10.0)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    image = open_image(path)
    assert image.headers[0].pixel_offset is not None  # the seek path, not the decoder
    np.testing.assert_array_equal(image.read()[0], stored * 2.0 - 10.0)
    np.testing.assert_array_equal(image.read((ALL, slice(3, 7), slice(5, 9)))[0], stored[3:7, 5:9] * 2.0 - 10.0)


def test_big_endian_file_reads_at_the_right_offset(tmp_path):
    stored = np.arange(-60, 60, dtype=np.int16).reshape(10, 12)
    little = factory.write_slice(tmp_path / "le.dcm", stored, series_uid="1.2.3.6", intercept=-1000.0)
    image = open_image(factory.rewrite_big_endian(little, tmp_path / "be.dcm"))
    assert image.meta["transfer_syntax"] == ["1.2.840.10008.1.2.2"]
    assert image.headers[0].pixel_offset is not None
    np.testing.assert_array_equal(image.read()[0], stored - 1000.0)
    np.testing.assert_array_equal(image.read((ALL, slice(2, 5), slice(7, 12)))[0], stored[2:5, 7:12] - 1000.0)


def test_truncated_pixel_data_names_the_file(tmp_path):
    generated = factory.write_series(tmp_path, n=5)
    bad = factory.truncate(generated.files[2], generated.files[2].stat().st_size - 37)
    with pytest.raises(ImageReadError) as err:
        open_image(tmp_path)
    assert str(bad) in str(err.value) and "truncated" in str(err.value)
    with pytest.raises(ImageReadError, match="truncated"):
        open_image(bad)
    series, rejected = index_dicom_files(generated.files)
    assert [p for p, _ in rejected] == [str(bad)] and series[0].n_files == 4


def test_chosen_series_opens_beside_broken_files_of_others(tmp_path):
    a = factory.write_series(tmp_path, n=3, name_prefix="a_", seed=11)
    b = factory.write_series(tmp_path, n=3, name_prefix="b_", seed=12)
    bad = factory.truncate(a.files[1], a.files[1].stat().st_size - 10)
    (tmp_path / "junk.dcm").write_bytes(b"\x01" * 64)
    with pytest.raises(ImageReadError, match="2 unreadable"):
        open_image(tmp_path)
    with pytest.warns(UserWarning, match="ignored 2 unreadable DICOM file"):
        image = open_image(tmp_path, series=b.uid)
    np.testing.assert_array_equal(image.read()[0], b.hu)
    # the truncated slice names its own series: opening that series fails, naming it
    with pytest.raises(ImageReadError, match="truncated") as err, \
            pytest.warns(UserWarning, match="ignored 1 unreadable DICOM file.*junk.dcm"):
        open_image(tmp_path, series=a.uid)
    assert err.value.path == str(bad)


def test_truncated_header_names_the_file(tmp_path):
    path = factory.write_slice(tmp_path / "x.dcm", np.zeros((4, 4), np.int16), series_uid="1.2.3")
    factory.truncate(path, 300)
    with pytest.raises(ImageReadError) as err:
        open_image(path)
    assert err.value.path == str(path)


def test_every_cut_of_a_slice_is_an_error_never_a_silent_skip(tmp_path):
    # pydicom stops quietly at a short element value; wherever the copy was cut, the series
    # must fail naming the file instead of opening with the slice left out
    generated = factory.write_series(tmp_path, n=3, rows=6, cols=6)
    victim = generated.files[1]
    intact = victim.read_bytes()
    for keep in range(0, len(intact), 11):
        victim.write_bytes(intact[:keep])
        with pytest.raises(ImageReadError) as err:
            open_image(tmp_path)
        assert str(victim) in str(err.value), keep


def test_truncated_compressed_file(tmp_path):
    generated = factory.write_series(tmp_path, n=2, compress_rle=True)
    bad = factory.truncate(generated.files[0], generated.files[0].stat().st_size - 20)
    with pytest.raises(ImageReadError, match="truncated") as err:
        open_image(bad)
    assert err.value.path == str(bad)


def test_mismatched_slices_are_an_error(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.77"
    factory.write_slice(tmp_path / "a.dcm", np.zeros((8, 8), np.int16), series_uid=uid, position=(0, 0, 0))
    factory.write_slice(tmp_path / "b.dcm", np.zeros((8, 6), np.int16), series_uid=uid, position=(0, 0, 1))
    with pytest.raises(ImageReadError, match="cols is 6 but 8"):
        open_image(tmp_path)
    (tmp_path / "b.dcm").unlink()
    factory.write_slice(tmp_path / "c.dcm", np.zeros((8, 8), np.int16), series_uid=uid, position=(0, 0, 1),
                        orientation=factory.oblique_orientation(20))
    with pytest.raises(ImageReadError, match="ImageOrientationPatient"):
        open_image(tmp_path)


def test_two_acquisitions_at_one_position_are_an_error(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.78"
    for i, name in enumerate(["a.dcm", "b.dcm", "c.dcm"]):
        factory.write_slice(tmp_path / name, np.zeros((4, 4), np.int16), series_uid=uid,
                            position=(0, 0, min(i, 1)))
    with pytest.raises(ImageReadError, match="share the position"):
        open_image(tmp_path)


def test_non_dicom_and_non_image_files(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    generated = factory.write_series(tmp_path, n=3)
    (tmp_path / "README.md").write_text("not dicom")
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 50)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # a basic text SR
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    report = Dataset()
    report.file_meta = meta
    report.SOPClassUID = meta.MediaStorageSOPClassUID
    report.SeriesInstanceUID = "1.2.3.4"
    report.save_as(tmp_path / "report.dcm", enforce_file_format=True)

    series, rejected = index_dicom_files(sorted(tmp_path.glob("*.dcm")))
    reasons = dict(rejected)
    assert set(reasons) == {str(tmp_path / "junk.dcm"), str(tmp_path / "report.dcm")}
    assert reasons[str(tmp_path / "report.dcm")].startswith(NOT_AN_IMAGE)
    assert "not a readable DICOM file" in reasons[str(tmp_path / "junk.dcm")]
    assert [s.uid for s in series] == [generated.uid]
    # the corrupt file makes the folder open fail (named); without it the report is ignored
    with pytest.raises(ImageReadError, match="junk.dcm"):
        open_image(tmp_path)
    (tmp_path / "junk.dcm").unlink()
    np.testing.assert_array_equal(open_image(tmp_path).read()[0], generated.hu)


def test_open_from_series_info_reads_no_header_again(tmp_path, monkeypatch):
    from domainssl.io import dicom_series

    generated = factory.write_series(tmp_path, n=4)
    (info,), rejected = index_dicom_files(sorted(tmp_path.glob("*.dcm")))
    assert not rejected and info.n_files == 4 and info.modality == "CT"

    def fail(path):
        raise AssertionError(f"header read again: {path}")

    monkeypatch.setattr(dicom_series, "read_header", fail)
    image = open_dicom(info, series=info.uid)
    np.testing.assert_array_equal(image.read()[0], generated.hu)


def test_single_slice_of_a_series_is_2d(tmp_path):
    generated = factory.write_series(tmp_path, n=3, rows=6, cols=5)
    image = open_image(generated.files[1])
    assert image.axes == "CYX" and image.shape == (1, 6, 5) and image.spacing == (0.5, 0.75)
    np.testing.assert_array_equal(image.read()[0], generated.hu[1])


def test_image_pickles_for_workers(tmp_path):
    generated = factory.write_series(tmp_path, n=3)
    image = pickle.loads(pickle.dumps(open_image(tmp_path)))
    np.testing.assert_array_equal(image.read()[0], generated.hu)


def test_missing_decoder_says_what_to_install(tmp_path, monkeypatch):
    import pydicom.pixels

    path = factory.write_encapsulated(tmp_path / "mpeg.dcm", "1.2.840.10008.1.2.4.100")
    with pytest.raises(ImageReadError, match="has no pixel decoder"):
        open_image(path)
    j2k = factory.write_encapsulated(tmp_path / "j2k.dcm", "1.2.840.10008.1.2.4.90")
    unavailable = SimpleNamespace(is_available=False, missing_dependencies=["x"])
    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: unavailable)
    with pytest.raises(ImageReadError, match="pip install pylibjpeg pylibjpeg-openjpeg") as err:
        open_image(j2k)
    assert err.value.path == str(j2k)


def test_corrupt_compressed_pixels_are_an_image_read_error(tmp_path):
    path = factory.write_encapsulated(tmp_path / "j2k.dcm", "1.2.840.10008.1.2.4.90")
    image = open_image(path)  # headers are fine
    with pytest.raises(ImageReadError, match="cannot decode pixel data") as err:
        image.read()
    assert err.value.path == str(path)


def test_ybr_full_is_converted_to_rgb(tmp_path):
    import pydicom

    rng = np.random.default_rng(7)
    ybr = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    path = factory.write_colour(tmp_path / "ybr.dcm", ybr, "YBR_FULL")
    image = open_image(path)
    assert image.shape == (3, 9, 7) and image.channel_names == ["R", "G", "B"]
    rgb = pydicom.pixels.convert_color_space(ybr, "YBR_FULL", "RGB")
    np.testing.assert_array_equal(image.read(), np.moveaxis(rgb, -1, 0))
    assert not np.array_equal(rgb, ybr)
    np.testing.assert_array_equal(image.read((slice(0, 2), slice(3, 8), slice(1, 6))),
                                  np.moveaxis(rgb, -1, 0)[0:2, 3:8, 1:6])


def test_palette_colour_is_applied(tmp_path):
    rng = np.random.default_rng(8)
    palette = rng.integers(0, 65536, size=(256, 3)).astype(np.uint16)
    index = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
    path = factory.write_colour(tmp_path / "pal.dcm", index, "PALETTE COLOR", palette=palette)
    image = open_image(path)
    assert image.shape == (3, 6, 5) and image.channel_names == ["R", "G", "B"]
    expected = np.moveaxis(palette[index], -1, 0)
    np.testing.assert_array_equal(image.read(), expected)
    np.testing.assert_array_equal(image.read((slice(2, 3), slice(1, 4), slice(2, 5))), expected[2:3, 1:4, 2:5])


def test_multi_frame_file_inside_a_series_is_an_error(tmp_path, shared_data):
    import shutil

    emri = shared_data / "dicom" / "single" / "emri_small.dcm"
    generated = factory.write_series(tmp_path, n=2, series_uid="1.2.826.0.1.3680043.2.1143."
                                     "3712364435022872412969836992152438492")
    shutil.copy(emri, tmp_path / "emri.dcm")
    with pytest.raises(ImageReadError, match="multi-frame"):
        open_image(tmp_path)
    assert len(generated.files) == 2


@pytest.mark.parametrize("compress", [False, True])
def test_multiframe_z_range_decodes_only_its_frames(tmp_path, monkeypatch, compress):
    import pydicom.pixels

    stored = np.random.default_rng(9).integers(-500, 500, size=(7, 9, 8)).astype(np.int16)
    path = factory.write_multiframe(tmp_path / "mf.dcm", stored, compress_rle=compress)
    with pytest.warns(DicomGeometryWarning, match="stored frame order"):
        image = open_image(path)
    assert image.shape == (1, 7, 9, 8) and image.spacing == pytest.approx((1.5, 0.8, 0.9))
    np.testing.assert_array_equal(image.read()[0], stored)
    requested = []
    real_iter = pydicom.pixels.iter_pixels

    def recording_iter(src, **kwargs):
        requested.append(list(kwargs["indices"]))
        return real_iter(src, **kwargs)

    monkeypatch.setattr(pydicom.pixels, "iter_pixels", recording_iter)
    block = image.read((ALL, slice(2, 5), slice(1, 7), slice(3, 8)))
    np.testing.assert_array_equal(block[0], stored[2:5, 1:7, 3:8])
    # compressed frames go through pydicom, asking for frames 2..4 only; native ones are seeked to
    assert requested == ([[2, 3, 4]] if compress else [])
