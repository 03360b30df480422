PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= otel-config.yaml
NODE_DIR := tests/node

.PHONY: install run test demo clean

# Re-install whenever pyproject.toml changes; the stamp keeps `make test` fast otherwise.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[collector,dev]'
	touch $@

# The Node OpenTelemetry exporters tests/test_node_exporters.py drives; without npm, that
# test is skipped rather than the whole install failing.
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NODE_DIR) --no-audit --no-fund && touch $@; \
	else \
		echo "npm not found: skipping $(NODE_DIR) (install Node.js and npm to run the Node exporter test)"; \
	fi

install: $(VENV)/.installed

run: install
	$(VENV)/bin/sessionlens collector --config $(CONFIG)

test: install $(NODE_DIR)/node_modules/.installed
	$(PY) -m pytest

demo: install
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(NODE_DIR)/node_modules
