"""Archive scan: grouping, records, rejection reasons, crash isolation, streaming manifest."""

import json
import os

import pytest

from domainssl.io import scan as scan_mod
from domainssl.io.scan import MANIFEST_KEYS, ScanTask, iter_tasks, read_manifest, scan_archive


def _records(path):
    return [json.loads(line) for line in open(path)]


def test_scan_demo_archive_records(demo_archive, tmp_path):
    out = tmp_path / "m.jsonl"
    summary = scan_archive(demo_archive["root"], out, jobs=2)
    recs = _records(out)
    assert all(set(MANIFEST_KEYS) <= set(r) for r in recs)
    by_path = {os.path.relpath(r["path"], demo_archive["root"]): r for r in recs}
    tiles = [r for p, r in by_path.items() if p.startswith("tiles")]
    assert len(tiles) == 24 and all(r["status"] == "ok" for r in tiles)
    t = tiles[0]
    assert t["format"] == "geotiff" and t["shape"] == [4, 64, 64] and t["axes"] == "CYX"
    assert t["channel_names"] == ["B02", "B03", "B04", "B08"] and t["spacing"] == [10.0, 10.0]
    ct = by_path["medical/ct_head"]  # 24 slice files -> ONE series record
    assert ct["status"] == "ok" and ct["format"] == "dicom" and ct["shape"] == [1, 24, 48, 48]
    assert ct["spacing"] == pytest.approx([2.5, 0.8, 0.8]) and ct["series"]
    nii = by_path["medical/brain_t1.nii.gz"]
    assert nii["status"] == "ok" and nii["axes"] == "CZYX"
    zarr = by_path["microscopy/cells.ome.zarr"]
    assert zarr["status"] == "ok" and zarr["channel_names"] == ["DAPI", "GFP"]
    broken = by_path["broken/truncated.tif"]
    assert broken["status"] == "rejected" and broken["reason"]
    assert summary.ok == 27 and summary.rejected == 1
    assert summary.by_format["geotiff"] == 24
    assert "1 rejected" in str(summary)


