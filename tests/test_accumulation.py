"Gradient accumulation is the same optimizer step as one large batch; bfloat16 autocast trains close to float32."
import tempfile

import pytest
import torch

from cit_study.core import ConfigError, to_jsonable
from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer
from cit_study.methods import make_strategy
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.train import TrainConfig, train_task
from cit_study import replay, regularisation  # register the methods used below


@pytest.fixture(scope="module")
def setup():
    tok = train_tokenizer(world_corpus(30), tempfile.mkdtemp())
    return tok, load_task("gqa", WorldConfig(n_train=32, n_val=2, n_test=4))


def trained(setup, strategy, **train):
    tok, task = setup
    m = LMM(build_hf_model("blip2", ModelConfig(llm_layers=2, llm_ffn=128), tok, seed=1), tok, "blip2")
    s = make_strategy(strategy, {})
    from types import SimpleNamespace
    cfg = TrainConfig(steps_per_task=3, lr=1e-3, **train)
    s.setup(m, SimpleNamespace(initial=[], stream=[task], train=cfg, seed=0, cache=None))
    s.before_task(1, task); info = train_task(m, s, 1, task, cfg, seed=0, progress=False)
    return {n: p.detach().clone() for n, p in m.trainable().items()}, info


@pytest.mark.parametrize("strategy", ["seqft", "si"])
def test_accumulated_micro_batches_equal_one_batch(setup, strategy):
    big, info_big = trained(setup, strategy, bs=12)
    acc, info_acc = trained(setup, strategy, bs=4, grad_accum=3)
    assert info_acc["loss"] == pytest.approx(info_big["loss"], rel=1e-5)
    # the same gradients up to summation order; AdamW turns rounding in near-zero gradients (attention key biases) into
    # steps of up to lr's order, hence the absolute tolerance, 30x below the gap to a different step (below)
    for n in big: torch.testing.assert_close(acc[n], big[n], rtol=0, atol=2e-4)
    moved = max(float((big[n] - trained(setup, strategy, bs=4)[0][n]).abs().max()) for n in big)
    assert moved > 2e-3  # a plain batch of 4 is a different step: the check can tell


def test_bf16_autocast_trains_close_to_fp32(setup):
    fp32, i32 = trained(setup, "seqft", bs=8)
    bf16, i16 = trained(setup, "seqft", bs=8, precision="bf16")
    assert i16["loss"] == pytest.approx(i32["loss"], rel=0.05) and i16["loss"] != i32["loss"]


def test_new_settings_are_checked_and_keep_old_hashes():
    with pytest.raises(ConfigError, match="grad_accum"): TrainConfig(grad_accum=0)
    with pytest.raises(ConfigError, match="precision"): TrainConfig(precision="fp16")
    assert "grad_accum" not in to_jsonable(TrainConfig()) and to_jsonable(TrainConfig(grad_accum=2))["grad_accum"] == 2


@pytest.mark.slow
def test_cli_run_with_accumulation_and_bf16(tmp_path):
    "`cit-study run --grad-accum 2 --precision bf16`: the settings reach the run and are recorded in its config."
    from conftest import cli
    from cit_study.results import read_run
    cli("run", "--preset", "smoke", "--stream", "count", "--steps-per-task", 2, "--grad-accum", 2, "--precision", "bf16", "--results", tmp_path)
    (run,) = [read_run(p) for p in tmp_path.glob("*/run.json")]
    assert run["config"]["train"]["grad_accum"] == 2 and run["config"]["train"]["precision"] == "bf16"
    assert run["train"][0]["steps"] == 2 and len(run["matrix"]) == 2


@pytest.mark.parametrize("strategy", ["lwf", "derpp"])
def test_bf16_with_stored_float16_logits(setup, strategy):
    "LwF's teacher and DER++'s buffer keep logits in float16; under bf16 autocast their penalties still run (second task: both in use)."
    import numpy as np
    from cit_study.train import run_stream
    tok, task = setup
    m = LMM(build_hf_model("blip2", ModelConfig(llm_layers=2, llm_ffn=128), tok, seed=1), tok, "blip2")
    other = load_task("count", WorldConfig(n_train=32, n_val=2, n_test=4))
    res = run_stream(m, make_strategy(strategy, {}), [], [task, other], TrainConfig(steps_per_task=2, bs=4, eval_bs=4, precision="bf16"), progress=False)
    assert np.isfinite(np.array(res["matrix"])).all() and all(np.isfinite(t["loss"]) for t in res["train"])
