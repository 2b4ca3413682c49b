# The course's commands. Each bootstraps .venv first (see `make install`).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lab test doctor reset stop url lint format clean student

install: $(STAMP)  ## create or update .venv from pyproject.toml (a no-op when nothing changed)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "This course needs Python 3.11 or newer; this is " + sys.version.split()[0] + ". Install a newer Python, or run: make PYTHON=python3.12 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lab,dev]'
	@touch $(STAMP)

lab: install  ## JupyterLab with the database ready (JUPYTER_PORT, JUPYTER_TOKEN)
	$(PY) -m dbkit lab

test: install  ## everything: dbkit, migrations, and every notebook, strictly
	$(PY) -m pytest $(PYTEST_ARGS)

student: install  ## regenerate the learner copies in notebooks/student/
	$(PY) -m tools.student

doctor: install  ## is this machine ready? one line per problem
	$(PY) -m dbkit doctor

url: install  ## the database URL, password masked
	$(PY) -m dbkit url

stop: install  ## stop the embedded PostgreSQL
	$(PY) -m dbkit stop

reset: install  ## delete the embedded PostgreSQL's data (asks first)
	$(PY) -m dbkit reset

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache
