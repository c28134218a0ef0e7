"Sweeps submitted through submitit: its local executor runs the same jobs a Slurm cluster would, as subprocesses."
import json

import pytest

from conftest import cli
from cit_study.core import ConfigError
from cit_study.results import read_run
from cit_study.sweeps import submit, load_sweep

pytestmark = pytest.mark.slow  # submitit's local executor runs whole runs as jobs


def test_submit_runs_each_run_once_and_skips_finished_ones(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("preset: smoke\ngrid: {base: [blip2], strategy: [seqft, ewc], seed: [0]}\n"
                    "params: {steps_per_task: 2, stream: [count, gqa]}\nexecutor: {timeout_min: 20, cpus_per_task: 1}\n")
    results = tmp_path / "results"
    p = cli("sweep", grid, "--results", results, "--submit", "local")
    assert "done 2, skipped 0 (finished), failed 0" in p.stdout
    runs = [read_run(f) for f in results.glob("*/run.json")]
    assert sorted(r["config"]["strategy"] for r in runs) == ["ewc", "seqft"] and all(len(r["matrix"]) == 3 for r in runs)
    sub = json.loads((results / "_jobs" / "submitted.json").read_text())
    assert sub["cluster"] == "local" and len(sub["jobs"]) == 2 and sub["executor"] == {"timeout_min": 20, "cpus_per_task": 1}
    # submitting the same sweep again queues nothing: every run is finished
    again = submit([{"preset": "smoke", "base": "blip2", "strategy": s, "seed": 0, "steps_per_task": 2, "stream": ["count", "gqa"]}
                    for s in ("seqft", "ewc")], results, cluster="local")
    assert again["jobs"] == {} and len(again["skipped"]) == 2 and again["done"] == []


def test_submit_refuses_bad_input_before_queueing(tmp_path):
    with pytest.raises(ConfigError, match="cluster 'pbs'"):
        submit([{"preset": "smoke"}], tmp_path, cluster="pbs")
    with pytest.raises(ConfigError, match="strategy"):
        submit([{"preset": "smoke", "strategy": "nope"}], tmp_path, cluster="local")
    assert not (tmp_path / "_jobs").exists()
    bad = tmp_path / "g.yaml"; bad.write_text("grid: {seed: [0]}\nexecutor: [1, 2]\n")
    with pytest.raises(ConfigError, match="executor: expected a mapping"): load_sweep(bad)
