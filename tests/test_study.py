"End-to-end paths: the smoke study through the CLI and papermill, resume, bad input, sweeps."
import json, math, re
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, ROOT
from cit_study.core import ConfigError, read_json, config_hash, atomic_write_json, FORMAT_VERSION
from cit_study.config import make_config, config_from_params
from cit_study.results import read_run
from cit_study.metrics import PEER_METRICS
from cit_study.notebooks import check_params, WarmKernel
from cit_study.runner import execute_run, run_notebook
from cit_study.sweeps import sweep, run_all
from cit_study.study import plan_study, stream_orders
import cit_study.train as train_mod

SUMMARY_KEYS = {"A_T", "F_T", "AA", "BWT_code", "BWT", "FWT", "plasticity", "MAA", "retention", "F_T_floor", "F_T_knowledge", "F_T_format", "A_T_knowledge", "retention_learned",
                *PEER_METRICS}  # and the peers' metrics by name


@pytest.mark.slow
def test_smoke_study_writes_runs_and_report(smoke_study):
    out, p = smoke_study
    runs = sorted((out / "results").glob("*/run.json"))
    assert len(runs) == 4, p.stdout
    assert "it/s" not in p.stderr and "runs:" not in p.stderr, p.stderr[-2000:]  # --quiet: no bars
    for path in runs:
        r = read_run(path)
        T, n0 = len(r["config"]["stream"]), r["n_initial"]
        m = np.array(r["matrix"], dtype=float)
        assert m.shape == (T + 1, n0 + T)
        assert set(r["summary"]) == SUMMARY_KEYS
        assert r["summary"]["A_T"] == pytest.approx(np.nanmean(m[-1, n0:]))
        assert (path.parent / "run.ipynb").exists() and (path.parent / "predictions.json").exists()
        assert r["versions"]["torch"] and r["git"] and r["hardware"]["cpus"]
        assert len(r["train"]) == T
    assert not list((out / "results").rglob("*.lock"))  # finished runs leave no lock files behind
    every = [read_run(p) for p in runs]
    assert all(r["n_initial"] == 2 for r in every)  # the smoke preset's held-in tasks are scored on both bases
    for r in every:  # tuned on by the InstructBLIP-like base; only scored on the BLIP-2-like base, never trained in its stream
        assert r["evaluated_only"] == ([] if r["config"]["base"] == "instructblip" else r["tasks"][:2])
        assert [t["task"] for t in r["train"]] == r["config"]["stream"]
        assert set(r["baselines"]) == set(r["tasks"]) and np.array(r["well_formed"]).shape == m.shape
    html = (out / "forgetting.html").read_text()
    assert "Accuracy matrices" in html and re.search(r'<img[^>]+src="data:image/png;base64,', html)  # figures drawn and inlined
    assert "load_results(" not in html and "study_runs(" not in html  # code hidden
    assert "claims" in (out / "index.html").read_text().lower()
    study = read_json(out / "study.json")
    assert study["sweep"]["failed"] == {} and study["total_seconds"] > 0


@pytest.mark.slow
def test_smoke_study_learns_every_stream_task(smoke_study):
    """The learning gate, scaled down to the smoke preset: right after training each stream task SeqFT clears the
    task's floor (the larger of its `majority` and `text_only` baselines) by 10 points (the quick and paper presets: 20), Joint's final score clears it by 5
    (there: 15), and at least 90% of SeqFT's just-learned outputs are in the task's format. A regression that leaves a
    task at a blind guess fails here."""
    from cit_study.report import learning_gate
    out, _ = smoke_study
    runs = [read_run(p) for p in (out / "results").glob("*/run.json")]
    gate = learning_gate(runs, margin=10, joint_margin=5, formed=90)
    assert len(gate) == 2 * len(make_config("smoke").stream)
    assert gate.learned.all(), gate.to_string()
    strict = learning_gate(runs, margin=100, joint_margin=100)  # the gate can fail: no task clears its baseline by 100 points
    assert not strict.learned.any()


