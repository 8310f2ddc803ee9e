"""The package stays light to import, and the command line lists its steps."""

import subprocess
import sys


def test_import_domainssl_does_not_pull_heavy_libraries():
    code = ("import sys, domainssl; heavy = [m for m in ('torch', 'rasterio', 'pydicom', 'nibabel', "
            "'zarr', 'tifffile', 'lightning', 'timm', 'monai') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "domainssl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "scan" in out.stdout
    sub = subprocess.run([sys.executable, "-m", "domainssl", "scan", "--help"], capture_output=True,
                         text=True)
    assert "example:" in sub.stdout and "--out" in sub.stdout


def test_open_image_is_exported():
    import domainssl

    assert callable(domainssl.open_image) and issubclass(domainssl.ImageReadError, ValueError)
