# Two entry points: `make demo` and `make test`. Both create or reuse .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed

.PHONY: demo test test-fast setup clean-outputs

setup: $(STAMP)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m scripts.demo

# One pytest worker per core (pytest-xdist); a test file stays on one worker, so its module fixtures (trained
# projects, a Ray session) are built once. `make test PARALLEL=` runs everything in one process.
PARALLEL ?= -n auto --dist loadfile

# ruff (settings in pyproject.toml) runs first: a lint error fails the target before the slow suite starts.
# pytest exits 5 when it collects no tests: that is a broken suite, so it fails with a plain message.
test: $(STAMP)
	$(PY) -m ruff check .
	@$(PY) -m pytest -q $(PARALLEL); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): the suite is broken"; exit 1; fi; exit $$rc

# The inner loop: every test that trains no model and starts no Python process (tests/conftest.py marks the rest slow).
test-fast: $(STAMP)
	@$(PY) -m pytest -q -m "not slow" $(PARALLEL); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): the suite is broken"; exit 1; fi; exit $$rc

clean-outputs:
	rm -rf runs cache splits submissions reports wandb plan-state pseudo audits oof registry.yaml registry.yaml.lock
