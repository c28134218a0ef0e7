"Table-driven checks over every registered method on a tiny model: it trains, reports, refuses bad settings and resumes exactly."
import json, math, tempfile
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from cit_study.core import ConfigError
from cit_study.tasks import TaskData
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer, trainable_state
from cit_study.train import TrainConfig, run_stream, evaluate
from cit_study.methods import registry, make_strategy
from cit_study.config import METHODS

# Methods that embed tasks use the model-free encoders here; the default encoders are checked in their notebooks.
FREE = {"image_encoder": "pixels", "text_encoder": "bow"}
CHEAP = {"key_steps": 100, "samples": 8}
ROWS = [m for m in METHODS if m != "joint"]


def params(name):
    fields = registry()[name].Config.__dataclass_fields__
    return {k: v for k, v in {**FREE, **CHEAP}.items() if k in fields}


@pytest.fixture(scope="module")
def world():
    w = WorldConfig(n_train=16, n_val=2, n_test=4)
    small = lambda t: (lambda d: TaskData(d.spec, d.train, d.val, d.test))(load_task(t, w))
    tok = train_tokenizer(world_corpus(20), tempfile.mkdtemp())
    return NS(initial=[small("caption")], stream=[small("count"), small("ocr")], tok=tok,
              cfg=TrainConfig(steps_per_task=3, bs=4, eval_bs=4))


def fresh(world, kind):
    return LMM(build_hf_model(kind, ModelConfig(), world.tok, seed=1), world.tok, kind)


def test_every_method_is_registered_and_in_the_paper_grid():
    from cit_study.config import PRESETS, CLAIMED, CONTROLS
    assert set(METHODS) <= set(registry())
    for p in ("paper", "full"): assert PRESETS[p]["studies"]["forgetting"]["grid"]["strategy"] == METHODS
    assert PRESETS["quick"]["studies"]["forgetting"]["grid"]["strategy"] == CLAIMED + CONTROLS  # the methods the findings name, at three seeds


@pytest.mark.parametrize("name", ROWS)
def test_unknown_setting_is_refused_by_name(name):
    with pytest.raises(ConfigError, match="not_a_setting"):
        make_strategy(name, {"not_a_setting": 1})


@pytest.mark.parametrize("name", ROWS)
def test_method_trains_reports_and_resumes_exactly(world, name, tmp_path):
    """Both kinds of base; InstructBLIP-like with a held-in task. The method changes what it trains (a parameter or
    an expert moves), reports JSON, and a run resumed after task 1 equals the uninterrupted one."""
    kind = "instructblip" if ROWS.index(name) % 2 else "blip2"
    initial = world.initial if kind == "instructblip" else []
    m1, m2 = fresh(world, kind), fresh(world, kind)
    base = make_strategy("seqft"); base.setup(fresh(world, kind), None)
    _, zero = evaluate(base, initial + world.stream, world.cfg.eval_bs)  # the base's own predictions before any task
    s = make_strategy(name, params(name))
    before, orig = {}, s.before_task
    def snapshot(i, task):  # after the method's own setup (adapters, experts) and its preparation of task 1
        orig(i, task)
        if i == 1: before.update({k: v.clone() for k, v in trainable_state(m1).items()})
    s.before_task = snapshot
    full = run_stream(m1, s, initial, world.stream, world.cfg, ckpt_dir=tmp_path, progress=False)
    matrix = np.array(full["matrix"], dtype=float)
    assert matrix.shape == (3, len(initial) + 2) and np.isfinite(matrix).all()
    assert all(math.isfinite(t["loss"]) for t in full["train"])
    if s.zero_shot_is_base: assert full["predictions"][0] == zero, f"{name}: row 0 is not the base's, set zero_shot_is_base = False"
    json.dumps(full["strategy"])  # the strategy's report goes into run.json
    moved = any(not torch.equal(before[k], v) for k, v in trainable_state(m1).items())
    moved = moved or any(not torch.equal(p, q) for e in getattr(s, "experts", [])[1:] for p, q in zip(e.parameters(), m1.projection.parameters()))
    assert moved, f"{name} trained nothing"
    (tmp_path / "step002.pt").unlink()
    again = run_stream(m2, make_strategy(name, params(name)), initial, world.stream, world.cfg, ckpt_dir=tmp_path,
                       resume=True, progress=False)
    assert again["matrix"] == full["matrix"] and again["predictions"] == full["predictions"]
    a, b = trainable_state(m1), trainable_state(m2)
    assert all(torch.equal(a[k], b[k]) for k in a), "trainable parameters differ after resume"
