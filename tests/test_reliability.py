"Reliability, adversarially: runs killed with SIGKILL and resumed, repeated runs, bad input, numerical faults, concurrent sweeps, old results folders."
import json, os, random, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from conftest import BIN, cli
from test_datasets_run import write_records
from cit_study.core import ConfigError, FORMAT_VERSION, RESULTS_MARKER
from cit_study.config import RunConfig, make_config
from cit_study.metrics import CLOSED_METRICS
from cit_study.synthetic import TASK_SPECS
from cit_study.results import read_run
from cit_study.runner import execute_run
from cit_study.strategies import Strategy, register
from cit_study.train import load_stream_state

pytestmark = pytest.mark.slow  # kills, resumes and concurrent sweeps through the CLI: `make test` runs them, `make test-fast` does not

RUN = ["--preset", "smoke", "--strategy", "derpp", "--stream", "count,gqa,ocr", "--steps-per-task", "4"]  # DER++: the most state to lose


def run_in_process(results, *extra, kill_at=None):
    env = dict(os.environ); env.pop("CIT_STUDY_KILL_AT", None)
    if kill_at: env["CIT_STUDY_KILL_AT"] = kill_at
    return subprocess.run([str(BIN / "cit-study"), "run", "--in-process", *RUN, *extra, "--results", str(results)],
                          capture_output=True, text=True, timeout=900, env=env)


