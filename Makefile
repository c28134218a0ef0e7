# The two commands of the README: `make study` and `make test`. Both set up the environment first if needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CIT_STUDY_CACHE ?= $(CURDIR)/.cache/cit_study
export PYTHONHASHSEED = 0

.PHONY: setup study smoke bench test nbtest pytest sync readme clean-notebooks lab

$(STAMP): requirements.txt settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# The study on its embedded default (quick preset): builds both bases, runs the grid, writes reports/quick/index.html.
study: $(STAMP)
	$(BIN)/cit-study study --preset quick --out reports/quick

smoke: $(STAMP)
	$(BIN)/cit-study study --preset smoke --out reports/smoke

# Side-by-side costs: every method's step time and memory against SeqFT (record the table in BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/cit-study bench methods --memory --out reports/bench/methods.json

# Every test: the package and README in sync with the notebooks, the notebooks' own tests, then pytest.
test: $(STAMP) sync nbtest pytest

sync: $(STAMP)
	@before="$$(git status --porcelain; git diff | sha1sum)"; \
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(MAKE) --no-print-directory readme >/dev/null; \
	after="$$(git status --porcelain; git diff | sha1sum)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev_export / nbdev_clean / README generation changed files: commit the regenerated files"; git status --short; exit 1; \
	else echo "notebooks, package and README are in sync"; fi

nbtest: $(STAMP)
	$(BIN)/nbdev_test --path nbs --n_workers 1

pytest: $(STAMP)
	$(BIN)/pytest -q tests

readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown --stdout nbs/index.ipynb 2>/dev/null > README.md.tmp && mv README.md.tmp README.md

lab: $(STAMP)
	$(BIN)/jupyter lab nbs
