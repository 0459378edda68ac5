# The commands a new user needs: `make run`, `make test` and `make check` (docs/development.md).
# Python packages come from the hashed locks in requirements/ (pip-compile, from pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR ?= out
# nixpkgs' lib/ for the Nix module tests, beside the project as for CI (../shared/nixpkgs-lib/PROVENANCE.md).
# Override with `make test NIXPKGS_LIB=/path/to/nixpkgs/lib`; a missing one fails those tests, naming it.
NIXPKGS_LIB ?= ../shared/nixpkgs-lib/lib
# torch's CPU wheels (requirements/constraints.in pins torch==…+cpu); added only where it answers, so that a
# machine without it fails to find torch rather than waiting on an index it cannot reach.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PIP_INSTALL = $(BIN)/pip install --quiet --disable-pip-version-check
# The lock a venv was installed from, which the trainer writes into metrics.json (versions.lock).
record-lock = echo "$(1) sha256:$$(sha256sum $(1) | cut -d' ' -f1)" > $(VENV)/cnn-mnist-lock.txt

.PHONY: run test check lint docs train bench system-deps lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving and training with TensorFlow: what `make run` needs, and nothing else.
$(VENV)/.run-installed: requirements/run.txt pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) --require-hashes -r requirements/run.txt
	$(PIP_INSTALL) --no-deps -e .
	$(call record-lock,requirements/run.txt)
	touch $@

# Everything the tests need: the three backends, TensorBoard and the test tools.
$(VENV)/.test-installed: requirements/test.txt pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) --require-hashes $$(curl -fsS --max-time 5 -o /dev/null $(TORCH_CPU_INDEX)/torch/ 2>/dev/null \
		&& echo --extra-index-url $(TORCH_CPU_INDEX)) -r requirements/test.txt
	$(PIP_INSTALL) --no-deps -e .
	$(call record-lock,requirements/test.txt)
	touch $@ $(VENV)/.run-installed

# nix-instantiate (Nix 2.8) and unshare for the Nix tests, Chromium for the browser tests. Installed with
# apt-get where there is one and we are root; anywhere else, the missing programs and how to get them.
SYSTEM_PROGRAMS := nix-instantiate:nix-bin chromium:chromium chromedriver:chromium-driver unshare:util-linux ip:iproute2 \
	npm:npm pg_ctlcluster:postgresql
system-deps:
	@missing=""; for pair in $(SYSTEM_PROGRAMS); do \
		command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else \
			echo "make test needs these packages (Debian names):$$missing" >&2; \
			echo "  Debian/Ubuntu: sudo apt-get install$$missing" >&2; \
			echo "  elsewhere: Nix 2.8 or later (nix-instantiate), Chromium and ChromeDriver, util-linux (unshare)," \
				"iproute2 (ip), npm (for axe-core), PostgreSQL (for the corrections store tests)" >&2; \
			exit 1; \
		fi; \
	fi

# A quick model on the bundled 10,000 digits (about a minute on 2 cores), unless one exists.
$(MODEL_DIR)/model.keras: | $(VENV)/.run-installed
	$(BIN)/cnn-mnist-train --dataset data/mnist-small.npz --epochs 3 --output $(MODEL_DIR)

train: $(MODEL_DIR)/model.keras

run: $(MODEL_DIR)/model.keras
	$(BIN)/cnn-mnist --model $(MODEL_DIR) --host 127.0.0.1 --port 8080

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# axe-core for the browser tests' accessibility check, pinned by tests/axe/package-lock.json
AXE := tests/axe/node_modules/axe-core/axe.min.js
$(AXE): tests/axe/package.json tests/axe/package-lock.json
	npm ci --prefix tests/axe --no-audit --no-fund

test: $(VENV)/.test-installed system-deps $(AXE) lint
	NIXPKGS_LIB=$(abspath $(NIXPKGS_LIB)) $(BIN)/python -m pytest

# The quick tests: no model trained, no server started, under a minute on 2 cores (bench/quick_loop.py).
check: $(VENV)/.test-installed
	NIXPKGS_LIB=$(abspath $(NIXPKGS_LIB)) $(BIN)/python -m pytest -m "not slow"

docs: $(VENV)/.test-installed
	NIXPKGS_LIB=$(abspath $(NIXPKGS_LIB)) $(BIN)/python docs/generate_reference.py

# The locks, from pyproject.toml (needs pip-tools; torch's CPU build is found on its index or on this disk).
lock:
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links -c requirements/constraints.in \
		--extra tensorflow --extra jax --extra torch --extra tensorboard --extra test -o requirements/test.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links -c requirements/test.txt \
		--extra tensorflow -o requirements/run.txt pyproject.toml

# Every figure in docs/benchmarks.md; minutes each, and loud: run it on a quiet machine.
# bench/instances.py puts Debian's nginx in front of the servers and loads them with wrk
bench: SYSTEM_PROGRAMS += nginx:nginx wrk:wrk
bench: $(MODEL_DIR)/model.keras $(VENV)/.test-installed system-deps
	$(PIP_INSTALL) -e '.[bench]'
	$(BIN)/python bench/train.py
	$(BIN)/python bench/serve.py --model $(MODEL_DIR) --free-forward --litert --server-args "--max-in-flight 64"
	$(BIN)/python bench/cost_limits.py --model $(MODEL_DIR)
	$(BIN)/python bench/tail.py --model $(MODEL_DIR)
	$(BIN)/python bench/forward.py --model $(MODEL_DIR)/model.keras --litert
	$(BIN)/python bench/preprocessing.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/limits.py --model $(MODEL_DIR)
	$(BIN)/python bench/soak.py --model $(MODEL_DIR) --minutes 3
	$(BIN)/python bench/reload_memory.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/version_memory.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/backend_memory.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/instances.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/kserve_binary.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/tf_serving_conformance.py
	$(BIN)/python bench/corrections.py --model $(MODEL_DIR)/model.keras
	$(BIN)/python bench/poisoned_corrections.py
	$(BIN)/python bench/quick_loop.py

clean:
	rm -rf $(VENV) $(MODEL_DIR) test-output .pytest_cache tests/axe/node_modules
