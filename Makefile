# The two commands a new user needs: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MODEL_DIR ?= out
# nixpkgs' lib/ for the Nix module tests, beside the project as for CI (../shared/nixpkgs-lib/PROVENANCE.md).
# Override with `make test NIXPKGS_LIB=/path/to/nixpkgs/lib`; a missing one fails those tests, naming it.
NIXPKGS_LIB ?= ../shared/nixpkgs-lib/lib

.PHONY: run test train bench system-deps clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull gigabytes of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[tensorflow,jax,torch,tensorboard,test]'
	touch $@

# nix-instantiate (Nix 2.8) for the Nix tests, Chromium for the browser tests.
system-deps:
	@if ! command -v nix-instantiate >/dev/null || ! test -x /usr/bin/chromium; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nix-bin chromium chromium-driver; \
	fi

# A quick model on the bundled 10,000 digits (about a minute on 2 cores), unless one exists.
$(MODEL_DIR)/model.keras: | $(INSTALLED)
	$(BIN)/cnn-mnist-train --dataset data/mnist-small.npz --epochs 3 --output $(MODEL_DIR)

train: $(MODEL_DIR)/model.keras

run: $(MODEL_DIR)/model.keras
	$(BIN)/cnn-mnist --model $(MODEL_DIR) --host 127.0.0.1 --port 8080

test: $(INSTALLED) system-deps
	NIXPKGS_LIB=$(abspath $(NIXPKGS_LIB)) $(BIN)/python -m pytest

# Every figure in the README's benchmark sections; minutes each, and loud: run it on a quiet machine.
bench: $(MODEL_DIR)/model.keras
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/train.py
	$(BIN)/python bench/serve.py --model $(MODEL_DIR) --free-forward --litert
	$(BIN)/python bench/forward.py --model $(MODEL_DIR)/model.keras --litert
	$(BIN)/python bench/preprocessing.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/limits.py --model $(MODEL_DIR)
	$(BIN)/python bench/soak.py --model $(MODEL_DIR) --minutes 3
	$(BIN)/python bench/reload_memory.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/version_memory.py --model $(MODEL_DIR)/model.keras

clean:
	rm -rf $(VENV) $(MODEL_DIR) test-output .pytest_cache
