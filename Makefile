# dlrun — common tasks. `make` runs every offline config as one batch, resumable, with a log.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline copies of the public datasets (tests and CI); unset to use the download cache.
export DLRUN_DATA_DIR ?= $(abspath ../shared/data)
# mnist_mlp needs the network (Keras downloads MNIST); run it by hand when online.
CONFIGS ?= $(filter-out configs/mnist_mlp.yaml,$(sort $(wildcard configs/*.yaml)))
BATCH_DIR ?= outputs/batch

.PHONY: all install install-ray test test-fast lint run batch bench clean

all: batch

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-ray: install
	$(BIN)/python -m pip install -q -e '.[dev,ray]'

# Two workers (this machine's cores); a test file stays on one worker, so its fixtures are made once.
PYTEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow and not ray"

lint: install
	$(BIN)/ruff check dlrun tests benchmarks scripts
	$(BIN)/ruff format --check dlrun tests benchmarks scripts
	$(BIN)/mypy dlrun

run: install
	$(BIN)/dlrun train configs/quickstart.yaml

# Every config in turn; a killed batch continues where it stopped (make again). The log holds a line
# per 10% of each run; index.html lists every run with its headline and links each run's report.html.
batch: install
	mkdir -p $(BATCH_DIR)
	$(BIN)/dlrun batch $(CONFIGS) --out $(BATCH_DIR) --resume 2>&1 | tee -a $(BATCH_DIR)/batch.log
	$(BIN)/dlrun runs $(BATCH_DIR) --report $(BATCH_DIR)/index.html

bench: install
	$(BIN)/python benchmarks/run_benchmarks.py

clean:
	rm -rf outputs/* .pytest_cache .mypy_cache .ruff_cache
	touch outputs/.gitkeep
