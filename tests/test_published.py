"""The published paper study (`reports/paper`) as tests: its verdicts, its controls and its learning gate.

A code change that flips a published verdict fails here and must be explained: rerun the study, look at what
changed, and rewrite `published_verdicts.csv` with `python tests/test_published.py --write` (see its rows in git's diff).
"""
import csv, json, math, sys
from pathlib import Path

import pytest

from conftest import ROOT
from cit_study.report import load_results, learning_gate
from cit_study.claims import comparisons_frame, forgetting_runs, CONTROL, COMPARISONS, MARGIN, BASES, ORIGINAL_GATE
from cit_study.analysis import study_runs, pair_controls
from cit_study.config import preset
from cit_study.metrics import cl_summary

PAPER = ROOT / "reports" / "paper"
RESULTS = PAPER / "results"
EXPECTED = Path(__file__).with_name("published_verdicts.csv")
COLUMNS = ["finding", "primary", "comparison", "metric", "want", "outcome"]


def verdicts(runs:list|None=None, results=RESULTS)->list:
    "Every comparison of the claims rule over the published runs, under the learning gate they were judged by (`ORIGINAL_GATE`), as rows of `COLUMNS` (strings)."
    cf = comparisons_frame(load_results(results) if runs is None else runs, preset("paper")["stream"], results, gate=ORIGINAL_GATE)
    return [{k: str(getattr(r, k)) for k in COLUMNS} for r in cf.itertuples()]


@pytest.fixture(scope="module")
def runs():
    return load_results(RESULTS)


@pytest.fixture(scope="module")
def got(runs):
    return verdicts(runs)


def test_published_study_is_committed():
    "The published study is in the tree: its site, its runs' run.json (with item scores), its study files, and no build output."
    assert (PAPER / "index.html").exists() and (PAPER / "study.json").exists() and (PAPER / "tuning.json").exists()
    planned = {i for ids in json.loads((PAPER / "study.json").read_text())["studies"].values() for i in ids}
    assert planned and {p.parent.name for p in RESULTS.glob("*/run.json")} == planned  # every planned run, nothing else
    assert not list(RESULTS.glob("*/run.ipynb")) and not list(RESULTS.glob("*/predictions.json")) and not list(PAPER.glob("runs/*"))
    size = sum(p.stat().st_size for p in (ROOT / "reports").rglob("*") if p.is_file())
    assert size <= 15 * 2**20, f"reports/ holds {size / 2**20:.1f} MB, over 15 MB"


def test_published_summaries_are_their_matrices(runs):
    "Every published summary is what `cl_summary` computes from the run's stored matrix."
    for r in runs:
        got, want = r["summary"], cl_summary(r["matrix"], r["n_initial"])
        assert all((math.isnan(got[k]) and math.isnan(want[k])) or got[k] == pytest.approx(want[k]) for k in want if k in got), r["run_id"]


def test_published_verdicts_hold(got):
    "Every comparison's outcome is the one recorded in published_verdicts.csv."
    with open(EXPECTED) as f: want = list(csv.DictReader(f))
    key = lambda r: (r["finding"], r["comparison"], r["metric"])
    w, g = {key(r): r["outcome"] for r in want}, {key(r): r["outcome"] for r in got}
    changed = [f"{k}: published {w.get(k)}, now {g.get(k)}" for k in sorted(set(w) | set(g)) if w.get(k) != g.get(k)]
    assert not changed, "verdicts changed:\n" + "\n".join(changed)


def test_null_control_is_never_an_effect(got):
    "SeqFT and its twin are never found to differ: the rule does not turn noise into a finding."
    rows = [r for r in got if r["finding"] == str(CONTROL[0])]
    assert len(rows) == sum(c.finding == CONTROL[0] for c in COMPARISONS) and all(r["outcome"] in ("supported", "inconclusive") for r in rows), rows


def test_planted_pairs_are_told_apart():
    """The conflicting pair is the more similar one and makes the model forget more than the disjoint pair. At the
    published three seeds the paired interval of that excess does not yet exclude 0 (the disjoint pair's drop varies by
    seed), so the instrument's full pass (`passes`) is not claimed: what holds is checked."""
    pc = pair_controls(study_runs(RESULTS, "pairwise"), preset("paper")["studies"]["pairwise"]["controls"])
    assert len(pc) and pc["similarity ranks conflict higher"].all(), pc.T
    assert all(c.mean > d.mean + MARGIN for c, d in zip(pc["conflict drop"], pc["disjoint drop"])), pc.T  # by more than the claims' margin