def test_in_process_scan_gives_the_same_records(demo_archive, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    scan_archive(demo_archive["root"], a, jobs=0)
    scan_archive(demo_archive["root"], b, jobs=2)
    key = lambda r: (r["path"], r.get("series") or "")
    assert sorted(_records(a), key=key) == sorted(_records(b), key=key)


def test_glob_and_sidecars(demo_archive, tmp_path):
    tiles = demo_archive["tiles"]
    open(os.path.join(tiles, "notes.txt"), "w").write("not an image")
    try:
        summary = scan_archive(os.path.join(tiles, "tile_0000*.tif"), tmp_path / "g.jsonl", jobs=0)
        assert summary.ok == 10 and summary.rejected == 0
        summary = scan_archive(tiles, tmp_path / "t.jsonl", jobs=0)
        assert summary.ignored == 1 and summary.ok == 24
    finally:
        os.remove(os.path.join(tiles, "notes.txt"))


def test_unknown_and_missing(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00" * 300)
    summary = scan_archive(tmp_path, tmp_path / "out" / "m.jsonl", jobs=0)
    rec = _records(tmp_path / "out" / "m.jsonl")[0]
    assert rec["status"] == "rejected" and "unknown format" in rec["reason"]
    assert summary.ok == 0
    with pytest.raises(ValueError, match="no such"):
        list(iter_tasks(tmp_path / "nope"))


def test_a_crashing_decoder_does_not_end_the_scan(demo_archive, tmp_path, monkeypatch):
    real = scan_mod._scan_task

    def crashing(task: ScanTask):
        if task.path.endswith("tile_00003.tif"):
            os._exit(3)  # what a segfaulting decoder looks like to the pool
        return real(task)

    monkeypatch.setattr(scan_mod, "_scan_task", crashing)
    out = tmp_path / "crash.jsonl"
    summary = scan_archive(demo_archive["tiles"], out, jobs=2)
    recs = {os.path.basename(r["path"]): r for r in _records(out)}
    assert len(recs) == 24
    assert recs["tile_00003.tif"]["status"] == "rejected"
    assert "crashed" in recs["tile_00003.tif"]["reason"]
    assert summary.ok == 23


def test_read_manifest_filters_and_reports_bad_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a", "status": "ok"}\n{"path": "b", "status": "rejected"}\n')
    assert [r["path"] for r in read_manifest(path)] == ["a"]
    assert len(list(read_manifest(path, status=None))) == 2
    path.write_text('{"path": "a", "status": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=":2:"):
        list(read_manifest(path))


def test_nan_nodata_is_written_as_strict_json(tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    data = np.ones((1, 8, 8), np.float32)
    data[0, 0, 0] = np.nan
    with rasterio.open(tmp_path / "nan.tif", "w", driver="GTiff", width=8, height=8, count=1,
                       dtype="float32", nodata=float("nan"), crs="EPSG:4326",
                       transform=from_origin(0, 0, 1, 1)) as dst:
        dst.write(data)
    scan_archive(tmp_path / "nan.tif", tmp_path / "m.jsonl", jobs=0)
    line = (tmp_path / "m.jsonl").read_text()
    rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert rec["status"] == "ok" and rec["meta"]["nodata"] == "nan"


def test_gc_resource_warnings_of_other_objects_stay_out_of_the_record(demo_archive):
    # A ResourceWarning raised while a file opens comes from the garbage collector finalising
    # something else (an unclosed file of earlier work); the file's own warnings are kept.
    import warnings

    from domainssl.io import open_image

    tile = os.path.join(demo_archive["tiles"], "tile_00000.tif")

    def open_fn():
        warnings.warn("unclosed file <_io.BufferedReader name='elsewhere.tif'>", ResourceWarning)
        warnings.warn("qform and sform disagree", UserWarning)
        return open_image(tile)

    rec = scan_mod._open_and_describe(open_fn, tile, "geotiff")
    assert rec["status"] == "ok" and rec["warnings"] == ["qform and sform disagree"]
    rec = scan_mod._open_and_describe(lambda: (warnings.warn("x", ResourceWarning), open_image(tile))[1],
                                      tile, "geotiff")
    assert rec["status"] == "ok" and "warnings" not in rec


def test_summary_shows_the_warnings_of_the_first_files():
    summary = scan_mod.ScanSummary()
    ok = {"status": "ok", "format": "dicom"}
    summary.add({**ok, "path": "/a/ct1", "warnings": ["/a/ct1: uneven slice spacing", "gantry tilt 18.5°"]})
    summary.add({**ok, "path": "/a/ct2"})
    for i in range(3, 3 + scan_mod.ScanSummary.SHOW_WARNINGS + 2):
        summary.add({**ok, "path": f"/a/ct{i}", "warnings": [f"warning of ct{i}"]})
    lines = str(summary).splitlines()
    warned = [line for line in lines if line.startswith("  warning  ")]
    # a message that names its file is shown as is, one that does not gets the path in front
    assert warned[:2] == ["  warning  /a/ct1: uneven slice spacing", "  warning  /a/ct1: gantry tilt 18.5°"]
    assert warned[2:] == [f"  warning  /a/ct{i}: warning of ct{i}" for i in range(3, 7)]
    assert summary.warnings == 8 and "8 usable with warnings" in lines[0]
    assert lines[-1].startswith("  ... 3 more files with warnings")


def test_scan_summary_names_the_real_ct_series_geometry_warnings(shared_data, tmp_path):
    summary = scan_archive(shared_data / "dicom" / "ct_head_series_ge", tmp_path / "m.jsonl", jobs=0)
    text = str(summary)
    assert summary.warnings == 1
    assert "uneven slice spacing" in text and "gantry tilt" in text


def test_a_truncated_tiff_is_reported_in_its_record_not_on_the_terminal(demo_archive, tmp_path, capfd):
    # tifffile logs "invalid offset to first page" for the cut-off file: the scan names it in the
    # record's reason; nothing reaches the user's terminal between the summary lines
    broken = os.path.join(demo_archive["root"], "broken")
    scan_archive(broken, tmp_path / "m.jsonl", jobs=0)
    (rec,) = read_manifest(tmp_path / "m.jsonl", status=None)
    assert rec["status"] == "rejected" and "not a readable TIFF" in rec["reason"]
    assert "invalid offset" in rec["reason"]
    assert capfd.readouterr().err == ""


def test_tifffile_messages_stay_out_of_the_users_own_logging(demo_archive, tmp_path):
    # a user's script with logging configured (a root handler): the scan still keeps tifffile's
    # message in the record, and the user's log does not get it
    import logging

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Keep(level=logging.DEBUG)
    root.addHandler(handler)
    try:
        scan_archive(os.path.join(demo_archive["root"], "broken"), tmp_path / "m.jsonl", jobs=0)
    finally:
        root.removeHandler(handler)
    (rec,) = read_manifest(tmp_path / "m.jsonl", status=None)
    assert "invalid offset" in rec["reason"]
    assert not [m for m in seen if "invalid offset" in m]


@pytest.mark.parametrize("pattern", ["", "tile_0000*.tif"])
def test_a_relative_root_is_recorded_as_absolute_paths(demo_archive, tmp_path, monkeypatch, pattern):
    # a manifest written from a relative root must still find its images from another folder
    tiles = demo_archive["tiles"]
    monkeypatch.chdir(os.path.dirname(tiles))
    scan_archive(os.path.join(os.path.basename(tiles), pattern), tmp_path / "m.jsonl", jobs=0)
    monkeypatch.chdir(tmp_path)
    recs = _records(tmp_path / "m.jsonl")
    assert recs and all(os.path.isabs(r["path"]) and os.path.exists(r["path"]) for r in recs)


def test_linked_folders_are_followed_once_without_looping(shared_data, tmp_path):
    # an archive of links to folders on other disks: the linked folder's images are scanned, a
    # link back up the tree (a loop) and a second link to the same folder are walked once
    root = tmp_path / "archive"
    (root / "real").mkdir(parents=True)
    os.symlink(shared_data / "microscopy" / "neubias", root / "linked")
    os.symlink(shared_data / "microscopy" / "neubias", root / "real" / "again")
    os.symlink(root, root / "real" / "loop")
    tasks = [os.path.relpath(t.path, root) for t in iter_tasks(root)]
    assert len(tasks) == len(set(os.path.realpath(os.path.join(root, t)) for t in tasks))
    neubias = sorted(p.name for p in (shared_data / "microscopy" / "neubias").iterdir()
                     if p.suffix in (".tif", ".czi"))
    assert sorted(os.path.basename(t) for t in tasks) == neubias and len(neubias) == 5


def test_a_glob_over_a_scenes_band_files_yields_the_band_folder(shared_data, tmp_path):
    # scenes/**/*.tif over a Sentinel-2 product: the 12 band files are one 12-band image (with
    # the STAC item's reflectance scale), as when the folder is scanned; file by file each was a
    # one-channel image named B1, pooled with the scene-class map
    folder = shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_cogs"
    globbed = [t.path for t in iter_tasks(str(folder / "*.tif"))]
    walked = [t.path for t in iter_tasks(folder)]
    assert sorted(globbed) == sorted(walked) and str(folder) in globbed and len(globbed) == 5
    summary = scan_archive(str(folder / "*.tif"), tmp_path / "g.jsonl", jobs=0)
    scene = [r for r in _records(tmp_path / "g.jsonl") if r["path"] == str(folder)]
    assert summary.ok == 5 and scene[0]["shape"][0] == 12 and scene[0]["meta"]["value_unit"] == "reflectance"
