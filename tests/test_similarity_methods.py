"""The methods that use task similarity: TS-EProj never trains a held-in task's expert in place, and TIR and TS-EProj
take s from the similarity matrix over the run's fixed reference set (its initial and stream tasks), whatever the
number of tasks seen."""
import copy, tempfile
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

from cit_study.tasks import TaskData
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer, trainable_state
from cit_study.similarity import run_similarity
from cit_study.train import TrainConfig, run_stream
from cit_study.methods import make_strategy
import cit_study.expansion, cit_study.tir  # register ts_eproj and tir_*

FREE = {"image_encoder": "pixels", "text_encoder": "bow"}  # model-free encoders


@pytest.fixture(scope="module")
def world():
    w = WorldConfig(n_train=16, n_val=2, n_test=4)
    small = lambda t: (lambda d: TaskData(d.spec, d.train, d.val, d.test))(load_task(t, w))
    tok = train_tokenizer(world_corpus(20), tempfile.mkdtemp())
    return NS(tasks={t: small(t) for t in ("caption", "count", "ocr", "ground")}, tok=tok,
              cfg=TrainConfig(steps_per_task=3, bs=4, eval_bs=4))


def fresh(world, kind):
    return LMM(build_hf_model(kind, ModelConfig(), world.tok, seed=1), world.tok, kind)


def test_ts_eproj_never_trains_a_held_in_tasks_expert_in_place(world, tmp_path):
    """tau = 0 (always reuse) on the InstructBLIP-like base: the first stream task's only earlier task is held in, so it
    trains a copy of expert 0; expert 0, the model's projection, stays bit-identical and the held-in task's keys still
    point at it. A run resumed after task 1 equals the uninterrupted one."""
    t = world.tasks; initial, stream = [t["caption"]], [t["count"], t["ocr"]]
    params = {**FREE, "key_steps": 50, "tau": 0.0}
    m1 = fresh(world, "instructblip"); base = copy.deepcopy(m1.projection.state_dict())
    s = make_strategy("ts_eproj", params)
    full = run_stream(m1, s, initial, stream, world.cfg, ckpt_dir=tmp_path, progress=False)
    assert s.experts[0] is m1.projection
    assert all(torch.equal(base[k], v) for k, v in m1.projection.state_dict().items()), "expert 0 was trained in place"
    assert s.expert_of["caption"] == 0
    d = s.decisions[0]
    assert (d["task"], d["reuses"], d.get("copied_from")) == ("count", "caption", 0)
    assert s.expert_of["count"] == 1 and len(s.experts) >= 2
    assert any(not torch.equal(p, q) for p, q in zip(s.experts[1].parameters(), m1.projection.parameters())), "the copy did not train"
    # state_dict / load_state_dict round trip, directly and through a resumed run
    s2 = make_strategy("ts_eproj", params); m2 = fresh(world, "instructblip")
    s2.setup(m2, NS(initial=initial, stream=stream, train=world.cfg, seed=0, cache=None)); s2.load_state_dict(s.state_dict())
    assert s2.expert_of == s.expert_of and s2.decisions == s.decisions and len(s2.experts) == len(s.experts)
    assert all(torch.equal(p, q) for a, b in zip(s.experts[1:], s2.experts[1:]) for p, q in zip(a.parameters(), b.parameters()))
    (tmp_path / "step002.pt").unlink()
    m3 = fresh(world, "instructblip"); s3 = make_strategy("ts_eproj", params)
    again = run_stream(m3, s3, initial, stream, world.cfg, ckpt_dir=tmp_path, resume=True, progress=False)
    assert again["matrix"] == full["matrix"] and again["predictions"] == full["predictions"]
    assert again["strategy"]["expert_of"] == full["strategy"]["expert_of"] and s3.decisions == s.decisions
    a, b = trainable_state(m1), trainable_state(m3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(p, q) for x, y in zip(s.experts, s3.experts) for p, q in zip(x.parameters(), y.parameters()))


def test_ts_eproj_similarity_is_the_run_matrix_entry(world):
    """Each decision's s (and raw cosines) is the entry of the full similarity matrix over the run's initial and stream
    tasks, also for the first stream tasks, when only 2 or 3 tasks have been seen."""
    t = world.tasks; initial, stream = [t["caption"]], [t["count"], t["ocr"], t["ground"]]
    m, s = fresh(world, "instructblip"), make_strategy("ts_eproj", {**FREE, "tau": 1.0})
    s.setup(m, NS(initial=initial, stream=stream, train=world.cfg, seed=0, cache=None))
    for i, task in enumerate(stream, 1): s.choose_expert(i, task)
    M = run_similarity(m, initial + stream, s.cfg.similarity())
    for j, d in enumerate(s.decisions):
        row = M["matrix"][j + 1][:j + 1]
        k = max(range(j + 1), key=row.__getitem__)
        assert d["task"] == stream[j].name and d["reuses"] is None
        assert d["similarity"] == row[k], (j, d["similarity"], row)
        assert d["nearest"] == M["tasks"][k]
        assert d["cosine"] == {mod: M["cosine"][mod][j + 1][k] for mod in ("image", "instruction", "output")}


def test_ts_eproj_similarity_with_two_seen_tasks_is_not_constant(world):
    "With 2 tasks seen, s depends on the pair (a z-score over those 2 alone gives 0.125 for any pair)."
    t = world.tasks; firsts = {}
    for second in ("ocr", "ground"):
        stream = [t["count"], t[second], t["ocr" if second == "ground" else "ground"]]
        s = make_strategy("ts_eproj", {**FREE, "tau": 1.0})
        s.setup(fresh(world, "blip2"), NS(initial=[], stream=stream, train=world.cfg, seed=0, cache=None))
        s.choose_expert(1, stream[0]); s.choose_expert(2, stream[1])
        firsts[second] = s.decisions[0]["similarity"]
    assert all(abs(v - 0.125) > 1e-3 for v in firsts.values()), firsts
    assert abs(firsts["ocr"] - firsts["ground"]) > 1e-3, firsts


def test_tir_similarity_is_the_run_matrix_entry(world):
    "TIR's scaling uses, and records with the raw cosines, the entries of the run's full similarity matrix."
    t = world.tasks; stream = [t["count"], t["ocr"], t["ground"]]
    m, s = fresh(world, "blip2"), make_strategy("tir_ewc", {**FREE, "samples": 8})
    run_stream(m, s, [], stream, world.cfg, progress=False)
    M = run_similarity(m, stream, s.cfg.similarity())
    first = s.scaling[0]
    assert first["task"] == "ocr" and list(first["similarity"]) == ["count"]
    assert first["similarity"]["count"] == pytest.approx(M["matrix"][1][0], abs=1e-6)
    assert abs(first["similarity"]["count"] - 0.125) > 1e-3
    assert first["cosine"]["image"]["count"] == M["cosine"]["image"][1][0]
    assert list(s.scaling[1]["similarity"].values()) == pytest.approx(M["matrix"][2][:2], abs=1e-6)