def test_every_stream_task_is_learned(runs):
    "On both bases SeqFT learns every stream task well above its text-only baseline, Joint too, with well-formed outputs."
    gate = learning_gate(forgetting_runs(runs, preset("paper")["stream"]))
    assert len(gate) == len(BASES) * len(preset("paper")["stream"]) and gate.learned.all(), gate[~gate.learned]


def test_readme_findings_table_is_the_published_studys(runs):
    "The README's findings table is `claims.findings_markdown` of the committed runs: the front page cannot drift from them."
    from cit_study.claims import findings_markdown
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| finding | outcome |")
    table = readme[start:readme.index("\n\n", start)]
    assert table == findings_markdown(runs, preset("paper")["stream"], RESULTS, gate=ORIGINAL_GATE), "README's findings table differs: regenerate it from claims.findings_markdown"


def test_readme_shows_the_amended_gates_changes(runs):
    "The README's amendment table is `claims.amendment_markdown` of the committed runs: every outcome the amended learning gate changes, beside the original."
    from cit_study.claims import amendment_markdown
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| finding | comparison | outcome, gate")
    assert readme[start:readme.index("\n\n", start) if "\n\n" in readme[start:] else None].strip() == amendment_markdown(runs, preset("paper")["stream"], RESULTS)


def test_readme_quotes_the_floored_forgetting_as_computed(runs):
    "The README's floored and format F_T of SeqFT and of finding 2 are what the committed runs give (`report.run_summary` through the claims)."
    cf = comparisons_frame(runs, preset("paper")["stream"], RESULTS, gate=ORIGINAL_GATE)
    row = lambda name: cf[(cf.comparison == name) & (cf.metric == "F_T")].iloc[0]
    readme = " ".join((ROOT / "README.md").read_text().split())
    quotes = [f"SeqFT's F_T of {row('SeqFT (BLIP-2-like)').estimate.mean:.1f} is {row('SeqFT (BLIP-2-like)').split['F_T_floor'].fmt().replace(' (seeds only)', '')}",
              f"{row('SeqFT (InstructBLIP-like)').estimate.mean:.1f} is {row('SeqFT (InstructBLIP-like)').split['F_T_floor'].fmt().replace(' (seeds only)', '')}"]
    two = row("SeqFT (InstructBLIP-like) vs SeqFT (BLIP-2-like)")
    quotes += [f"difference of {two.estimate.mean:.1f} becomes {two.split['F_T_floor'].fmt().replace(' (seeds only)', '')}",
               f"differs by {two.split['F_T_format'].fmt().replace(' (seeds only)', '')}"]
    for q in quotes: assert q in readme, q


def test_readme_quotes_the_planted_pairs_as_computed():
    "The README's sentence on the planted pairs quotes what `analysis.pair_controls` computes from the committed runs."
    pc = pair_controls(study_runs(RESULTS, "pairwise"), preset("paper")["studies"]["pairwise"]["controls"]).iloc[0]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for quote in (f"({pc['conflict s']:.3f} against {pc['disjoint s']:.3f})", f"a drop of {pc['conflict drop'].mean:.1f} against {pc['disjoint drop'].mean:.1f} points",
                  f"three seeds, {pc['conflict - disjoint'].fmt()}"):
        assert quote in readme, f"README does not say {quote!r}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    rows = verdicts()
    with open(EXPECTED, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n"); w.writeheader(); w.writerows(rows)
    print(f"{len(rows)} verdicts written to {EXPECTED}")



@pytest.mark.slow
def test_the_readmes_rebuild_command_reproduces_the_committed_site_byte_for_byte(tmp_path):
    "`cit-study report reports/paper/results --out reports/paper` (the README's rebuild command), run on a copy: every page, the manifest and the tables come out byte for byte as committed."
    import shutil
    from conftest import cli
    copy = tmp_path / "paper"; shutil.copytree(PAPER, copy)
    cli("report", copy / "results", "--out", copy, "--workers", "2")
    committed = sorted(p.relative_to(PAPER).as_posix() for p in PAPER.rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert rebuilt == committed
    differ = [f for f in committed if (PAPER / f).read_bytes() != (copy / f).read_bytes()]
    assert not differ, f"rebuilt differently: {differ[:5]}"
