"Data-parallel training on two CPU processes (gloo): every process ends with the same weights, and with what one process gets on the whole batch."
import subprocess, sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # two processes under torchrun

HERE = Path(__file__).resolve().parent
STRATEGIES = ["seqft", "ewc", "si", "agem", "agem-dropout", "lwf", "derpp"]


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
        assert len(r0["before"]) == len(r1["before"]) == 2
        for b0, b1 in zip(r0["before"], r1["before"]):  # each task ends with the same weights everywhere, before any broadcast
            for n, t in b0.items(): assert torch.equal(t, b1[n]), (name, n)  # (DER++'s buffer, A-GEM's reference under dropout included)
        for n, t in r0["state"].items(): assert torch.equal(t, r1["state"][n]), (name, n)
        if name in ("derpp", "agem-dropout"): continue  # its buffer offers come in rank order, not batch order: a different run than one process's
        # the same steps up to summation order: Adam can turn a near-zero gradient's rounding into a full step on a few
        # elements, so compare the whole update, not each element
        flat = lambda sd: torch.cat([sd[n].reshape(-1) for n in sorted(sd)])
        gap, update = (flat(r0["state"]) - flat(one["state"])).norm(), (flat(one["state"]) - flat(one["init"])).norm()
        assert gap < 3e-2 * update, (name, float(gap), float(update))  # measured: 0.4-0.7% of the update on CPU
        assert r0["loss"] == pytest.approx(one["loss"], rel=1e-4)
    sums = [torch.load(tmp_path / f"allreduce-r{r}.pt") for r in (0, 1)]
    for got in sums:  # bucketed all-reduce: every tensor summed over both processes, dtypes kept
        torch.testing.assert_close(got[0], torch.arange(5.) * 2 + 1, rtol=0, atol=0)
        torch.testing.assert_close(got[1], torch.full((3, 2), 3.0, dtype=torch.float64), rtol=0, atol=0)
        torch.testing.assert_close(got[2], torch.ones(7), rtol=0, atol=0)


def test_cli_run_in_process_under_torchrun(tmp_path):
    "`torchrun --nproc_per_node 2 cit-study run --in-process ...`: one run folder, written once, with its checkpoints."
    from cit_study.results import read_run
    bin_ = Path(sys.executable).parent
    p = subprocess.run([str(bin_ / "torchrun"), "--nproc_per_node", "2", "--master_port", "29521", str(bin_ / "cit-study"), "run", "--in-process",
                        "--preset", "smoke", "--stream", "count,gqa", "--steps-per-task", "2", "--results", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("run written to") == 1 and "(2 processes)" in p.stdout
    (run,) = [read_run(f) for f in tmp_path.glob("*/run.json")]
    assert run["tasks"] == run["evaluated_only"] + ["count", "gqa"] and len(run["matrix"]) == 3
    assert sorted(f.name for f in next(tmp_path.glob("*/checkpoints")).iterdir())  # rank 0 wrote them
    written = next(tmp_path.glob("*/run.json")).read_bytes()
    p = subprocess.run([str(bin_ / "cit-study"), "run", "--in-process", "--preset", "smoke", "--stream", "count,gqa", "--steps-per-task", "2",
                        "--results", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and "run finished earlier" in p.stdout, p.stdout + p.stderr[-2000:]
    assert next(tmp_path.glob("*/run.json")).read_bytes() == written  # a finished run is neither rerun nor rewritten