@pytest.mark.slow
def test_tuning_study_chooses_on_validation_items_and_the_other_studies_run_at_its_choice(tmp_path, monkeypatch):
    "The tuning protocol runs first, on the validation items at its own seeds; the rule's choice reaches the forgetting study's runs and their run.json; the site shows it."
    import cit_study.study as S
    import cit_study.config as C
    from cit_study.synthetic import load_task
    short = {"stream": [["ocr"]], "steps_per_task": [20]}
    studies = {"tuning": {"grid": {"base": ["blip2"], "strategy": ["lwf"], "seed": [100, 101], **short}, "widen": 0},  # LwF: a strength, and cheap
               "forgetting": {"grid": {"base": ["blip2"], "strategy": ["lwf", "seqft"], "seed": [0], **short}}}
    monkeypatch.setitem(C.PRESETS["smoke"], "studies", studies)  # the plan is made here; the run kernels read only the preset's sizes
    out = tmp_path / "site"
    S.run_study("smoke", out, progress=False)
    plan = read_json(out / "study.json")["studies"]
    tuned = [read_run(out / "results" / i / "run.json") for i in plan["tuning"]]
    assert sorted({r["config"]["strategy_params"].get("lam", 1.0) for r in tuned}) == [0.316, 1.0, 3.16]  # the default and its two neighbours
    assert sorted(r["config"]["seed"] for r in tuned) == [100] * 3 + [101] * 3 + [102] * 3 + [103] * 3  # tuning seeds, then the stability seeds
    assert all(r["config"]["train"]["eval_split"] == "val" for r in tuned)
    world = make_config("smoke").bases.world
    preds = read_json(out / "results" / tuned[0]["run_id"] / "predictions.json")
    for t in tuned[0]["config"]["stream"]:  # every row scored the validation items, not the test items
        assert set(preds[-1][t]) == {s.id for s in load_task(t, world).val} != {s.id for s in load_task(t, world).test}
    rec = read_json(out / "tuning.json")
    assert rec["status"] == "done" and rec["protocol"]["seeds"] == [100, 101] and rec["rule"] == S.TUNING_RULE
    ch = rec["choices"]["blip2"]["lwf"]
    mean = lambda lam, seeds: sum(r["summary"]["A_T"] for r in tuned if r["config"]["strategy_params"].get("lam", 1.0) == lam and r["config"]["seed"] in seeds) / 2
    by = {lam: mean(lam, (100, 101)) for lam in (0.316, 1.0, 3.16)}
    best = max(by.values())
    assert ch["value"] == min((v for v in by if by[v] == best), key=lambda v: (abs(math.log(v)), v)) and ch["val_A_T"] == pytest.approx(best)
    by2 = {lam: mean(lam, (102, 103)) for lam in (0.316, 1.0, 3.16)}
    assert ch["stability"]["value"] == min((v for v in by2 if by2[v] == max(by2.values())), key=lambda v: (abs(math.log(v)), v))
    assert rec["stability"]["same"] == int(ch["stability"]["value"] == ch["value"]) and rec["stability"]["of"] == 1
    final = {r["config"]["strategy"]: r for r in (read_run(out / "results" / i / "run.json") for i in plan["forgetting"])}
    assert final["lwf"]["config"]["strategy_params"] == ({"lam": ch["value"]} if ch["value"] != 1.0 else {})
    assert final["lwf"]["config"]["train"].get("eval_split", "test") == "test" and final["lwf"]["config"]["seed"] == 0
    assert final["lwf"]["tuning"]["value"] == ch["value"] and final["lwf"]["tuning"]["rule"] == S.TUNING_RULE and "tuning" not in final["seqft"]
    html = (out / "tuning.html").read_text()
    assert "Rule:" in html and "Stability:" in html and "The protocol ran in this study" in html


