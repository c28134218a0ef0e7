# The two commands of the README: `make study` and `make test`. Both set up the environment first if needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CIT_STUDY_CACHE ?= $(CURDIR)/.cache/cit_study
export PYTHONHASHSEED = 0

.PHONY: setup study paper publish smoke bench gpu-check test test-fast browser nbtest pytest sync readme templates clean-notebooks lab lavis-env

$(STAMP): requirements.txt requirements-nodeps.txt settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# The study on its embedded default (quick preset): builds both bases, runs the grid, writes out/quick/index.html.
# Its own folder: the published study (reports/paper) is not touched.
STUDY_OUT ?= out/quick
study: $(STAMP)
	$(BIN)/cit-study study --preset quick --out $(STUDY_OUT) --workers 2

# The paper preset: six stream tasks, 256 test items, five seeds for the claimed methods; 1.7 h on two cores with cached bases, resumable.
# Published into reports/paper with make publish.
PAPER_OUT ?= out/paper
paper: $(STAMP)
	$(BIN)/cit-study study --preset paper --out $(PAPER_OUT) --workers 2

# Publish a finished study (default: the paper study in PAPER_OUT) as the committed published study in PUBLISH_TO: its runs'
# run.json (item scores included), error records and study files, without run notebooks, run pages or raw predictions
# (build output), and the site rebuilt from those files alone, as `cit-study report` rebuilds it on a fresh clone (its title, the study's own, read from study.json).
PUBLISH_FROM ?= $(PAPER_OUT)
PUBLISH_TO ?= reports/paper
publish: $(STAMP)
	@test -f $(PUBLISH_FROM)/study.json || { echo "make publish: $(PUBLISH_FROM)/study.json is missing: run the study first (make paper)" >&2; exit 1; }
	rm -rf $(PUBLISH_TO).staging && mkdir -p $(PUBLISH_TO).staging
	cd $(PUBLISH_FROM) && cp study.json $$(ls tuning.json similarity.json 2>/dev/null) $(CURDIR)/$(PUBLISH_TO).staging/ && \
	  find results -mindepth 2 -maxdepth 2 \( -name run.json -o -name error.json \) -exec cp --parents {} $(CURDIR)/$(PUBLISH_TO).staging/ \;
	$(BIN)/cit-study report $(PUBLISH_TO).staging/results --out $(PUBLISH_TO).staging --workers 2
	rm -rf $(PUBLISH_TO) && mv $(PUBLISH_TO).staging $(PUBLISH_TO)
	@du -sh $(PUBLISH_TO) reports

smoke: $(STAMP)
	$(BIN)/cit-study study --preset smoke --out out/smoke

# Side-by-side costs (record the tables in BENCHMARKS.md): every method against SeqFT, the step, feature cache and evaluation against their baselines, and the smoke and quick studies end to end.
bench: $(STAMP)
	$(BIN)/cit-study bench methods --memory --out reports/bench/methods.json
	$(BIN)/cit-study bench perf --memory --out reports/bench/perf.json
	$(BIN)/cit-study bench study --presets smoke,quick --workers 2 --out reports/bench/study.json

# Every test: the package and README in sync with the notebooks, the notebooks' own tests, then pytest.
test: $(STAMP) browser sync nbtest pytest

# The report-site test opens the site in Debian's headless Chromium (never a browser of Playwright's own): install it if missing.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then echo "chromium: $(CHROMIUM)"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "make browser: $(CHROMIUM) is missing and cannot be installed here (not root, no password-less sudo); install Debian's chromium package (apt-get install -y chromium) and run again" >&2; exit 1; fi; \
	  echo "installing Debian's chromium (apt-get install -y chromium)"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } || \
	  { echo "make browser: apt-get could not install chromium" >&2; exit 1; }; \
	  test -x $(CHROMIUM) || { echo "make browser: chromium installed but $(CHROMIUM) is missing" >&2; exit 1; }; \
	fi

sync: $(STAMP)
	@before="$$(git status --porcelain; git diff | sha1sum)"; \
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(MAKE) --no-print-directory readme templates >/dev/null; \
	after="$$(git status --porcelain; git diff | sha1sum)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev_export / nbdev_clean / README generation changed files: commit the regenerated files"; git status --short; exit 1; \
	else echo "notebooks, package and README are in sync"; fi

nbtest: $(STAMP)
	$(BIN)/nbdev_test --path nbs --n_workers 1

pytest: $(STAMP)
	$(BIN)/pytest -q --durations=25 tests

# The everyday tier: pytest without the tests marked slow (whole runs through the CLI, the smoke study and its site,
# kills and resumes, mini-real, torchrun, submitit). `make test` (CI) still runs everything.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow" --durations=10 tests

# The papermill templates shipped in the package (their sources are nbs/experiments), so an installed package finds them.
templates:
	@mkdir -p cit_study/templates && rm -f cit_study/templates/*.ipynb && cp nbs/experiments/*.ipynb cit_study/templates/

# the docs' timings are filled from BENCHMARKS.md's *Headline timings* (core.fill_timings), never written by hand
FILL_TIMINGS = $(BIN)/python -c "import sys; from cit_study.core import benchmark_timings, fill_timings; sys.stdout.write(fill_timings(sys.stdin.read(), benchmark_timings()))"

readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown --stdout nbs/index.ipynb 2>/dev/null > README.md.raw && $(FILL_TIMINGS) < README.md.raw > README.md.tmp && rm README.md.raw && mv README.md.tmp README.md
	$(BIN)/jupyter nbconvert --to markdown --stdout nbs/guide.ipynb 2>/dev/null > GUIDE.md.raw && $(FILL_TIMINGS) < GUIDE.md.raw > GUIDE.md.tmp && rm GUIDE.md.raw && mv GUIDE.md.tmp GUIDE.md

# On a GPU machine: every GPU path never run on a CPU (the step on the BLIP-2-OPT-2.7B and InstructBLIP-Vicuna-7B shapes in bf16
# against eager, with peak memory; a mini-real stream in bf16 per base kind; the tests marked gpu), under 8 minutes, one JSON.
# Without a GPU it stops with one line.
gpu-check: $(STAMP)
	$(BIN)/cit-study bench gpu --out gpu-check.json

lab: $(STAMP)
	$(BIN)/jupyter lab nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Optional: Salesforce LAVIS in its own environment, to cross-check imported LAVIS checkpoints against LAVIS's own model code
# (scripts/lavis_crosscheck.py). It pins transformers 4.26 and pulls a CUDA torch (~7 GB): never in .venv.
LAVIS_VENV := .venv-lavis
lavis-env:
	test -x $(LAVIS_VENV)/bin/python || $(PYTHON) -m venv $(LAVIS_VENV)
	$(LAVIS_VENV)/bin/pip install --quiet salesforce-lavis==1.0.2 'numpy<2' 'pandas<2.3'
	$(LAVIS_VENV)/bin/python -c "import lavis; print('lavis imports from', lavis.__file__)"
