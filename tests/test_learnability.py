"`cit-study bench learn`: each task trained alone from each base, beside its baselines on the same test items."
import json

from conftest import cli
from cit_study.config import make_config
from cit_study.runner import task_baselines
from cit_study.synthetic import load_task
from dataclasses import replace
import pytest


@pytest.mark.slow
def test_bench_learn_rows_describe_their_runs(tmp_path):
    out = tmp_path / "learn.json"
    p = cli("bench", "learn", "--presets", "smoke", "--tasks", "count,ocr", "--steps", "3", "--n-test", "12", "--out", out)
    res = json.loads(out.read_text())
    assert [(r["base"], r["task"]) for r in res["rows"]] == [(b, t) for b in ("blip2", "instructblip") for t in ("count", "ocr")]
    world = replace(make_config("smoke").bases.world, n_test=12)
    bl = task_baselines([load_task(t, world) for t in ("count", "ocr")])
    for r in res["rows"]:
        assert r["steps"] == 3 and r["n_test"] == 12 and 0 <= r["learned"] <= 100 and 0 <= r["well_formed"] <= 100
        assert r["majority"] == bl[r["task"]]["majority"] and r["text_only"] == bl[r["task"]]["text_only"]  # the same test items
        assert abs(r["margin"] - (r["learned"] - r["text_only"])) < 1e-9 and 0 < r["top_share"] <= 100
    assert "margin" in p.stdout and "count" in p.stdout
    bad = cli("bench", "learn", "--presets", "smoke", "--tasks", "count,nosuch", "--out", tmp_path / "x.json", check=False)
    assert bad.returncode != 0 and "nosuch" in (bad.stderr + bad.stdout) and len((bad.stderr + bad.stdout).strip().splitlines()) <= 3
