"""The `domainssl` command line itself: warnings read as messages to the user."""

import warnings

from domainssl import cli


def test_format_warning_drops_the_source_location():
    text = cli.format_warning("data: 2 image(s) left out", UserWarning, "/x/pretraining.py", 161, "dm.setup()")
    assert text == "warning: data: 2 image(s) left out\n"
    text = cli.format_warning("uneven slice spacing", RuntimeWarning, "/x/dicom.py", 3)
    assert text == "warning (RuntimeWarning): uneven slice spacing\n"


def test_commands_print_warnings_in_that_format(tmp_path):
    # a fresh interpreter: pytest shows warnings its own way
    import subprocess
    import sys

    script = ("import sys, warnings\n"
              "from domainssl import cli\n"
              "from domainssl.commands import scan\n"
              "scan.run = lambda args: warnings.warn('3 files skipped: not GeoTIFF') or 0\n"
              "sys.exit(cli.main(['scan', 'somewhere', '--out', 'm.jsonl']))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "warning: 3 files skipped: not GeoTIFF\n"


def test_main_leaves_pythons_warning_format_as_it_was(monkeypatch):
    from domainssl.commands import scan

    seen = []
    monkeypatch.setattr(scan, "run", lambda args: seen.append(warnings.formatwarning) or 0)
    before = warnings.formatwarning
    assert cli.main(["scan", "somewhere", "--out", "m.jsonl"]) == 0
    assert seen == [cli.format_warning] and warnings.formatwarning is before


def test_error_text_unwraps_an_error_from_a_dataloader_worker():
    # the real wrapping: an error raised in a worker process, re-raised in the main process
    import pytest
    import torch

    from domainssl.cli import error_text
    from domainssl.data.errors import DataSetupError

    class Bad(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise DataSetupError("patches of different shapes cannot be stacked; set data.target_shape")

    with pytest.raises(DataSetupError) as caught:
        next(iter(torch.utils.data.DataLoader(Bad(), num_workers=1)))
    assert "Original Traceback" in str(caught.value)
    assert error_text(caught.value) == "patches of different shapes cannot be stacked; set data.target_shape"
    assert error_text(ValueError("plain message")) == "plain message"


def test_error_text_unwraps_an_unreadable_file_from_a_worker():
    # ImageReadError(path, reason) must survive torch's one-argument re-raise
    import pytest
    import torch

    from domainssl.cli import error_text
    from domainssl.io.errors import ImageReadError

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise ImageReadError("/archive/a.dcm", "truncated file")

    with pytest.raises(ImageReadError) as caught:
        next(iter(torch.utils.data.DataLoader(Broken(), num_workers=1)))
    assert error_text(caught.value) == "/archive/a.dcm: truncated file"
