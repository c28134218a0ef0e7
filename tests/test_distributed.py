"Data-parallel training on two CPU processes (gloo): every process ends with the same weights, and with what one process gets on the whole batch."
import subprocess, sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
STRATEGIES = ["seqft", "ewc", "si", "agem", "lwf", "derpp"]


def test_two_processes_match_one(tmp_path):
    bin_ = Path(sys.executable).parent
    p = subprocess.run([str(bin_ / "torchrun"), "--nproc_per_node", "2", "--master_port", "29517", str(HERE / "dist_stream.py"), str(tmp_path),
                        ",".join(STRATEGIES)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    p = subprocess.run([sys.executable, str(HERE / "dist_stream.py"), str(tmp_path), ",".join(STRATEGIES)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    for name in STRATEGIES:
        r0, r1, one = (torch.load(tmp_path / f"{name}-w{w}-r{r}.pt", weights_only=False) for w, r in ((2, 0), (2, 1), (1, 0)))
        assert "error" not in r0 and "error" not in one, (name, r0.get("error"), one.get("error"))
        for n, t in r0["state"].items():
            assert torch.equal(t, r1["state"][n]), (name, n)  # the processes never drift apart (DER++'s buffer included)
        if name == "derpp": continue  # its buffer offers come in rank order, not batch order: a different run than one process's
        for n, t in r0["state"].items():
            torch.testing.assert_close(t, one["state"][n], rtol=0, atol=5e-4)  # the same steps, up to summation order (see test_accumulation)
        assert r0["loss"] == pytest.approx(one["loss"], rel=1e-4)


def test_cli_run_in_process_under_torchrun(tmp_path):
    "`torchrun --nproc_per_node 2 cit-study run --in-process ...`: one run folder, written once, with its checkpoints."
    from cit_study.study import read_run
    bin_ = Path(sys.executable).parent
    p = subprocess.run([str(bin_ / "torchrun"), "--nproc_per_node", "2", "--master_port", "29521", str(bin_ / "cit-study"), "run", "--in-process",
                        "--preset", "smoke", "--stream", "count,gqa", "--steps-per-task", "2", "--results", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("run written to") == 1 and "(2 processes)" in p.stdout
    (run,) = [read_run(f) for f in tmp_path.glob("*/run.json")]
    assert run["tasks"] == ["count", "gqa"] and len(run["matrix"]) == 3
    assert sorted(f.name for f in next(tmp_path.glob("*/checkpoints")).iterdir())  # rank 0 wrote them
