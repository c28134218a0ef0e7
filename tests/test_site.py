"The report site: built over real smoke runs, opened in headless Chromium (Debian's), every page, link and image checked."
import os, re, shutil
from pathlib import Path
from urllib.parse import urlparse, unquote

import pytest

from cit_study.core import read_json
from cit_study.site import build_site, default_studies

pytestmark = pytest.mark.slow  # the smoke study's site, crawled and rendered

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by `make browser`; Playwright never downloads its own
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists(): pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(smoke_study, tmp_path_factory):
    "The site over the smoke study's runs, built into its own folder (the smoke preset runs only the forgetting study, so the others get no page and the index says they have no runs)."
    out, _ = smoke_study
    site_dir = tmp_path_factory.mktemp("site")
    return build_site(out / "results", site_dir, default_studies(), title="smoke study")


def test_site_with_relative_paths_has_every_run_page(smoke_study, tmp_path, monkeypatch):
    "A relative --out, as `make study` passes it: the study pages execute in worker threads with papermill's cwd=, which moves the whole process; every run page listed must still be written where the index links it."
    out, _ = smoke_study
    monkeypatch.chdir(tmp_path)
    index = build_site(os.path.relpath(out / "results", tmp_path), "site", default_studies(), title="smoke study", workers=2)
    assert index == (tmp_path / "site" / "index.html").resolve()
    sj = read_json(tmp_path / "site" / "site.json")
    assert sj["run_pages"] and all((tmp_path / "site" / "runs" / f"{rid}.html").exists() for rid in sj["run_pages"])
    assert sj["studies"] == {"forgetting": None}, sj["studies"]


def crawl(browser, index:Path)->tuple:
    "Open `index` and every page it reaches; returns (problems, pages visited). A problem: a page that does not load, a link to a missing file, a link or request leaving the folder, a missing anchor, an image that did not load."
    root, problems, seen = index.parent.resolve(), [], set()
    ctx = browser.new_context()
    ctx.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: route.abort())  # nothing may load from outside; never wait on a network
    page = ctx.new_page()
    def inside(p:Path)->bool: return p.resolve().is_relative_to(root)
    def on_request(req):
        u = urlparse(req.url)
        if u.scheme == "data": return
        if u.scheme != "file" or not inside(Path(unquote(u.path))): problems.append(f"request outside the folder: {req.url[:120]}")
    page.on("request", on_request)
    todo = [index.resolve()]
    while todo:
        p = todo.pop()
        if p in seen: continue
        seen.add(p); rel = p.relative_to(root)
        try: page.goto(p.as_uri(), wait_until="load")
        except Exception as e:
            problems.append(f"{rel}: does not load ({str(e).splitlines()[0]})"); continue
        for src, done, width in page.eval_on_selector_all("img", "els => els.map(e => [e.currentSrc || e.src, e.complete, e.naturalWidth])"):
            if not done or width == 0: problems.append(f"{rel}: broken image {src[:80]}")
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            u = urlparse(href)
            if u.scheme or u.netloc: problems.append(f"{rel}: link leaves the folder: {href}"); continue
            target = (p.parent / unquote(u.path)).resolve() if u.path else p
            if not inside(target): problems.append(f"{rel}: link leaves the folder: {href}")
            elif not target.is_file(): problems.append(f"{rel}: broken link {href}")
            elif u.fragment and target == p and not page.evaluate("id => !!document.getElementById(id)", unquote(u.fragment)):
                problems.append(f"{rel}: no anchor {href}")
            elif target.suffix == ".html": todo.append(target)
    ctx.close()
    return problems, seen


def above_the_fold(page):
    "The index opens with the forest plot: at 1280 px wide its top is in the first screen, it fits the width, and it loaded."
    fig = page.locator("img.fig").first
    box = fig.bounding_box()
    assert box is not None and box["y"] < 400 and box["width"] <= 1280, box
    assert page.evaluate("img => img.complete && img.naturalWidth > 600", fig.element_handle())