@pytest.mark.slow
def test_a_study_reads_committed_tuning_choices_and_says_so(tmp_path, monkeypatch):
    "A preset whose tuning study reads a committed record runs no tuning run, uses the record's choices and its site says they were read; a missing or unfinished record is refused by name."
    import cit_study.study as S
    import cit_study.config as C
    from cit_study.core import ConfigError, atomic_write_json
    rec = {"rule": S.TUNING_RULE, "protocol": S.TUNING_PROTOCOL, "status": "done", "stability": {"same": 1, "of": 1, "share": 1.0},
           "choices": {"blip2": {"lwf": {"param": "lam", "value": 3.16, "factor": 3.16, "val_A_T": 40.0, "default": 1.0, "rule": S.TUNING_RULE,
                                         "grid": [{"value": 3.16, "factor": 3.16, "val_A_T": 40.0, "seeds": 2}], "interior": True, "edge": None}}}}
    atomic_write_json(tmp_path / "committed.json", rec)
    short = {"stream": [["ocr"]], "steps_per_task": [5]}
    studies = {"tuning": {"grid": {"base": ["blip2"], "strategy": ["lwf"], "seed": [100, 101]}, "read": str(tmp_path / "committed.json")},
               "forgetting": {"grid": {"base": ["blip2"], "strategy": ["lwf"], "seed": [0], **short}}}
    monkeypatch.setitem(C.PRESETS["smoke"], "studies", studies)
    out = tmp_path / "site"
    S.run_study("smoke", out, progress=False)
    plan = read_json(out / "study.json")["studies"]
    assert plan["tuning"] == [] and read_json(out / "tuning.json")["read_from"] == str(tmp_path / "committed.json")
    (run,) = [read_run(out / "results" / i / "run.json") for i in plan["forgetting"]]
    assert run["config"]["strategy_params"] == {"lam": 3.16} and run["tuning"]["value"] == 3.16
    assert "These choices were read, not run here" in (out / "tuning.html").read_text()
    atomic_write_json(tmp_path / "committed.json", {**rec, "status": "widening"})
    with pytest.raises(ConfigError, match="committed.json is not a finished tuning record"): S.read_tuning(tmp_path / "committed.json")
    with pytest.raises(ConfigError, match="missing.json is missing"): S.read_tuning(tmp_path / "missing.json")


@pytest.mark.slow
def test_study_costs_account_for_the_smoke_study(smoke_study):
    "`cit-study bench study` reads where a study's time went: one worker runs one run at a time, so the runs phase holds every run's wall time."
    from cit_study.perf import study_costs
    out, _ = smoke_study
    c = study_costs(out)
    assert (c["runs"], c["failed"], c["workers"]) == (4, 0, 1)
    assert set(c["run_mean_s"]) == {f"{b}/{s}" for b in ("blip2", "instructblip") for s in ("seqft", "joint")}
    assert c["run_wall_sum_s"] <= c["runs_s"] <= c["total_s"] and c["site_s"] > 0
    assert c["train_sum_s"] > 0 and c["eval_sum_s"] > 0 and c["other_sum_s"] >= 0

