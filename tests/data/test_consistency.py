"""Which images train together (select_consistent) and the warnings about what they still mix."""

from domainssl.data.consistency import mixed_scale_message, mixed_units_message, select_consistent


def test_select_consistent_filters():
    recs = [{"format": "geotiff", "axes": "CYX", "channel_names": ["a", "b"], "shape": [2, 8, 8]}] * 3 + \
           [{"format": "geotiff", "axes": "CYX", "channel_names": ["a"], "shape": [1, 8, 8]}] + \
           [{"format": "nifti", "axes": "CZYX", "channel_names": ["t1"], "shape": [1, 4, 8, 8]}]
    kept, dropped = select_consistent(recs)
    assert len(kept) == 3 and sum(dropped.values()) == 2
    kept, dropped = select_consistent(recs, spatial_dims=3)
    assert [r["format"] for r in kept] == ["nifti"]
    # channels choose images that hold them, read as those channels (in that order)
    kept, dropped = select_consistent(recs, channels=["a"])
    assert len(kept) == 4 and all(r["channel_names"] == ["a"] for r in kept)
    assert [r.get("channel_index") for r in kept] == [[0]] * 3 + [None]
    assert kept[0]["shape"] == [1, 8, 8] and recs[0]["channel_names"] == ["a", "b"]  # copies
    kept, dropped = select_consistent(recs, channels=["b", "a"])
    assert len(kept) == 3 and kept[0]["channel_index"] == [1, 0]
    assert "channels ['b'] missing" in " ".join(dropped)
    kept, _ = select_consistent(recs, channels="t1")                # one name, not its letters
    assert [r["format"] for r in kept] == ["nifti"]


def test_mixed_pixel_spacings_with_pixel_patches_are_reported():
    rec = {"axes": "CYX", "channel_names": ["B02"], "units": ["m", "m"]}
    same = [{**rec, "spacing": [10.0, 10.0]}, {**rec, "spacing": [10.0, 10.0]}]
    mixed = same + [{**rec, "spacing": [20.0, 20.0]}]
    assert mixed_scale_message(same, "px") is None
    assert mixed_scale_message(mixed, "m") is None  # physical patches: resampled to one scale
    assert mixed_scale_message([{**rec, "spacing": [1.0, 1.0], "units": ["px", "px"]}] * 2, "px") is None
    assert mixed_scale_message(same + [{**rec, "spacing": [10.5, 10.5]}], "px") is None  # within 10 %
    text = mixed_scale_message(mixed, "px")
    assert "2 at 10 x 10 m, 1 at 20 x 20 m" in text and "data.patch_unit: m" in text
    # anisotropic volumes (3 x 0.7 mm) within 10 % per axis or float noise in spacings are not a
    # mixed scale; degrees next to metres are
    vol = {"axes": "CZYX", "channel_names": ["CT"], "units": ["mm"] * 3}
    assert mixed_scale_message([{**vol, "spacing": [3, 0.70, 0.70]}, {**vol, "spacing": [3, 0.71, 0.71]},
                                {**vol, "spacing": [3.0000001, 0.7, 0.7]}], "px") is None
    assert "1 at 3 x 0.7 x 0.7 mm, 1 at 3 x 1.4 x 1.4 mm" in mixed_scale_message(
        [{**vol, "spacing": [3, 0.7, 0.7]}, {**vol, "spacing": [3, 1.4, 1.4]}], "px")
    text = mixed_scale_message([{**rec, "spacing": [10.0, 10.0]},
                                {**rec, "spacing": [1e-4, 1e-4], "units": ["deg", "deg"]}], "px")
    assert "different units (1 in m/m, 1 in deg/deg)" in text


def test_mixed_value_units_are_reported():
    hu = {"meta": {"value_unit": "HU"}}
    assert mixed_units_message([hu, hu]) is None and mixed_units_message([{}, {"meta": {}}]) is None
    assert "(2 HU, 1 not declared)" in mixed_units_message([hu, hu, {"meta": {"value_unit": None}}])


