"A short stream per strategy, run under `torchrun` (data parallel) or alone; saves each process's final trainable state and its state before each end-of-task broadcast."
import sys, tempfile
from pathlib import Path

import torch

import cit_study.train as T
from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer, trainable_state
from cit_study.methods import make_strategy
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.train import TrainConfig, run_stream
from cit_study.dist import init_distributed
from cit_study import regularisation, replay  # register the methods

out, strategies = Path(sys.argv[1]), sys.argv[2].split(",")
torch.set_num_threads(1)
rank, world = init_distributed()

if world > 1:  # buckets smaller than the tensors, two dtypes: every element summed once
    ts = [torch.arange(5.) + rank, torch.ones(3, 2, dtype=torch.float64) * (rank + 1), torch.full((7,), float(rank))]
    T.all_reduce_(ts, bucket=6)
    torch.save(ts, out / f"allreduce-r{rank}.pt")

before = []  # each process's trainable state when a task ends, before rank 0's is broadcast
_broadcast = T.broadcast_state
def spy(model, strategy):
    before.append(trainable_state(model)); _broadcast(model, strategy)
T.broadcast_state = spy

tok = train_tokenizer(world_corpus(30), tempfile.mkdtemp())
tasks = [load_task(t, WorldConfig(n_train=24, n_val=2, n_test=4)) for t in ("count", "gqa")]
for name in strategies:
    method, _, variant = name.partition("-")  # 'agem-dropout': A-GEM on a model with dropout (each process its own masks)
    m = LMM(build_hf_model("blip2", ModelConfig(llm_layers=2, llm_ffn=128, dropout=0.1 if variant == "dropout" else 0.0), tok, seed=1), tok, "blip2")
    params = {"samples": 8} if method in ("ewc", "mas") else {}
    before.clear(); init = trainable_state(m)
    try:
        res = run_stream(m, make_strategy(method, params), [], tasks, TrainConfig(steps_per_task=3, bs=4, grad_accum=2), seed=0, progress=False)
    except Exception as e:
        torch.save({"error": f"{type(e).__name__}: {e}"}, out / f"{name}-w{world}-r{rank}.pt"); continue
    torch.save({"state": trainable_state(m), "init": init, "before": list(before), "matrix": res["matrix"], "loss": [t["loss"] for t in res["train"]]},
               out / f"{name}-w{world}-r{rank}.pt")
