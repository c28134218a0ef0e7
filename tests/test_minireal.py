"mini-real: a BLIP-2 / InstructBLIP from real pretrained parts runs a short stream end to end on the CPU."
import numpy as np
import pytest
import torch

from cit_study.minireal import build_minireal
from cit_study.methods import make_strategy
from cit_study.synthetic import WorldConfig, load_task
from cit_study.train import TrainConfig, run_stream
from cit_study import regularisation  # registers ewc

pytestmark = pytest.mark.slow  # runs on the mini-real backend (packaged weights, seconds per step)


@pytest.mark.parametrize("kind,strategy", [("blip2", "seqft"), ("instructblip", "ewc")])
def test_minireal_short_stream(tmp_path, kind, strategy):
    m = build_minireal(kind)
    w = WorldConfig(n_train=6, n_val=2, n_test=3)
    tasks = [load_task(t, w) for t in ("count", "gqa")]
    frozen = {n: p.detach().clone() for n, p in m.hf.language_model.named_parameters() if "layers.29" in n or "embed" in n}
    cnn = {n: t.detach().clone() for n, t in m.hf.vision_model.state_dict().items()}
    before = {n: p.detach().clone() for n, p in m.trainable().items()}
    res = run_stream(m, make_strategy(strategy, {"samples": 4} if strategy == "ewc" else {}), [], tasks,
                     TrainConfig(steps_per_task=2, bs=2, eval_bs=3), seed=0, ckpt_dir=tmp_path / "ckpt", progress=False)
    M = np.array(res["matrix"])
    assert M.shape == (3, 2) and np.isfinite(M).all()
    assert all(np.isfinite(t["loss"]) for t in res["train"])
    assert any(not torch.equal(before[n], p) for n, p in m.trainable().items())
    assert all(torch.equal(frozen[n], p) for n, p in m.hf.language_model.named_parameters() if n in frozen)
    assert all(torch.equal(cnn[n], t) for n, t in m.hf.vision_model.state_dict().items())  # batch-norm statistics too


def test_a_run_on_the_minireal_backend(tmp_path):
    "A run config with backend 'minireal' builds (and caches) the mini-real bases and records which one it started from."
    from cit_study.bases import BaseConfig
    from cit_study.core import to_jsonable
    from cit_study.config import RunConfig, make_config
    from cit_study.runner import execute_run
    from cit_study.train import TrainConfig as TC
    assert make_config("minireal", "instructblip").backend == "minireal"
    assert make_config("quick").backend == "tiny" and "backend" not in to_jsonable(make_config("quick"))  # old run ids hold
    tiny = BaseConfig(world=WorldConfig(n_train=4, n_val=2, n_test=2), held_in=["vqa"], vl_samples=4, vl_steps=2, it_steps=2, bs=2, lr=1e-4)
    cfg = RunConfig(base="instructblip", backend="minireal", bases=tiny, stream=["count"], train=TC(steps_per_task=1, bs=2, eval_bs=2))
    run = execute_run(cfg, tmp_path / "run", cache=tmp_path / "cache", progress=False)
    assert run["base_path"].startswith(str(tmp_path / "cache" / "minireal" / "bases" / "instructblip"))
    assert run["tasks"] == ["vqa", "count"] and run["n_initial"] == 1 and np.isfinite(np.array(run["matrix"])).all()
    assert run["config"]["backend"] == "minireal"


def test_minireal_step_against_transformers_eager():
    "The perf benchmark's two steps run on mini-real: `transformers`' own forward reads the CNN's output (with its pooled token)."
    from cit_study.perf import step_costs
    r = step_costs("minireal", bs=1, steps=1, warmup=0, rounds=1)
    eager, study = r["rows"]
    assert eager["variant"] == "eager" and study["variant"] == "study" and eager["samples_s"] > 0 and study["samples_s"] > 0
    assert eager["tflops_s"] * eager["step_ms"] > study["tflops_s"] * study["step_ms"]  # eager also runs the CNN every step


def test_the_gpu_check_runs_its_checks_on_what_a_cpu_runs():
    "`make gpu-check`'s script on the CPU: the step on the tiny shape and a one-step mini-real stream, nothing failed (the GPU shapes need a GPU)."
    from cit_study.perf import gpu_check
    r = gpu_check(None, device="cpu", tests=False)
    assert sorted(r["checks"]) == ["minireal stream blip2 seqft", "step tiny"] and r["failed"] == []
    assert r["checks"]["minireal stream blip2 seqft"]["precision"] == "fp32"
