PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= otel-config.yaml

.PHONY: install run test demo bench clean

# Re-install whenever pyproject.toml changes; the stamp keeps `make test` fast otherwise.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[collector,dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/sessionlens collector --config $(CONFIG)

test: install
	$(PY) -m pytest

demo: install
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