def test_uncalibrated_images_next_to_calibrated_ones_are_reported():
    rec = {"axes": "CYX", "channel_names": ["DNA"]}
    um = [{**rec, "spacing": [0.5, 0.5], "units": ["µm", "µm"]}] * 2
    px = [{**rec, "spacing": [1.0, 1.0], "units": ["px", "px"]}]
    text = mixed_scale_message(um + px, "px")
    assert "1 image(s) carry no pixel spacing (px) next to 2 in µm/µm" in text


def test_card_spacing_and_units_come_from_the_images_that_share_them():
    # one uncalibrated image and two at 0.5 µm: the card says 0.5 µm, not a median of px and µm
    from domainssl.data.datamodule import PatchDataModule

    rec = {"axes": "CYX", "channel_names": ["DNA"]}
    dm = PatchDataModule.__new__(PatchDataModule)
    dm.records = [{**rec, "spacing": [1.0, 1.0], "units": ["px", "px"]},
                  {**rec, "spacing": [0.5, 0.5], "units": ["µm", "µm"]},
                  {**rec, "spacing": [0.6, 0.6], "units": ["µm", "µm"]}]
    assert dm.units == ["µm", "µm"] and dm.spacing == [0.55, 0.55]
    dm.records = dm.records[:2]                    # a tie: the calibrated unit
    assert dm.units == ["µm", "µm"] and dm.spacing == [0.5, 0.5]


def test_images_smaller_than_the_patch_are_reported():
    from domainssl.data.consistency import oversized_patch_message

    vol = {"axes": "CZYX", "channel_names": ["CT"], "units": ["mm"] * 3}
    big = {**vol, "path": "/a/ct_big", "shape": [1, 100, 200, 200], "spacing": [1.5, 0.7, 0.7]}
    slab = {**vol, "path": "/a/ect_slab.dcm", "shape": [1, 2, 512, 512], "spacing": [10.0, 0.5, 0.5]}
    assert oversized_patch_message([big], [96.0], "mm") is None
    text = oversized_patch_message([big, slab], [96.0], "mm")
    assert "larger than 1 of 2 image(s)" in text and "ect_slab.dcm along z: 20 mm where the patch has 100 mm" in text
    tile = {"axes": "CYX", "channel_names": ["B02"], "units": ["m", "m"], "path": "/t/small.tif",
            "shape": [1, 60, 200], "spacing": [10.0, 10.0]}
    assert "small.tif along y: 60 px where the patch has 64 px" not in (oversized_patch_message([tile], [64], "px") or "")
    assert "small.tif along y: 50 px where the patch has 64 px" in oversized_patch_message(
        [{**tile, "shape": [1, 50, 200]}], [64], "px")


def test_files_beside_a_band_folders_bands_do_not_outvote_it(shared_data, tmp_path):
    # a Sentinel-2 product folder: the 12 band files are one image; AOT, SCL and WVP (one band
    # each, all named B1) outnumbered it and the encoder trained on scene classes and aerosol
    from domainssl.io.scan import read_manifest, scan_archive

    folder = shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_cogs"
    scan_archive(folder, tmp_path / "m.jsonl", jobs=0)
    records = list(read_manifest(tmp_path / "m.jsonl"))
    assert len(records) == 5
    kept, dropped = select_consistent(records)
    assert [r["path"] for r in kept] == [str(folder)] and len(kept[0]["channel_names"]) == 12
    assert list(dropped.values()) == [4] and "beside a band folder" in next(iter(dropped))
    # one of them, asked for on its own, is an image like any other
    scan_archive(folder / "SCL.tif", tmp_path / "s.jsonl", jobs=0)
    assert len(select_consistent(list(read_manifest(tmp_path / "s.jsonl")))[0]) == 1
