"Runs on real-dataset tasks by configuration: a dataset in the processed records layout, named in the stream next to a synthetic task."
import json

import numpy as np
import yaml
from PIL import Image

from conftest import cli
from cit_study.results import read_run
import pytest


def write_records(root, n=12, missing=None):
    "A records dataset: train and test JSONL files and 64-pixel PNG images; `missing` names an image left out."
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("test", 4)):
        with open(root / f"{split}.jsonl", "w") as f:
            for i in range(k):
                name = f"{split}{i}.png"
                if name != missing: Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "img" / name)
                colour = ["red", "blue"][i % 2]
                f.write(json.dumps({"id": f"{split}{i}", "image": name, "prompt": "<image> What colour is the border?", "answer": colour}) + "\n")
    return {"name": "border", "format": "records", "metric": "exact", "images": str(root / "img"),
            "annotations": {"train": str(root / "train.jsonl"), "test": str(root / "test.jsonl")}, "image_size": 64}


@pytest.mark.slow
def test_run_on_a_records_dataset_and_a_synthetic_task(tmp_path):
    "A listed dataset the run does not use is not read: its missing image stops nothing."
    unused = {**write_records(tmp_path / "other", missing="train1.png"), "name": "unused"}
    spec = tmp_path / "data.yaml"; spec.write_text(yaml.safe_dump({"datasets": [write_records(tmp_path / "ds"), unused]}))
    cli("run", "--preset", "smoke", "--datasets", spec, "--stream", "border,count", "--steps-per-task", 2, "--results", tmp_path / "results")
    (run,) = [read_run(p) for p in (tmp_path / "results").glob("*/run.json")]
    assert run["tasks"] == run["evaluated_only"] + ["border", "count"] and len(run["matrix"]) == 3  # the held-in tasks are scored too
    assert run["config"]["datasets"][0]["name"] == "border"
    preds = json.loads(next((tmp_path / "results").glob("*/predictions.json")).read_text())
    assert len(preds[-1]["border"]) == 4  # every test record was evaluated


def test_a_missing_image_stops_the_run_before_training(tmp_path):
    spec = tmp_path / "data.yaml"; spec.write_text(yaml.safe_dump([write_records(tmp_path / "ds", missing="train3.png")]))
    p = cli("run", "--preset", "smoke", "--datasets", spec, "--stream", "border", "--steps-per-task", 2, "--results", tmp_path / "results", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "train3.png" in out and "train.jsonl" in out
    assert not list((tmp_path / "results").glob("*/run.json")) and not list((tmp_path / "results").glob("*/checkpoints/*"))


def test_guide_dataset_example_is_valid():
    "The guide's datasets file names known formats and fields (its files are not here, so only the configs are checked)."
    from pathlib import Path
    from cit_study.datasets import DatasetConfig
    text = (Path(__file__).resolve().parent.parent / "GUIDE.md").read_text()
    block = next(b for b in text.split("```yaml")[1:] if "datasets:" in b.split("```")[0]).split("```")[0]
    cfgs = [DatasetConfig.from_dict(d) for d in yaml.safe_load(block)["datasets"]]
    assert [c.name for c in cfgs] == ["flickr", "vqav2", "gqa"]
