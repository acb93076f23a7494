# Thin targets. Every target that needs Python builds .venv first, so a fresh clone
# needs nothing but `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint fmt migrate worker beat venv clean events-doc messages mo

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo

# gunicorn, a Celery worker and beat under honcho (Procfile); Ctrl-C stops all three.
# FEDGOV_BIND sets the address (127.0.0.1:8000).
serve: migrate
	$(PY) manage.py serve

# PYTEST_ARGS lets CI select tests (e.g. skip the end-to-end ones on one of its passes).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m audit.events | diff -u docs/events.md - \
		|| (echo "docs/events.md is stale: make events-doc"; exit 1)

# docs/events.md from the ledger's event catalogue (audit/events.py).
events-doc:
	$(PY) -m audit.events > docs/events.md

# Translations (issue 19). `messages` refreshes locale/ from the sources (makemessages:
# needs GNU gettext, a translator's tool) and compiles; `mo` only compiles every .po into
# its .mo in pure Python (polib), so a fresh machine needs no system package. Both .po and
# .mo are committed; tests/test_i18n_catalogue.py fails when either is stale.
messages: $(STAMP)
	$(PY) manage.py messages

mo: $(STAMP)
	$(PY) manage.py messages --compile

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

worker: migrate
	$(VENV)/bin/celery -A fedgov worker --loglevel=info

beat: migrate
	$(VENV)/bin/celery -A fedgov beat --loglevel=info

clean:
	rm -rf var/ .pytest_cache
