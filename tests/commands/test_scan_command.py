"""`domainssl scan` end to end through the real command line."""

import json
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "domainssl", *args], capture_output=True, text=True)


def test_scan_command_writes_manifest_and_summary(demo_archive, tmp_path):
    out = tmp_path / "manifest.jsonl"
    proc = _run("scan", demo_archive["root"], "--out", str(out), "--jobs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "27 usable, 1 rejected" in proc.stdout
    assert "geotiff 24" in proc.stdout and "dicom 1" in proc.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 28 and not (tmp_path / "manifest.jsonl.partial").exists()


def test_scan_command_exit_codes(tmp_path):
    (tmp_path / "junk.dat").write_bytes(b"\x01" * 200)
    proc = _run("scan", str(tmp_path), "--out", str(tmp_path / "m.jsonl"), "--jobs", "0")
    assert proc.returncode == 1 and "no usable image" in proc.stderr
    assert "see the reasons above" in proc.stderr  # junk.dat is rejected, with its reason
    proc = _run("scan", str(tmp_path / "missing"), "--out", str(tmp_path / "m.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _run("scan", str(tmp_path / "empty"), "--out", str(tmp_path / "m.jsonl"))
    assert proc.returncode == 1 and "empty holds no DICOM, NIfTI, GeoTIFF" in proc.stderr
    assert "reasons above" not in proc.stderr  # there are none


def test_stats_prints_what_the_images_mix_as_pretraining_warns_it(shared_data, tmp_path, capsys):
    # the Sentinel-2 band folder (reflectance, from its STAC item) and the 12-band file (raw DNs)
    from domainssl.cli import main

    manifest = tmp_path / "m.jsonl"
    assert main(["scan", str(shared_data / "geotiff"), "--out", str(manifest), "--jobs", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["stats", str(manifest), "--channels", "B04", "B03", "B02", "B08", "--patches", "4",
                 "--out", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "warning: data: the images' values are in different units (1 not declared, 1 reflectance)" in out


def test_stats_command_on_scanned_manifest(demo_archive, tmp_path):
    manifest = tmp_path / "m.jsonl"
    assert _run("scan", demo_archive["tiles"], "--out", str(manifest), "--jobs", "0").returncode == 0
    out = tmp_path / "stats.json"
    proc = _run("stats", str(manifest), "--patch-size", "32", "32", "--patches", "16", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(out.read_text())
    assert stats["channel_names"] == ["B02", "B03", "B04", "B08"] and stats["n_patches"] == 16
    # generated reflectance x 10000: NIR (B08) is the brightest band of every class
    assert stats["mean"][3] > max(stats["mean"][:3]) and all(s > 0 for s in stats["std"])


def test_stats_are_the_same_whatever_order_the_scan_wrote_and_can_choose_the_images(demo_archive, tmp_path):
    from domainssl.cli import main

    manifest = tmp_path / "m.jsonl"
    assert _run("scan", demo_archive["root"], "--out", str(manifest), "--jobs", "0").returncode == 0
    lines = manifest.read_text().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(lines[::-1]) + "\n")      # a parallel scan's other order
    results = []
    for m in (manifest, shuffled):
        out = tmp_path / f"{m.stem}.json"
        assert main(["stats", str(m), "--patch-size", "16", "16", "--patches", "8", "--out", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0]["mean"] == results[1]["mean"] and results[0]["channel_names"] == ["B02", "B03", "B04", "B08"]
    # the archive's 3D images are chosen by spatial dims and format (2D tiles are the majority)
    out = tmp_path / "ct.json"
    assert main(["stats", str(manifest), "--spatial-dims", "3", "--formats", "dicom", "--patch-size",
                 "8", "8", "8", "--patches", "4", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_patches"] == 4
