# The README's two commands: `make demo` and `make test`. Both create what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test unit integration lint load bench clean compose-tool browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m clients.demo

test: $(STAMP) compose-tool browser
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests

unit: $(STAMP) compose-tool
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP) browser
	$(BIN)/python -m pytest -q tests/integration

bench: $(STAMP)
	$(BIN)/python -m bench.latency --out bench/out-latency.txt

# Load test against the running stack (`stagelog up`), then the loss check of what it sent.
# Settings: loadtest/locust.conf; extra flags: make load LOCUST_ARGS="-u 16 -t 2m".
load: $(STAMP)
	$(BIN)/locust -f loadtest/locustfile.py --config loadtest/locust.conf $(LOCUST_ARGS)
	$(BIN)/python -m loadtest.losscheck

# tests/unit/test_deploy.py validates docker-compose.yml with docker-compose (installed if missing).
compose-tool:
	bash docker/ensure-compose.sh

# tests/integration/test_report.py opens the report in Debian's chromium (installed if missing).
browser:
	bash scripts/install_chromium.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .stagelog
