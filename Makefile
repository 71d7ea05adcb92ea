# flirtl front door: every target runs Python code from the package; the logic lives there.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BITS   ?= 8
MODEL  ?= models/seq2seqlite-32x32
LANES  ?=
ENGINES ?= 1
SFD    ?=
OUT    ?= build
JOBS   ?= 2

.PHONY: setup test regress rtl bench clean

setup: $(VENV)/.installed

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow"

regress: setup
	$(PY) -m pytest -n $(JOBS)

rtl: setup
	$(PY) -m flirtl rtl --model $(MODEL) --bits $(BITS) --engines $(ENGINES) $(if $(LANES),--lanes $(LANES)) $(if $(SFD),--sfd-stream) --out $(OUT)

bench: setup
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_golden.py

clean:
	rm -rf build sim .pytest_cache
