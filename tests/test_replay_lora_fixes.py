"O-LoRA's orthogonality loss is the reference's L1 form; ER, A-GEM and DER++ memories hold the initial (held-in) tasks' samples too."
import math, tempfile
from types import SimpleNamespace as NS

import pytest
import torch

from cit_study.core import ConfigError
from cit_study.lora import o_lora_penalty
from cit_study.model import LMM, ModelConfig, build_hf_model, answer_logits, train_tokenizer, trainable_state
from cit_study.replay import ERConfig
from cit_study.methods import make_strategy
from cit_study.config import make_config, load_task_data
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.tasks import TaskData
from cit_study.train import TrainConfig, run_stream


# ---- O-LoRA ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    w = WorldConfig(n_train=16, n_val=2, n_test=4)
    small = lambda t: (lambda d: TaskData(d.spec, d.train, d.val, d.test))(load_task(t, w))
    tok = train_tokenizer(world_corpus(20), tempfile.mkdtemp())
    return NS(tok=tok, initial=[small("caption")], stream=[small("count"), small("ocr")], cfg=TrainConfig(steps_per_task=3, bs=4, eval_bs=4),
              fresh=lambda kind="blip2": LMM(build_hf_model(kind, ModelConfig(), tok, seed=1), tok, kind))


def test_o_lora_penalty_is_the_l1_norm_of_the_overlaps():
    P = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]]])              # two earlier rows
    A = torch.tensor([[[3.0, -4.0, 1.0], [0.0, 0.0, 5.0]]])              # P A^T = [[-5, 0], [-5, -5]]
    assert o_lora_penalty(P, A).item() == 15.0                           # sum of |entries|, the default
    assert o_lora_penalty(P, A, "squared").item() == 75.0                # kept as a setting
    Q = torch.linalg.qr(torch.randn(32, 8, dtype=torch.float64)).Q.T     # orthonormal rows
    assert o_lora_penalty(Q[None, :4], Q[None, 4:]).item() == pytest.approx(0.0, abs=1e-12)


def _grad_near_orthogonality(eps, *orth):
    "Gradient of lam * penalty (lam = 0.5; the default form unless `orth` names one) at A_t = (rows orthogonal to A_past) + eps * A_past."
    g = torch.Generator().manual_seed(0)
    P = torch.randn(1, 8, 64, dtype=torch.float64, generator=g)
    B = torch.linalg.qr(P[0].T).Q
    A0 = torch.randn(1, 8, 64, dtype=torch.float64, generator=g); A0 = A0 - A0 @ B @ B.T
    assert (P @ A0.transpose(1, 2)).abs().max() < 1e-12                  # A0 is orthogonal to P
    A = (A0 + eps * P).requires_grad_()
    (0.5 * o_lora_penalty(P, A, *orth)).backward()
    return P, A.grad


def test_o_lora_gradient_does_not_vanish_near_orthogonality():
    "The default penalty's gradient is lam * sign(M)^T A_past whatever the overlap's size: it does not shrink with it."
    norms = []
    for eps in (1e-3, 1e-6):
        P, g = _grad_near_orthogonality(eps)
        expected = 0.5 * torch.sign(P @ P.transpose(1, 2)).transpose(1, 2) @ P
        torch.testing.assert_close(g, expected, rtol=0, atol=1e-9)
        norms.append(g.norm().item())
    assert norms[1] == pytest.approx(norms[0], rel=1e-9) and norms[1] > 0.5 * P.norm().item()


def test_o_lora_squared_option_gradient_shrinks_with_the_overlap():
    sq = [_grad_near_orthogonality(e, "squared")[1].norm().item() for e in (1e-3, 1e-6)]
    assert sq[1] == pytest.approx(sq[0] * 1e-3, rel=1e-6)
    P, g = _grad_near_orthogonality(1e-6, "squared")
    assert g.norm() < 1e-4 * P.norm()


def test_o_lora_config_orth():
    assert make_strategy("o_lora").cfg.orth == "l1" and make_strategy("o_lora").cfg.lam == 0.5
    assert make_strategy("o_lora", {"orth": "squared"}).cfg.orth == "squared"
    with pytest.raises(ConfigError, match=r"orth"):
        make_strategy("o_lora", {"orth": "l2"})


@pytest.mark.parametrize("orth", ["l1", "squared"])
def test_o_lora_strategy_penalty_by_hand(tiny, orth):
    m, s = tiny.fresh(), make_strategy("o_lora", {"orth": orth})
    s.setup(m, NS(initial=[], stream=tiny.stream, train=tiny.cfg, seed=0, cache=None))
    s.before_task(1, tiny.stream[0]); s.after_task(1, tiny.stream[0]); s.before_task(2, tiny.stream[1])
    f = (lambda M: M.abs().sum()) if orth == "l1" else (lambda M: M.square().sum())
    with torch.no_grad():
        want = 0.5 * sum(f(l.lora_A["task1"].weight @ l.lora_A["task2"].weight.T) for l in s.layers.values())
        assert s.penalty({}).item() == pytest.approx(want.item(), rel=1e-5)


# ---- memories with the initial tasks ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke():
    cfg = make_config("smoke", base="instructblip")
    initial, stream = load_task_data(cfg)
    assert [t.name for t in initial] == cfg.initial and initial
    return NS(cfg=cfg, initial=initial, stream=stream,
              ctx=NS(initial=initial, stream=stream, train=cfg.train, seed=cfg.seed, cache=None))


