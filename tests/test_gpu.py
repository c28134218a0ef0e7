"The GPU paths, on a GPU: marked `gpu`, skipped without one (`make gpu-check` runs them)."
import math

import pytest
import torch

from cit_study.config import make_config
from cit_study.runner import execute_run
from cit_study.synthetic import WorldConfig, load_task, world_corpus
from cit_study.model import LMM, ModelConfig, build_hf_model, train_tokenizer

pytestmark = pytest.mark.gpu


def test_a_smoke_run_in_bf16_on_the_gpu_learns_its_task(tmp_path):
    "The run path on the GPU (its device, bf16 autocast, the feature cache on the device): ocr learned to the smoke learning gate."
    r = execute_run(make_config("smoke", stream=["ocr"], precision="bf16"), tmp_path, progress=False)
    k = r["tasks"].index("ocr")
    assert all(math.isfinite(x) for row in r["matrix"] for x in row)
    assert r["matrix"][1][k] >= r["baselines"]["ocr"]["text_only"] + 20, (r["matrix"], r["baselines"]["ocr"])


def test_image_features_on_the_gpu_match_the_cpu(tmp_path):
    "The frozen vision encoder's features (what the cache holds) agree across devices to float32 rounding."
    tok = train_tokenizer(world_corpus(20), str(tmp_path))
    m = LMM(build_hf_model("blip2", ModelConfig(), tok, seed=1), tok, "blip2")
    samples = load_task("classify", WorldConfig(n_train=8, n_val=2, n_test=4)).test
    cpu = m.image_embeds(samples).cpu()
    gpu = m.to("cuda").image_embeds(samples).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4, rtol=1e-3), (cpu - gpu).abs().max()
