"A short stream per strategy, run under `torchrun` (data parallel) or alone; saves each process's final trainable state."
import sys, tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer, trainable_state
from cit_study.strategies import make_strategy
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.train import TrainConfig, init_distributed, run_stream
from cit_study import regularisation, replay  # register the methods

out, strategies = Path(sys.argv[1]), sys.argv[2].split(",")
torch.set_num_threads(1)
rank, world = init_distributed()
tok = train_tokenizer(world_corpus(30), tempfile.mkdtemp())
tasks = [load_task(t, WorldConfig(n_train=24, n_val=2, n_test=4)) for t in ("count", "gqa")]
for name in strategies:
    m = LMM(build_hf_model("blip2", ModelConfig(llm_layers=2, llm_ffn=128), tok, seed=1), tok, "blip2")
    params = {"samples": 8} if name in ("ewc", "mas") else {}
    try:
        res = run_stream(m, make_strategy(name, params), [], tasks, TrainConfig(steps_per_task=3, bs=4, grad_accum=2), seed=0, progress=False)
    except Exception as e:
        torch.save({"error": f"{type(e).__name__}: {e}"}, out / f"{name}-w{world}-r{rank}.pt"); continue
    torch.save({"state": trainable_state(m), "matrix": res["matrix"], "loss": [t["loss"] for t in res["train"]]}, out / f"{name}-w{world}-r{rank}.pt")