def outcome(results):
    (run_dir,) = [p.parent for p in Path(results).glob("*/run.json")]
    run = read_run(run_dir / "run.json")
    return run, json.loads((run_dir / "predictions.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "The uninterrupted run, twice, each in its own process."
    root = tmp_path_factory.mktemp("reference")
    for name in ("a", "b"):
        p = run_in_process(root / name)
        assert p.returncode == 0, p.stderr[-3000:]
    return outcome(root / "a"), outcome(root / "b")


def test_same_config_same_results_in_two_processes(reference):
    (a, pa), (b, pb) = reference
    assert a["run_id"] == b["run_id"] and a["matrix"] == b["matrix"] and pa == pb
    assert [t["loss"] for t in a["train"]] == [t["loss"] for t in b["train"]]
    # what repeating it needs: the config (with its seed), the versions, the code's revision, the data's fingerprints
    assert a["config"]["seed"] == 0 and a["config"]["strategy"] == "derpp" and a["versions"]["torch"]
    assert "git" in a and set(a["data"]) == {"count", "gqa", "ocr", *a["evaluated_only"]} and a["data"] == b["data"]


ROW = 3 + len(make_config("smoke").evaluated)  # tasks scored per row: the three stream tasks and the held-in ones
CLOSED = sum(TASK_SPECS[t].metric in CLOSED_METRICS for t in [*RUN[RUN.index("--stream") + 1].split(","), *make_config("smoke").evaluated])  # tasks ranked per row (format-free scores)
KILLS = random.Random(20261201)  # the kill points, drawn once (seeded, so a failure can be repeated)
# Row 0 is read from the base's zero-shot row, which the reference runs cached: the evaluations counted are rows 1-3's.
PLANS = [("train_step", KILLS.randint(5, 12), False),    # tasks 2 and 3 (4 steps each): resumed with a buffer in the checkpoint
         ("evaluate", KILLS.randint(1, 3 * ROW), False),  # rows 1-3
         ("rank", KILLS.randint(1, 3 * CLOSED), False),   # rows 1-3's format-free scores
         ("write_partial", KILLS.randint(4, 6), False),  # writes: the results marker, step000-step003, predictions, run.json
         ("write_before_rename", KILLS.randint(4, 6), False),
         ("evaluate", KILLS.randint(2 * ROW + 1, 3 * ROW), True)]  # in the last row, step001 and step002 on disk: the newest damaged


@pytest.mark.parametrize("point,n,damage", PLANS)
def test_killed_and_resumed_equals_uninterrupted(reference, tmp_path, point, n, damage):
    (ref, ref_preds), _ = reference
    p = run_in_process(tmp_path, kill_at=f"{point}:{n}")
    assert p.returncode == -9, (point, n, p.returncode, p.stderr[-2000:])  # it really was killed
    assert not list(tmp_path.glob("*/run.json"))                           # and nothing looks finished
    if damage:  # one flipped byte in the newest checkpoint: the resume must notice and go back to the one before
        newest = sorted(next(tmp_path.glob("*/checkpoints")).glob("step*.pt"))[-1]
        assert newest.name == "step002.pt"
        raw = bytearray(newest.read_bytes()); raw[len(raw) // 3] ^= 0xFF; newest.write_bytes(bytes(raw))
    p = run_in_process(tmp_path, "--resume")
    assert p.returncode == 0, p.stderr[-3000:]
    assert ("skipping checkpoint" in p.stderr and "step002.pt" in p.stderr) == damage  # reported by name
    run, preds = outcome(tmp_path)
    assert run["matrix"] == ref["matrix"] and preds == ref_preds  # bit for bit
    assert [t["loss"] for t in run["train"]] == [t["loss"] for t in ref["train"]]
    assert not list(tmp_path.rglob("*.tmp"))  # crash leftovers cleared


def test_a_second_writer_of_a_run_is_refused(tmp_path):
    cfg = make_config("smoke", stream=["count"], steps_per_task=2, weights=True)
    out = tmp_path / cfg.run_id; out.mkdir()
    with FileLock(str(out / ".running.lock")):
        with pytest.raises(ConfigError, match="being written by another process"):
            execute_run(cfg, out, progress=False)
    assert not (out / "run.json").exists()


def dataset_case(root, case):
    "A records dataset spoiled in one way; returns (its config, the text the error must name)."
    cfg = write_records(root)
    train = Path(cfg["annotations"]["train"])
    lines = train.read_text().splitlines()
    if case == "truncated":
        train.write_text("\n".join(lines[:-1] + [lines[-1][:len(lines[-1]) // 2]]) + "\n"); return cfg, "train.jsonl"
    if case == "malformed":
        train.write_text("{not json\n" + "\n".join(lines[1:]) + "\n"); return cfg, "train.jsonl"
    if case == "missing_field":
        recs = [json.loads(l) for l in lines]; del recs[2]["answer"]
        train.write_text("\n".join(map(json.dumps, recs)) + "\n"); return cfg, "'answer'"
    if case == "unreadable_image":
        (root / "img" / "train2.png").write_bytes(b"this is not an image"); return cfg, "train2.png"
    if case == "truncated_image":  # a sound header, the pixels cut off: found when the images are read, still before training
        f = root / "img" / "train2.png"; f.write_bytes(f.read_bytes()[:120]); return cfg, "train2.png"
    if case == "missing_image":
        (root / "img" / "train2.png").unlink(); return cfg, "train2.png"
    if case == "empty_task":
        train.write_text(""); return cfg, "no train records"
    raise ValueError(case)


@pytest.mark.parametrize("args,culprit", [
    (["--strategy", "tir_ewc", "--param", "image_encoder=nope"], "nope"),      # unknown encoder
    (["--strategy", "ewc", "--param", "lam=-1"], "lam"),                       # out of range
    (["--strategy", "ewc", "--param", "lam=big"], "lam"),                      # wrong type
    (["--steps-per-task", "-3"], "steps_per_task"),
    (["--grad-accum", "-1"], "grad_accum"),
    (["--max-len", "2"], "max_len"),
])
def test_bad_setting_is_one_line_naming_it(tmp_path, args, culprit):
    p = cli("run", *args, "--results", tmp_path, check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and culprit in err[0], p.stderr
    assert not list(tmp_path.glob("*/run.json"))


@pytest.mark.parametrize("case", ["truncated", "malformed", "missing_field", "unreadable_image", "truncated_image", "missing_image", "empty_task"])
def test_bad_dataset_is_one_line_naming_it(tmp_path, case):
    cfg, culprit = dataset_case(tmp_path / "ds", case)
    spec = tmp_path / "data.yaml"; spec.write_text(yaml.safe_dump([cfg]))
    p = cli("run", "--preset", "smoke", "--datasets", spec, "--stream", "border", "--steps-per-task", 2, "--results", tmp_path / "results", check=False)
    ours = [l for l in p.stderr.splitlines() if l.startswith("cit-study run:")]
    assert p.returncode != 0 and len(ours) == 1 and culprit in ours[0], p.stderr[-3000:]
    assert not list((tmp_path / "results").glob("*/run.json")) and not list((tmp_path / "results").glob("*/checkpoints/step*.pt"))


@register("nan_on_task_2")
class NaNOnTask2(Strategy):
    "A penalty that turns NaN on the second stream task."
    def before_task(self, i, task): self.i = i
    def penalty(self, batch): return batch["logits"].float().mean() * 0 + (float("nan") if self.i == 2 else 0.0)


def test_non_finite_penalty_stops_naming_task_step_and_penalty(tmp_path):
    cfg = make_config("smoke", strategy="nan_on_task_2", stream=["count", "gqa"], steps_per_task=3)
    with pytest.raises(FloatingPointError, match=r"task 2 \(gqa\), step 1: the nan_on_task_2 penalty is not finite"):
        execute_run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "run.json").exists()
    assert load_stream_state(tmp_path / "run" / "checkpoints")["step"] == 1  # the last good checkpoint: after task 1


def test_out_of_range_weight_and_exploding_penalty(tmp_path):
    "A weight that overflows float32 is refused by name; a huge one trains, its penalty recorded unclipped and reported."
    p = cli("run", "--in-process", "--preset", "smoke", "--strategy", "ewc", "--param", "lam=1e300", "--results", tmp_path, check=False)
    ours = [l for l in p.stderr.splitlines() if l.startswith("cit-study run:")]
    assert p.returncode == 2 and len(ours) == 1 and "lam" in ours[0], p.stderr[-2000:]
    p = cli("run", "--in-process", "--preset", "smoke", "--strategy", "ewc", "--param", "lam=1e20", "--stream", "count,gqa",
            "--steps-per-task", "3", "--results", tmp_path)
    run, _ = outcome(tmp_path)
    t2 = run["train"][1]
    assert t2["penalty_end"] > 1e3 * t2["loss"] and run["warnings"] and "the ewc penalty" in run["warnings"][0], run["train"]
    assert "the ewc penalty" in p.stderr


def sweep_results(out:str)->dict:
    line = next(l for l in out.splitlines() if l.startswith("done "))
    return dict(zip(("done", "skipped", "failed"), map(int, [w.strip(",") for w in line.split() if w.strip(",").isdigit()])))


def test_two_sweeps_on_one_folder_run_each_run_once(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"preset": "smoke", "grid": {"seed": [0, 1, 2, 3]}, "params": {"stream": ["count"], "steps_per_task": 2}}))
    procs = [subprocess.Popen([str(BIN / "cit-study"), "sweep", str(grid), "--results", str(tmp_path / "results")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1800) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    counts = [sweep_results(o[0]) for o in outs]
    assert sum(c["done"] for c in counts) == 4 and sum(c["failed"] for c in counts) == 0, counts  # no run ran twice
    runs = {read_run(p)["run_id"] for p in (tmp_path / "results").glob("*/run.json")}
    assert len(runs) == 4 and not list((tmp_path / "results").rglob("*.tmp"))
    stamp = {p: p.read_bytes() for p in (tmp_path / "results").glob("*/run.json")}
    again = cli("sweep", grid, "--results", tmp_path / "results")
    assert sweep_results(again.stdout) == {"done": 0, "skipped": 4, "failed": 0}
    assert all(p.read_bytes() == b for p, b in stamp.items())  # a finished sweep: nothing rerun or rewritten


def test_a_results_folder_of_another_format_is_refused(tmp_path):
    marked = tmp_path / "marked"; marked.mkdir()
    (marked / RESULTS_MARKER).write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    for args in (["run", "--preset", "smoke", "--results", marked], ["report", marked, "--out", tmp_path / "r.html"]):
        p = cli(*args, check=False)
        assert p.returncode == 2 and "format_version" in p.stderr and RESULTS_MARKER in p.stderr, p.stderr
    old = tmp_path / "old"; (old / "x").mkdir(parents=True)
    (old / "x" / "run.json").write_text(json.dumps({"format_version": FORMAT_VERSION - 1, "matrix": [[1.0]]}))
    p = cli("run", "--preset", "smoke", "--results", old, check=False)
    assert p.returncode == 2 and "format_version" in p.stderr and not (old / RESULTS_MARKER).exists(), p.stderr
    assert not [d for d in old.iterdir() if d.name != "x"]  # nothing was started in it


def test_ctrl_c_is_one_line_exit_130_and_resume_finishes(tmp_path):
    "Ctrl-C in a terminal: SIGINT to the whole process group (the command and its run's kernel), during its training (after row 0's checkpoint)."
    args = ["run", "--preset", "smoke", "--strategy", "seqft", "--stream", "count,ocr", "--steps-per-task", "800", "--results", str(tmp_path)]
    p = subprocess.Popen([str(BIN / "cit-study"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal, also when the suite itself runs with SIGINT ignored (nohup, a background job)
    deadline = time.time() + 600
    while not list(tmp_path.glob("*/checkpoints/*.pt")) and p.poll() is None and time.time() < deadline: time.sleep(0.2)
    assert p.poll() is None, "the run ended before it could be interrupted"
    second = cli(*args, check=False)  # the same run again while the first writes it: refused before a kernel starts
    assert second.returncode == 2 and "is being written by another process" in second.stderr, second.stderr[-2000:]
    assert p.poll() is None and not list(tmp_path.glob("*/error.json"))
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("cit-study run: interrupted") and "--resume" in last, err[-3000:]
    assert not list(tmp_path.glob("*/run.json")) and not list(tmp_path.glob("*/error.json"))  # interrupted, not finished nor failed
    assert list(tmp_path.glob("*/checkpoints/*.pt"))  # what was saved stays
    cli(*args, "--resume")
    (run,) = tmp_path.glob("*/run.json")
    assert len(read_run(run)["matrix"]) == 3


# The smoke recipe with fewer steps (the same stages and code): a build in seconds.
FEWER_STEPS = dict(llm_steps=30, vision_steps=20, vl_steps=20, it_steps=10)
BUILD = f"""
import sys, torch; torch.set_num_threads(int(sys.argv[2]))
from dataclasses import replace
from cit_study.config import make_config
from cit_study.bases import ensure_base, base_fingerprint
b = replace(make_config("smoke").bases, **{FEWER_STEPS!r})
print(base_fingerprint(ensure_base("blip2", b, sys.argv[1])), base_fingerprint(ensure_base("instructblip", b, sys.argv[1])))
"""


def test_base_building_is_deterministic_and_run_ids_name_the_weights(tmp_path):
    "Two fresh processes (other torch thread counts, other hash seeds) build the same bases byte for byte; a run id follows the weights, not the recipe."
    fps = []
    for i, (threads, hashseed) in enumerate([(2, "0"), (1, "1")]):
        p = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / f"cache{i}"), str(threads)], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONHASHSEED": hashseed})
        assert p.returncode == 0, p.stderr[-2000:]
        fps.append(p.stdout.split())
    assert fps[0] == fps[1]
    a, b = tmp_path / "cache0" / "bases", tmp_path / "cache1" / "bases"
    files = sorted(f.relative_to(a) for f in a.rglob("*") if f.is_file() and f.name != "done.json" and not f.name.endswith(".lock"))
    assert len(files) >= 10 and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)  # every stage, every file
    # the run id: the same for the same weights, another for other weights under the same recipe
    cfg = lambda: RunConfig(bases=replace(make_config("smoke").bases, **FEWER_STEPS), stream=["classify"])
    rid = cfg().with_weights(tmp_path / "cache0").run_id
    assert cfg().with_weights(tmp_path / "cache1").run_id == rid
    recorded = cfg().with_weights(tmp_path / "cache1")
    w = next((b / "blip2").glob("*/model/model.safetensors")); data = bytearray(w.read_bytes()); data[len(data) // 2] ^= 1; w.write_bytes(bytes(data))
    assert cfg().with_weights(tmp_path / "cache1").run_id != rid
    with pytest.raises(ConfigError, match="base_fingerprint: the base in .* has fingerprint"):
        execute_run(recorded, tmp_path / "run", tmp_path / "cache1", progress=False)  # a config written for other weights is refused
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.fixture(scope="module")
def own_checkpoints(tmp_path_factory):
    "The checkpoints of a short InstructBLIP-like SeqFT run (smoke preset, one task, two steps), made in this process."
    from cit_study.config import config_from_params
    root = tmp_path_factory.mktemp("owned")
    params = dict(preset="smoke", base="instructblip", strategy="seqft", stream=["ocr"], seed=0, steps_per_task=2)
    cfg = config_from_params(params)
    execute_run(cfg, root / cfg.run_id, progress=False)
    assert sorted(p.name for p in (root / cfg.run_id / "checkpoints").glob("step*.pt")) == ["step000.pt", "step001.pt"]
    return params, cfg, root / cfg.run_id / "checkpoints"


@pytest.mark.parametrize("change", [dict(seed=7), dict(strategy="ewc"), dict(stream=["count"]), "base weights"])
def test_resume_refuses_another_runs_checkpoint_and_leaves_nothing(own_checkpoints, tmp_path, change):
    "A checkpoint of another run (seed, method, stream, base weights) in a run's folder: `--resume` is refused in one line naming the file and both run ids, before a kernel starts, and the folder is left as it was."
    import shutil
    from cit_study.config import config_from_params
    from cit_study.runner import run_notebook
    params, cfg, ckpts = own_checkpoints
    if change == "base weights":  # the same settings over a base rebuilt with other weights (as after a change of the building code)
        from cit_study.runner import check_resume
        cfg2 = replace(cfg, base_fingerprint=cfg.base_fingerprint[::-1])
        out = tmp_path / cfg2.run_id; shutil.copytree(ckpts, out / "checkpoints")
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        with pytest.raises(ConfigError) as e: check_resume(out, cfg2)
    else:
        p2 = {**params, **change}; cfg2 = config_from_params(p2)
        out = tmp_path / cfg2.run_id; shutil.copytree(ckpts, out / "checkpoints")
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        t0 = time.time()
        with pytest.raises(ConfigError) as e: run_notebook(p2, tmp_path, resume=True)
        assert time.time() - t0 < 10  # before a kernel starts
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(ckpts.name) in msg and "step001.pt" in msg, msg
    assert f"run {cfg.run_id}" in msg and f"this run {cfg2.run_id}" in msg and cfg.run_id != cfg2.run_id, msg
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before


def test_a_second_start_of_a_running_run_is_refused_at_once(tmp_path):
    "Two identical `cit-study run` commands a moment apart: the second is refused in one line within seconds (the lock is taken before the kernel starts), the first finishes, and its folder holds no error record, lock or progress log."
    from cit_study.config import make_config
    args = ["run", "--preset", "smoke", "--stream", "count", "--steps-per-task", "4", "--results", str(tmp_path)]
    first = subprocess.Popen([str(BIN / "cit-study"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = tmp_path / make_config("smoke", stream=["count"], steps_per_task=4, weights=True).run_id
    t0 = time.time()
    while not (out / ".notebook.lock").exists() and time.time() - t0 < 60: time.sleep(0.2)
    assert (out / ".notebook.lock").exists(), "the first run never started"
    t1 = time.time()
    second = cli(*args, check=False)
    assert time.time() - t1 < 10 and second.returncode == 2, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "being written by another process" in second.stderr, second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert (out / "run.json").exists() and not any((out / f).exists() for f in ("error.json", ".notebook.lock", ".progress.log", ".run.partial.ipynb"))
