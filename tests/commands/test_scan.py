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
    proc = _run("scan", str(tmp_path / "missing"), "--out", str(tmp_path / "m.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
