PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= otel-config.yaml
NODE_DIR := tests/node

.PHONY: install run lint test demo clean

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

# The web UI tests drive Debian's Chromium through Playwright (a Playwright browser
# download is not used). CI runs as root on Debian: install it when it is missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "$(CHROMIUM) is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2; exit 1; \
	fi

install: $(VENV)/.installed

run: install
	$(VENV)/bin/sessionlens collector --config $(CONFIG)

# The rules are [tool.ruff] in pyproject.toml; ruff comes with the dev extra.
lint: install
	$(VENV)/bin/ruff check .

test: lint $(NODE_DIR)/node_modules/.installed $(CHROMIUM)
	$(PY) -m pytest

demo: install
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(NODE_DIR)/node_modules