def test_site_in_chromium(browser, site, smoke_study, tmp_path):
    out, _ = smoke_study
    runs = sorted((out / "results").glob("*/run.json"))
    problems, pages = crawl(browser, site)
    assert problems == []
    root = site.parent
    studies = sorted(default_studies())
    assert set(studies) >= {"forgetting", "thresholds", "encoders", "order", "pairwise"}
    assert {p.relative_to(root).as_posix() for p in pages} == {"index.html", "forgetting.html", *(f"runs/{r.parent.name}.html" for r in runs)}
    assert read_json(root / "site.json")["studies"] == {"forgetting": None}  # built, not failed
    assert read_json(root / "site.json")["without_runs"] == [s for s in studies if s != "forgetting"]  # no page, no kernel
    assert read_json(root / "site.json")["planned"] == {"forgetting": len(runs)}  # the smoke study.json's plan

    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.goto(site.as_uri(), wait_until="load")
    assert page.locator("h2", has_text="claims").count() == 1
    above_the_fold(page)
    short, claims, control, setup, run_table = (page.locator("table").nth(k) for k in range(5))
    assert short.locator("tbody tr").count() == 6 and "control:" in short.inner_text() and "Forgetting persists" in short.inner_text()
    assert claims.locator("tbody tr").count() == 5 and "Forgetting persists" in claims.inner_text()
    assert control.locator("tbody tr").count() == 1 and "twin" in control.inner_text()  # the null control, below the findings
    assert run_table.locator("tbody tr").count() == len(runs)
    setup = setup.inner_text()
    assert "Split sizes per task" in setup and "torch" in setup and "Runs' own wall times" in setup and "one revision:" in setup
    assert "Study wall time" in setup and "with 1 at once" in setup  # the smoke study's timing, from its study.json
    assert f"({len(runs)} of {len(runs)} planned runs finished)" in page.inner_text("body")
    shots = [tmp_path / "index.png"] + ([Path(os.environ["CIT_STUDY_SCREENSHOT"])] if os.environ.get("CIT_STUDY_SCREENSHOT") else [])
    for s in shots:
        s.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(s), full_page=True)
        assert s.stat().st_size > 10_000
    img = page.goto((root / "forgetting.html").as_uri(), wait_until="load") and page.locator("img")
    assert img.count() >= 2  # the report's figures are inline PNGs
    ctx.close()


def test_broken_site_is_caught(browser, site, tmp_path):
    "The crawl must fail on a missing page, a broken image and anything loaded from outside the folder."
    bad = tmp_path / "bad"
    shutil.copytree(site.parent, bad)
    gone = sorted((bad / "runs").glob("*.html"))[0]
    gone.unlink()
    f = bad / "forgetting.html"
    f.write_text(re.sub(r'src="data:image/png;base64,[^"]+"', 'src="data:image/png;base64,AAAA"', f.read_text(), count=1))
    (bad / "index.html").write_text((bad / "index.html").read_text().replace("</body>", '<script src="https://cdn.example.org/x.js"></script></body>'))
    problems, _ = crawl(browser, bad / "index.html")
    assert any(f"broken link runs/{gone.name}" in p for p in problems), problems
    assert any(p.startswith("forgetting.html: broken image") for p in problems), problems
    assert any("request outside the folder: https://cdn.example.org/x.js" in p for p in problems), problems


def test_report_refuses_a_folder_of_a_users_files_and_rebuilds_its_own_without_leftovers(smoke_study, tmp_path):
    "`cit-study report RESULTS --out DIR`: a folder holding a user's `runs/mine.txt` and `index.html` is refused in one line and left byte for byte; `--force` keeps the user's other files; a folder holding an earlier site is rebuilt with nothing left over."
    from conftest import cli
    out, _ = smoke_study
    d = tmp_path / "project"; (d / "runs").mkdir(parents=True)
    (d / "runs" / "mine.txt").write_text("x"); (d / "index.html").write_text("<p>my page</p>")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    p = cli("report", out / "results", "--out", d, "--study", f"forgetting={default_studies()['forgetting']}", check=False)
    assert p.returncode != 0 and "mine.txt" not in p.stderr and f"{d / 'index.html'}: not written by a report" in p.stderr and "--force" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before and [x.name for x in d.iterdir()] != [] and not any(x.name.startswith(".") for x in d.iterdir())
    cli("report", out / "results", "--out", d, "--force", "--study", f"forgetting={default_studies()['forgetting']}")
    assert (d / "runs" / "mine.txt").read_text() == "x" and "my page" not in (d / "index.html").read_text()
    site = tmp_path / "site"  # an earlier site, then a rebuild over fewer runs: the pages of the runs that left go, nothing else stays
    shutil.copytree(out / "results", tmp_path / "results")
    cli("report", tmp_path / "results", "--out", site, "--study", f"forgetting={default_studies()['forgetting']}")
    gone = sorted(p.parent.name for p in (tmp_path / "results").glob("*/run.ipynb"))[0]
    assert (site / "runs" / f"{gone}.html").exists()
    shutil.rmtree(tmp_path / "results" / gone)
    cli("report", tmp_path / "results", "--out", site, "--study", f"forgetting={default_studies()['forgetting']}")
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert files == sorted(read_json(site / "site.json")["files"]) and f"runs/{gone}.html" not in files


def test_the_published_index_opens_with_its_forest_plot(browser, tmp_path):
    "The published study's index at 1280 px: the forest plot in the first screen, the per-seed forgetting figure next, the findings in short, the code revisions of its runs collapsed."
    from conftest import ROOT
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.goto((ROOT / "reports" / "paper" / "index.html").as_uri(), wait_until="load")
    above_the_fold(page)
    assert page.locator("img.fig").count() == 2 and page.locator("h2", has_text="How much each method forgets").count() == 1
    assert "Multi-task instruction tuning first reduces forgetting" in page.locator("table").first.inner_text()
    assert page.locator("details summary", has_text="revisions").count() == 1  # several revisions: one line, opened on demand
    page.screenshot(path=str(tmp_path / "published.png")); assert (tmp_path / "published.png").stat().st_size > 10_000
    ctx.close()
