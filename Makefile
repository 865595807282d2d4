# The README's two commands: `make demo` and `make test`. Both create .venv and install the project
# from pyproject.toml, so a fresh machine needs only Python 3.11+ (and PostgreSQL for the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install

$(STAMP): pyproject.toml package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The Twilio Voice SDK for real-Twilio mode comes from npm (never a CDN); the sandbox softphone needs none.
	if command -v npm >/dev/null 2>&1; then npm ci --omit=dev --no-audit --no-fund; else echo "npm not found: Twilio Voice SDK not installed (sandbox softphone still works)"; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python manage.py demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
