"""`domainssl pretrain` over two processes on CPU (gloo), started by Lightning's own launcher
(`--trainer.devices 2`) and by torchrun: one rank writes the run directory and reports, the other
ranks reuse rank 0's scan (Lightning) or scan into a folder of their own (torchrun)."""

import json
import socket
import subprocess
import sys

import pytest
from tiny_runs import tiny_pretrain_args


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("archive")
    return make_demo_archive(root, seed=0, n_unlabeled=8, n_train_per_class=2, n_test_per_class=1,
                             extras=False)["tiles"]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


LAUNCHERS = {
    "lightning": lambda: [sys.executable, "-m", "domainssl"],
    "torchrun": lambda: [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                         "--master_addr", "127.0.0.1", "--master_port", _free_port(), "-m", "domainssl"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_run_reports_once_and_writes_one_run_directory(archive, tmp_path, launcher):
    run = tmp_path / "run"
    cmd = LAUNCHERS[launcher]() + tiny_pretrain_args(archive, run, 4) + ["--trainer.devices", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("scan: 8 usable") == 1                 # one scan summary
    assert out.count("[domainssl] pretraining mae: 4 steps") == 1
    assert out.count("[domainssl] step 4/4") == 1 and out.count("domainssl export") == 1
    facts = json.loads((run / "run.json").read_text())
    assert facts["final"]["global_step"] == 4 and facts["final"]["read_skips"]["count"] == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "pictures" / "curves.png").is_file()
    others = run / "ranks" / "rank1"
    if launcher == "lightning":  # rank 1 reused rank 0's scan and statistics
        assert not others.exists()
    else:  # started together: rank 1 scanned for itself, to the same images and statistics
        assert json.loads((others / "stats.json").read_text()) == json.loads((run / "stats.json").read_text())
        rows = lambda p: sorted(p.read_text().splitlines())  # noqa: E731
        assert rows(others / "manifest.jsonl") == rows(run / "manifest.jsonl")
    assert "Traceback" not in done.stderr


def test_a_resumed_two_process_run_ends_where_an_uninterrupted_one_does(archive, tmp_path):
    # each rank's generators are saved and given back to that rank; the data order continues
    import torch

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "domainssl", *args], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]

    two = ["--trainer.devices", "2", "--data.patches_per_image", "2", "--pictures.views", "false",
           "--pictures.reconstructions", "false"]
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    run(*tiny_pretrain_args(archive, straight, 6), *two)
    run(*tiny_pretrain_args(archive, halves, 3), "--method.max_steps", "6", *two)
    run("pretrain", "--resume", str(halves), "--trainer.max_steps", "6")
    a, b = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for r in (straight, halves))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
