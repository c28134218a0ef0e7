"Shared fixtures: a cache of built smoke bases reused by every test, and helpers to run the CLI."
import os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Built bases are cached per machine (like a user's ~/.cache); tests share one folder inside the repo.
os.environ.setdefault("CIT_STUDY_CACHE", str(ROOT / ".cache" / "cit_study"))
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one; `make gpu-check` runs them)")
    config.addinivalue_line("markers", "slow: ten seconds or more (whole runs through the CLI, the smoke study, kills and resumes): `make test` runs them, `make test-fast` does not")


def pytest_collection_modifyitems(config, items):
    import torch
    if torch.cuda.is_available(): return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords: item.add_marker(skip)


def cli(*args, check=True, timeout=900):
    "Run the installed `cit-study` command; returns the completed process."
    p = subprocess.run([str(BIN / "cit-study"), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"cit-study {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    "The smoke study, run once through the CLI (`--quiet`: no progress bars): bases, every run through papermill, the HTML report."
    out = tmp_path_factory.mktemp("smoke")
    p = cli("study", "--preset", "smoke", "--out", out, "--quiet")
    return out, p
