"mini-real: a BLIP-2 / InstructBLIP from real pretrained parts runs a short stream end to end on the CPU."
import numpy as np
import pytest
import torch

from cit_study.minireal import build_minireal
from cit_study.strategies import make_strategy
from cit_study.synthetic import WorldConfig, load_task
from cit_study.train import TrainConfig, run_stream
from cit_study import regularisation  # registers ewc


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
