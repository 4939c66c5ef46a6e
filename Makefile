# The two commands of the README: `make demo` and `make test`; `make soak` is the long run.
PYTHON ?= python3
VENV ?= .venv
BACKEND ?= matrix
LISTEN ?= 127.0.0.1:8080
STATE ?= state/demo
PYTEST_ARGS ?=
# Test processes: each starts its own Synapse and Prosody; two halve the suite's time on two
# cores (the tests mostly wait on the servers). WORKERS=0 runs them in this one process.
WORKERS ?= 2
SOAK_ARGS ?=

.PHONY: demo test test-fast soak lint bench clean

demo: $(VENV)/.installed-demo
	$(VENV)/bin/livechat-bridge demo --backend $(BACKEND) --listen $(LISTEN) --state $(STATE)

test: $(VENV)/.installed-test
	tools/ensure-debian-packages chromium prosody lua-unbound
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# The fault scenarios that take minutes, then 1,000 conversations for 10 minutes per backend.
soak: $(VENV)/.installed-test
	tools/ensure-debian-packages chromium prosody lua-unbound
	$(VENV)/bin/python -m pytest -m soak $(PYTEST_ARGS)
	$(VENV)/bin/python bench/soak.py $(SOAK_ARGS)

test-fast: $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest tests/unit -q $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-test
	$(VENV)/bin/python bench/relay_latency.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e '.[$*]'
	touch $@

clean:
	rm -rf $(VENV) state .pytest_cache .ruff_cache .mypy_cache *.egg-info
