# The course's commands. Each bootstraps .venv first (see `make install`).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# An offline venue: `make wheelhouse` where there is network, then `make install` uses it.
WHEELHOUSE := wheelhouse
FIND_LINKS := $(if $(wildcard $(WHEELHOUSE)/*.whl),--find-links $(WHEELHOUSE))
# Extra platforms for learners' laptops: any of linux-x86_64 linux-aarch64 macos-arm64
# macos-x86_64, e.g.  make wheelhouse PLATFORMS="linux-x86_64 macos-arm64" PYTHONS="3.11 3.12"
PLATFORMS ?=
PYTHONS   ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

.PHONY: install lab test bench doctor reset stop url lint format clean student wheelhouse outputs toc site

install: $(STAMP)  ## create or update .venv from pyproject.toml (a no-op when nothing changed)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "This course needs Python 3.11 or newer; this is " + sys.version.split()[0] + ". Install a newer Python, or run: make PYTHON=python3.12 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(FIND_LINKS) --upgrade pip
	$(PY) -m pip install --quiet $(FIND_LINKS) -e '.[lab,dev,hub]'
	@touch $(STAMP)

lab: install  ## JupyterLab with the database ready (JUPYTER_PORT, JUPYTER_TOKEN)
	$(PY) -m dbkit lab

# Two worker processes, each taking whole files (a notebook runs top to bottom in one of
# them): about 9 minutes instead of 18 on 2 cores. PYTEST_WORKERS= runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: install  ## everything: dbkit, migrations, and every notebook, strictly
	$(PY) -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

wheelhouse:  ## download every dependency into wheelhouse/, for installing without network
	$(PYTHON) -m pip download --quiet -d $(WHEELHOUSE) '.[lab,dev]' pip setuptools wheel
	@for platform in $(PLATFORMS); do \
	  case $$platform in \
	    linux-x86_64)  tags="manylinux_2_28_x86_64 manylinux2014_x86_64" ;; \
	    linux-aarch64) tags="manylinux_2_28_aarch64 manylinux2014_aarch64" ;; \
	    macos-arm64)   tags="macosx_14_0_arm64" ;; \
	    macos-x86_64)  tags="macosx_13_0_x86_64" ;; \
	    *) echo "unknown platform $$platform"; exit 1 ;; \
	  esac; \
	  for python in $(PYTHONS); do \
	    echo "wheels for $$platform, Python $$python"; \
	    $(PYTHON) -m pip download --quiet -d $(WHEELHOUSE) --only-binary=:all: \
	      $$(printf -- '--platform %s ' $$tags) --python-version $$python \
	      '.[lab,dev]' pip setuptools wheel || exit 1; \
	  done; \
	done
	@ls $(WHEELHOUSE) | wc -l | xargs echo "wheels in $(WHEELHOUSE)/:"

student: install  ## regenerate the learner copies in notebooks/student/
	$(PY) -m tools.student

site: install  ## the course as a static site in build/site/ (from the committed notebooks; no network)
	$(PY) -m tools.site

toc: install  ## the README's notebook table and each notebook's previous/next links
	$(PY) -m tools.course
	$(PY) -m tools.student

outputs: install  ## re-execute notebooks in place, refresh their learner copies, check: make outputs NB=04
	$(PY) -m tools.outputs $(NB)

bench: install  ## what one request costs, layer by layer (bench/README.md); writes bench/results.json
	$(PY) -m bench.run $(BENCH_ARGS)

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