def ids(samples): return [(s.task, s.id) for s in samples]


def test_er_default_fraction_and_the_papers_one_percent():
    assert ERConfig().fraction == 0.05
    assert make_strategy("er", {"fraction": 0.01}).cfg.fraction == 0.01


@pytest.mark.parametrize("fraction", [None, 0.01, 0.25])
def test_er_replays_the_initial_tasks_from_the_first_stream_task(smoke, fraction):
    er = make_strategy("er", {} if fraction is None else {"fraction": fraction}); f = er.cfg.fraction
    er.setup(None, smoke.ctx); first = smoke.stream[0]
    er.before_task(1, first)
    data = er.train_data(1, first)
    for t in smoke.initial:
        got = [s for s in data if s.task == t.name]
        assert len(got) == max(1, math.ceil(f * len(t.train))), t.name
        assert set(ids(got)) <= set(ids(t.train)) and len(set(ids(got))) == len(got)
    assert sum(s.task == first.name for s in data) == len(first.train)
    k = {t.name: max(1, math.ceil(f * len(t.train))) for t in smoke.initial}
    assert er.info()["memory_per_task"] == k and er.info()["memory_samples"] == sum(k.values())


def test_er_memory_counts_state_round_trip(smoke, tmp_path):
    er = make_strategy("er"); er.setup(None, smoke.ctx)
    er.before_task(1, smoke.stream[0]); er.after_task(1, smoke.stream[0])
    per = {t.name: math.ceil(0.05 * len(t.train)) for t in smoke.initial + smoke.stream[:1]}
    info = er.info()
    assert info["memory_per_task"] == per and info["memory_samples"] == sum(per.values()) and info["extra_memory_mb"] > 0
    assert len(er.train_data(2, smoke.stream[1])) == len(smoke.stream[1].train) + sum(per.values())
    torch.save(er.state_dict(), tmp_path / "er.pt")                     # as a checkpoint stores it
    again = make_strategy("er"); again.setup(None, NS(**{**vars(smoke.ctx), "seed": 7}))
    assert ids(again.memory()) != ids(er.memory())
    again.load_state_dict(torch.load(tmp_path / "er.pt", weights_only=False))
    assert ids(again.memory()) == ids(er.memory()) and again.info() == info


@pytest.mark.parametrize("size", [50, 500])
def test_reservoir_offers_the_initial_tasks_first(smoke, size):
    n_init = sum(len(t.train) for t in smoke.initial)
    for name in ("er_reservoir", "agem"):
        s = make_strategy(name, {"buffer_size": size}); s.setup(None, smoke.ctx)
        assert s.buffer.seen == n_init and len(s.memory()) == min(size, n_init), name
        assert set(s.info()["memory_per_task"]) == {t.name for t in smoke.initial}, name
        if name == "er_reservoir":
            data = s.train_data(1, smoke.stream[0])
            assert sum(x.task in smoke.cfg.initial for x in data) == min(size, n_init)
        s.after_task(1, smoke.stream[0])
        assert s.buffer.seen == n_init + len(smoke.stream[0].train)
        assert sum(s.info()["memory_per_task"].values()) == s.info()["memory_samples"] == min(size, s.buffer.seen)


def test_blip2_base_memories_hold_stream_tasks_only():
    cfg = make_config("smoke", base="blip2"); initial, stream = load_task_data(cfg)
    assert initial == []
    er = make_strategy("er"); er.setup(None, NS(initial=initial, stream=stream, seed=0))
    assert er.train_data(1, stream[0]) == list(stream[0].train) and er.info()["memory_samples"] == 0


def test_derpp_holds_the_initial_tasks_with_the_bases_logits(tiny):
    m, held = tiny.fresh("instructblip"), tiny.initial[0]
    der = make_strategy("derpp", {"buffer_size": 8, "mem_bs": 4})
    der.setup(m, NS(initial=tiny.initial, stream=tiny.stream, train=tiny.cfg, seed=0, cache=None))
    der.before_task(1, tiny.stream[0])
    assert der.buffer.seen == len(held.train) and der.info()["memory_per_task"] == {held.name: 8}
    with torch.no_grad():
        mb = m.make_batch([s for s, _ in der.buffer.items])
        lg = answer_logits(mb, m.loss(mb, return_logits=True)[1])[0]
    torch.testing.assert_close(torch.cat([z for _, z in der.buffer.items]), lg.half(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", ["derpp", "er_reservoir"])
def test_memory_with_initial_tasks_resumes_exactly(tiny, name, tmp_path):
    m1, m2 = tiny.fresh("instructblip"), tiny.fresh("instructblip")
    full = run_stream(m1, make_strategy(name), tiny.initial, tiny.stream, tiny.cfg, ckpt_dir=tmp_path, progress=False)
    assert tiny.initial[0].name in full["strategy"]["memory_per_task"]
    (tmp_path / "step002.pt").unlink()
    again = run_stream(m2, make_strategy(name), tiny.initial, tiny.stream, tiny.cfg, ckpt_dir=tmp_path, resume=True, progress=False)
    assert again["matrix"] == full["matrix"] and again["strategy"] == full["strategy"]
    a, b = trainable_state(m1), trainable_state(m2)
    assert all(torch.equal(a[k], b[k]) for k in a)
