"Real-checkpoint loading: tiny BLIP-2 / InstructBLIP models with OPT and T5 LLMs saved with `save_pretrained`, then run from disk."
import math, warnings

import numpy as np
import pytest
import torch
from transformers import Blip2Processor, InstructBlipProcessor, BlipImageProcessor

from cit_study.core import ConfigError
from cit_study.model import KINDS, LLMS, ModelConfig, LMM, build_hf_model, train_tokenizer, load_checkpoint
from cit_study.methods import make_strategy
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.train import TrainConfig, run_stream
from cit_study import regularisation, replay  # register the methods used below

CFG = ModelConfig(llm_layers=2, llm_ffn=128, vision_layers=1, qformer_layers=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tok = train_tokenizer(world_corpus(30), tmp_path_factory.mktemp("tok"))
    w = WorldConfig(n_train=24, n_val=2, n_test=8)
    return tok, [load_task(t, w) for t in ("gqa", "count")]


def save_checkpoint(tok, kind, llm, path):
    "A tiny model of `kind` with an `llm` LLM and its processor, saved as a transformers checkpoint folder."
    hf = build_hf_model(kind, CFG, tok, seed=3, llm=llm)
    ip = BlipImageProcessor(size={"height": CFG.image_size, "width": CFG.image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc = (Blip2Processor(image_processor=ip, tokenizer=tok, num_query_tokens=CFG.num_query_tokens) if kind == "blip2" else
            InstructBlipProcessor(image_processor=ip, tokenizer=tok, qformer_tokenizer=tok, num_query_tokens=CFG.num_query_tokens))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf.save_pretrained(path); proc.save_pretrained(path)
    return hf


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("llm", LLMS)
def test_checkpoint_folder_runs_a_stream(world, tmp_path, kind, llm):
    tok, tasks = world
    hf = save_checkpoint(tok, kind, llm, tmp_path / "ckpt")
    m = load_checkpoint(tmp_path / "ckpt")
    assert m.kind == kind and m.encoder_decoder == (llm == "t5") and m.image_processor is not None
    # the loaded model computes what the saved one did: same loss on the same batch
    ref = LMM(hf, tok, kind)
    with torch.no_grad():
        assert float(m.loss(m.make_batch(tasks[0].train[:4]))) == pytest.approx(float(ref.loss(ref.make_batch(tasks[0].train[:4]))), rel=1e-5)
    frozen = {n: p.detach().clone() for n, p in m.hf.language_model.named_parameters()}
    before = {n: p.detach().clone() for n, p in m.trainable().items()}
    res = run_stream(m, make_strategy("seqft", {}), [], tasks, TrainConfig(steps_per_task=4, bs=4, eval_bs=8), seed=0,
                     ckpt_dir=tmp_path / "run", progress=False)
    M = np.array(res["matrix"])
    assert M.shape == (3, 2) and np.isfinite(M).all()
    assert all(len(p) == 2 for p in res["predictions"])  # every row predicts both tasks
    assert all(math.isfinite(t["loss"]) for t in res["train"])
    assert any(not torch.equal(before[n], p) for n, p in m.trainable().items())               # the Q-Former side trained
    assert all(torch.equal(frozen[n], p) for n, p in m.hf.language_model.named_parameters())  # the LLM did not
    assert any((tmp_path / "run").iterdir())  # per-task checkpoints were written


@pytest.mark.parametrize("strategy", ["ewc", "mas", "lwf"])
def test_encoder_decoder_checkpoint_with_importance_and_distillation(world, tmp_path, strategy):
    "The methods that read answer logits or per-sample gradients run on an encoder-decoder (T5) checkpoint."
    tok, tasks = world
    save_checkpoint(tok, "instructblip", "t5", tmp_path / "ckpt")
    m = load_checkpoint(tmp_path / "ckpt")
    res = run_stream(m, make_strategy(strategy, {"samples": 8} if strategy != "lwf" else {}), [], tasks,
                     TrainConfig(steps_per_task=3, bs=4, eval_bs=8), seed=0, progress=False)
    assert np.isfinite(np.array(res["matrix"])).all()


def test_bad_checkpoint_folders_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"): load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llava"}')
    with pytest.raises(ConfigError, match="model_type 'llava'"): load_checkpoint(tmp_path)


@pytest.mark.slow
def test_cli_run_from_a_checkpoint_folder(world, tmp_path):
    "`cit-study run --checkpoint DIR`: the papermill run starts from the folder; a folder of the wrong kind is refused by name."
    from conftest import cli
    from cit_study.results import read_run
    tok, _ = world
    save_checkpoint(tok, "instructblip", "t5", tmp_path / "ckpt")
    cli("run", "--preset", "smoke", "--base", "instructblip", "--checkpoint", tmp_path / "ckpt", "--steps-per-task", 2,
        "--stream", "count,gqa", "--results", tmp_path / "results")
    (run,) = [read_run(p) for p in (tmp_path / "results").glob("*/run.json")]
    assert run["config"]["checkpoint"] == run["base_path"] == str((tmp_path / "ckpt").resolve()) and len(run["config"]["checkpoint_fingerprint"]) == 16
    assert run["n_initial"] == 0 and run["tasks"] == ["count", "gqa"] and len(run["matrix"]) == 3
    bad = cli("run", "--preset", "smoke", "--base", "blip2", "--checkpoint", tmp_path / "ckpt", "--results", tmp_path / "r2", check=False)
    assert bad.returncode != 0 and "model_type 'instructblip'" in bad.stderr + bad.stdout
    assert not (tmp_path / "r2").exists() or not list((tmp_path / "r2").glob("*/run.json"))


def test_run_id_names_a_checkpoint_by_place_and_contents(world, tmp_path, monkeypatch):
    "A relative and an absolute path to one folder give one run id; changed weights give another; a stale recorded fingerprint is refused."
    import dataclasses
    from cit_study.config import make_config
    tok, _ = world
    save_checkpoint(tok, "blip2", "opt", tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    a = make_config("smoke", "blip2", checkpoint="ckpt", stream=["count"], weights=True)
    assert a.checkpoint == str((tmp_path / "ckpt").resolve())
    assert make_config("smoke", "blip2", checkpoint=str(tmp_path / "ckpt"), stream=["count"], weights=True).run_id == a.run_id
    assert a.load_base().max_len == 64 and make_config("smoke", "blip2", checkpoint="ckpt", stream=["count"], max_len=20).load_base().max_len == 20
    w = next(p for p in (tmp_path / "ckpt").iterdir() if p.suffix == ".safetensors")
    data = bytearray(w.read_bytes()); data[-1] ^= 1; w.write_bytes(bytes(data))  # one bit of the weights
    assert make_config("smoke", "blip2", checkpoint="ckpt", stream=["count"], weights=True).run_id != a.run_id
    stale = dataclasses.replace(a)  # a config is a value: reading it touches no file
    with pytest.raises(ConfigError, match="has changed since"): stale.with_weights()