@pytest.mark.slow
def test_executed_run_notebook_has_outputs(smoke_study):
    out, _ = smoke_study
    nb = json.loads(next((out / "results").glob("*seqft*/run.ipynb")).read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged, "the parameters cell keeps its tag"
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.slow
def test_sweep_rerun_does_nothing(smoke_study):
    out, _ = smoke_study
    before = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*/run.json")}
    res = sweep({"preset": "smoke", "grid": {"base": ["blip2", "instructblip"], "strategy": ["seqft", "joint"], "seed": [0]}},
                out / "results", progress=False)
    assert res["done"] == [] and len(res["skipped"]) == 4 and res["failed"] == {}
    assert before == {p: p.stat().st_mtime_ns for p in (out / "results").glob("*/run.json")}


@pytest.mark.slow
def test_cli_run_and_report(tmp_path):
    p = cli("run", "--preset", "smoke", "--strategy", "seqft", "--steps-per-task", "2", "--stream", "count,ocr", "--results", tmp_path)
    assert "without encryption" not in p.stderr and "[IPKernelApp]" not in p.stderr, p.stderr[-2000:]
    for bar in ("stream rows", "row 1: evaluate", "task 1 count: train", "task 2 ocr: train", "3/3"):  # the kernel's bars, relayed to the terminal (row 0 may come from the cache)
        assert bar in p.stderr, p.stderr[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    r = read_run(run_dir / "run.json")
    assert r["config"]["stream"] == ["count", "ocr"] and r["config"]["train"]["steps_per_task"] == 2
    p = cli("report", tmp_path, "--out", tmp_path / "report.html")
    assert (tmp_path / "report.html").exists(), p.stdout
    for noise in ("without encryption", "KeyboardInterrupt caught", "[IPKernelApp]"):  # the kernels' own log stays out of the terminal
        assert noise not in p.stderr, p.stderr[-2000:]
    res = tmp_path / "results"; res.mkdir(); run_dir.rename(res / run_dir.name); (tmp_path / "cit-study-results.json").rename(res / "cit-study-results.json")
    p = cli("report", res)  # no --out: a site folder of its own beside RESULTS, nothing loose next to it
    assert (tmp_path / "results-site" / "index.html").exists() and (tmp_path / "results-site" / "runs").is_dir(), p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.html", "results", "results-site"]  # --out FILE.html writes that file only
    site = {f: f.read_bytes() for f in (tmp_path / "results-site").rglob("*") if f.is_file()}
    # a folder without runs: refused in one line, no site
    (tmp_path / "empty").mkdir()
    p = cli("report", tmp_path / "empty", check=False)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "no runs to report" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "empty-site").exists()
    # a damaged run (a matrix of the wrong shape): named by its file; the site built before stays as it was
    bad = tmp_path / "bad" / run_dir.name; bad.mkdir(parents=True)
    r["matrix"] = r["matrix"][:-1]; (bad / "run.json").write_text(json.dumps(r))
    p = cli("report", tmp_path / "bad", "--out", tmp_path / "results-site", check=False)
    assert p.returncode == 2 and str(bad / "run.json") in p.stderr and "matrix has 2 rows" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert {f: f.read_bytes() for f in (tmp_path / "results-site").rglob("*") if f.is_file()} == site
    assert not [f for f in (tmp_path / "results-site").iterdir() if f.name.startswith(".")]  # nothing staged is left


@pytest.mark.parametrize("args,culprit", [
    (["--strategy", "nope"], "nope"),
    (["--param", "lam=3"], "lam"),
    (["--stream", "count,count"], "more than once"),
    (["--stream", "count,teleport"], "teleport"),
    (["--base", "llava"], "llava"),
    (["--preset", "huge"], "huge"),
    (["--seed", "99999999999999999999"], "seed"),
    (["--seed", "-1"], "seed"),
    (["--stream", ","], "names no task"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, args, culprit):
    p = cli("run", *args, "--results", tmp_path, check=False)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and culprit in err[0], p.stderr
    assert not list(tmp_path.glob("*/run.json"))


def test_os_errors_are_one_line_naming_the_path(tmp_path):
    f = tmp_path / "a-file"; f.write_text("not a folder")
    p = cli("run", "--preset", "smoke", "--results", f, check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and f"{f}: a file, not a folder" in err[0] and "File exists" not in err[0] and "Traceback" not in p.stderr, p.stderr
    assert f.read_text() == "not a folder"  # nothing of the user's is touched


def test_unknown_or_mistyped_papermill_parameter(tmp_path):
    with pytest.raises(ConfigError, match="strategy_name"):
        run_notebook({"strategy_name": "seqft"}, tmp_path)
    with pytest.raises(ConfigError, match="'seed'"):
        run_notebook({"seed": "0"}, tmp_path)
    with pytest.raises(ConfigError, match="'stream'"):
        check_params({"stream": "count"})
    assert not list(tmp_path.iterdir())


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    cfg = make_config("smoke", stream=["count", "ocr", "ground"], steps_per_task=4)
    full = execute_run(cfg, tmp_path / "full", progress=False)

    real = train_mod.train_task
    def crash_on_task_3(model, strategy, i, task, *a, **k):
        if i == 3: raise KeyboardInterrupt("interrupted during task 3")
        return real(model, strategy, i, task, *a, **k)
    monkeypatch.setattr(train_mod, "train_task", crash_on_task_3)
    with pytest.raises(KeyboardInterrupt):
        execute_run(cfg, tmp_path / "cut", progress=False)
    assert not (tmp_path / "cut" / "run.json").exists()  # nothing looks complete
    monkeypatch.setattr(train_mod, "train_task", real)
    import torch
    (ck,) = sorted((tmp_path / "cut" / "checkpoints").glob("step*.pt"))[-1:]
    saved = torch.load(ck, weights_only=False)
    assert saved["step"] == 2

    resumed = execute_run(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["matrix"] == full["matrix"]
    assert read_json(tmp_path / "cut" / "predictions.json") == read_json(tmp_path / "full" / "predictions.json")
    # tasks 1-2 came from the checkpoint, not a re-run: their records, wall times included, are the saved ones
    assert resumed["train"][:2] == saved["state"]["train"] and len(resumed["train"]) == 3


def test_zero_shot_row_is_read_from_the_cache_once_stored(tmp_path, monkeypatch):
    "The first run of a base stores row 0 per task; a later run takes it from there (a planted entry shows), unless its strategy changes the base at setup."
    from cit_study.runner import zero_shot_row, zero_shot_paths
    from cit_study.strategies import SeqFT
    run = lambda seed, name: execute_run(make_config("smoke", stream=["ocr"], steps_per_task=2, seed=seed), tmp_path / name, progress=False)
    a = run(3, "a")
    cfg = make_config("smoke", stream=["ocr"], steps_per_task=2, seed=3, weights=True)
    paths = zero_shot_paths(cfg, a["data"]); z = zero_shot_row(paths)
    assert set(z) == set(a["tasks"]) and [z[t][0] for t in a["tasks"]] == a["matrix"][0]
    assert {t: z[t][1] for t in a["tasks"]} == read_json(tmp_path / "a" / "predictions.json")[0]
    closed = [k for k, t in enumerate(a["tasks"]) if z[t][3] is not None]  # caption is not closed-answer: no format-free score
    assert closed and [z[a["tasks"][k]][2] for k in closed] == [a["knowledge"][0][k] for k in closed]  # the format-free scores are cached beside
    path = paths["ocr"]; saved = path.read_text()
    try:
        atomic_write_json(path, {"score": -1.0, "predictions": {k: "planted" for k in z["ocr"][1]}, "knowledge": -2.0, "ranked": {k: "planted" for k in z["ocr"][3]}})
        k = a["tasks"].index("ocr")
        b = run(4, "b")
        assert b["matrix"][0][k] == -1.0 and b["knowledge"][0][k] == -2.0  # row 0 came from the cache, its format-free score too
        monkeypatch.setattr(SeqFT, "zero_shot_is_base", False)
        assert run(5, "c")["matrix"][0] == a["matrix"][0]  # evaluated afresh
    finally: path.write_text(saved)


@pytest.mark.slow
def test_warm_kernel_run_equals_fresh_kernel_run(tmp_path):
    "A run executed in a kernel that already ran another run gives exactly what a fresh kernel gives."
    target = {"preset": "smoke", "strategy": "ewc", "stream": ["count", "ocr"], "steps_per_task": 6, "seed": 1}
    other = {"preset": "smoke", "strategy": "er", "stream": ["ocr", "count"], "steps_per_task": 6, "seed": 2}
    fresh = run_notebook(target, tmp_path / "fresh")
    with WarmKernel() as k:
        run_notebook(other, tmp_path / "warm", kernel=k)
        warm = run_notebook(target, tmp_path / "warm", kernel=k)
        assert k.used == 2
    a, b = read_run(fresh / "run.json"), read_run(warm / "run.json")
    assert a["run_id"] == b["run_id"] and a["matrix"] == b["matrix"]
    assert read_json(fresh / "predictions.json") == read_json(warm / "predictions.json")


def test_run_all_runs_each_id_once_and_records_failures(tmp_path, monkeypatch):
    ok = {"preset": "smoke", "strategy": "seqft", "stream": ["count"], "steps_per_task": 2}
    import cit_study.sweeps as sweeps_mod
    real = sweeps_mod.run_notebook
    def flaky(params, *a, **k):
        if params.get("seed") == 3: raise RuntimeError("run failed on purpose")
        return real(params, *a, **k)
    monkeypatch.setattr(sweeps_mod, "run_notebook", flaky)
    res = run_all([ok, dict(ok), {**ok, "seed": 3}], tmp_path, progress=False, workers=2)
    assert len(res["done"]) == 1 and len(res["failed"]) == 1 and "on purpose" in next(iter(res["failed"].values()))
    assert len(list(tmp_path.glob("*/run.json"))) == 1


def test_study_plan_covers_each_axis(monkeypatch):
    import cit_study.config as study_mod  # the presets
    from cit_study.study import decision_similarities, tau_grid
    plan = plan_study("quick", ["forgetting", "pairwise"])
    ids = lambda name: {config_hash(config_from_params(check_params(r), weights=False)) for r in plan[name]}  # configs: run ids add the weights
    assert len(ids("forgetting")) == len(plan["forgetting"])  # no duplicates
    st = make_config("quick").stream
    pairs = {(a, b) for a in st for b in st if a != b}
    assert {tuple(r["stream"]) for r in plan["pairwise"]} == pairs | {tuple(v) for v in study_mod.PAIR_CONTROLS.values()}  # and the planted pairs
    assert {r["seed"] for r in plan["pairwise"]} == {0, 1, 2}
    quick = study_mod.PRESETS["quick"]  # the Latin square alone (the similarity order would load the quick base)
    monkeypatch.setitem(study_mod.PRESETS, "quick", {**quick, "studies": {**quick["studies"], "order": {**quick["studies"]["order"], "orders": ["latin"]}}})
    order = plan_study("quick", ["order"])["order"]
    monkeypatch.setitem(study_mod.PRESETS, "quick", quick)
    ends = {(r["strategy"], r["seed"]): set() for r in order}
    for r in order: ends[(r["strategy"], r["seed"])].add((r["stream"] or st)[-1])
    assert all(e >= set(st) for e in ends.values())  # the Latin square: every task ends the stream in some run of each method and seed
    assert stream_orders("reverse", "blip2", "quick") == [make_config("quick").stream[::-1]]
    with pytest.raises(ConfigError, match="sideways"):
        stream_orders("sideways", "blip2", "quick")
    # thresholds at one tau per regime of the decisions the built (smoke) bases' similarities give
    smoke = study_mod.PRESETS["smoke"]
    grid = dict(base=["blip2", "instructblip"], strategy=["ts_eproj"], seed=[0])
    monkeypatch.setitem(study_mod.PRESETS, "smoke", {**smoke, "studies": {"thresholds": dict(grid=grid, tau="regimes")}})
    runs = plan_study("smoke", ["thresholds"])["thresholds"]
    for b in grid["base"]:
        d = decision_similarities("smoke", b)
        assert len(d) == len(make_config("smoke").stream) - (not make_config("smoke", b).initial)  # the first task decides only after initial ones
        taus = sorted(r["strategy_params"].get("tau", 0.5) for r in runs if r["base"] == b)
        assert taus == tau_grid(d) and len(taus) == len(set(round(x, 6) for x in d)) + 1
        for k, t in enumerate(taus):  # each tau reuses for exactly the decisions above it, a different set each time
            assert sum(x > t for x in d) == len(d) - k if k < len(taus) - 1 else sum(x > t for x in d) == 0
    monkeypatch.setitem(study_mod.PRESETS, "smoke", {**smoke, "studies": {"thresholds": dict(grid=grid, tau="some")}})
    with pytest.raises(ConfigError, match="regimes"):
        plan_study("smoke", ["thresholds"])


def test_old_format_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps({"format_version": FORMAT_VERSION - 1}))
    with pytest.raises(ConfigError, match="format_version"):
        read_run(tmp_path / "r" / "run.json")


@pytest.mark.parametrize("sub,opt", [("run", "--resume"), ("sweep", "grid"), ("report", "--out"), ("study", "--preset"), ("bench", "--memory")])
def test_every_subcommand_has_help(sub, opt):
    p = cli(sub, "--help")
    assert opt in p.stdout and "usage: cit-study " + sub in p.stdout


@pytest.mark.slow
def test_run_page_shows_a_held_in_expert_copied_not_trained_in_place(tmp_path):
    "TS-EProj on the InstructBLIP-like base at tau 0: the first stream task reuses the held-in tasks' expert by training a copy, and the run's page says so."
    out = run_notebook({"preset": "smoke", "base": "instructblip", "strategy": "ts_eproj", "strategy_params": {"tau": 0.0},
                        "stream": ["classify", "ocr"], "steps_per_task": 2}, tmp_path)
    run = read_run(out / "run.json")
    first = run["strategy_info"]["decisions"][0]
    assert first["task"] == "classify" and first["copied_from"] == 0 and run["strategy_info"]["expert_of"]["classify"] != 0, first
    page = (out / "run.ipynb").read_text()
    assert "a copy of expert 0" in page and "The strategy's experts" in page
