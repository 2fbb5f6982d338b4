# medxai: every target works on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medxai-installed
PARAMS ?=
SEEDS ?= 0 1 2 3 4
NOTEBOOKS ?=
export MEDXAI_PROGRESS ?= 0

.PHONY: help install test test-unit test-notebooks test-browser site run lab benchmark claims student clean

help:
	@echo "make test      unit tests + nbval on the notebooks (creates .venv first)"
	@echo "make run       execute every notebook with papermill into runs/latest/ (PARAMS=file.yaml to override)"
	@echo "make lab       JupyterLab on notebooks/"
	@echo "make benchmark print the benchmark ratios"
	@echo "make claims    re-run every notebook for SEEDS (default 0 1 2 3 4; NOTEBOOKS=stems to narrow), write docs/claims.md, fail naming each inconclusive or flipping claim; WRITE_BACK=1 re-executes the committed notebooks for seed 0; KEEP=dir keeps the executed notebooks"
	@echo "make test-browser  headless Chromium: notebook 03's explorer reacts to a slider in JupyterLab; the course site works"
	@echo "make site      the course website in build/site/ from the committed notebooks and docs (offline, never re-executed)"
	@echo "make student   student copies in notebooks-student/ (solution cells emptied, outputs cleared)"
	@echo "make clean     remove runs/, build/, caches and the virtual environment"

install: $(STAMP)

# pip byte-compiles on one core; compileall uses every core (a file that does not compile, e.g. a test written for a
# newer Python inside a wheel, is skipped as pip skips it). Compiling at install matters where PYTHONDONTWRITEBYTECODE
# is set (the course machines): nothing is compiled later, and every process would compile torch's modules again.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -c requirements.lock -e ".[dev,site]"
	$(PY) -c "import compileall, sysconfig; [compileall.compile_dir(d, quiet=2, workers=0) for d in (sysconfig.get_paths()['purelib'], 'medxai_lib')]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medxai)" >/dev/null
	touch $@

test: install test-unit test-notebooks

# The unit tests spread over every core (pytest-xdist), each worker with one torch thread: 2.0x faster on the 2-core
# machine type (155 s vs 303 s, 2026-12-07); with two threads per worker the cores are oversubscribed (402 s).
test-unit: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n auto tests

# nbval runs two notebooks at a time (pytest-xdist, --dist loadfile keeps each notebook's cells in one kernel, in
# order), each kernel with one torch thread so that the two never fight over the cores; the slowest notebooks start
# first. On the 2-core machine type the seven took 598 s this way against 793-829 s one after another with two threads
# each (2026-12-07): much of a notebook's time (plotting, bootstraps, small tensors) uses one core whatever the thread
# count. Training with one thread gives other float sums, so the trained weights differ from a two-thread run's: nbval
# then checks that every verdict survives that too.
NB_FIRST := 06 03 05 04
NB_ORDER := $(foreach n,$(NB_FIRST),$(wildcard notebooks/$(n)_*.ipynb)) \
	$(filter-out $(foreach n,$(NB_FIRST),notebooks/$(n)_%),$(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)))
NB_WORKERS ?= 2
test-notebooks: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MEDXAI_STATIC_WIDGETS=1 $(PY) -m pytest -q -n $(NB_WORKERS) --dist loadfile \
		--nbval-lax --nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider $(NB_ORDER)

# Separate stage (not in `make test`): needs root for apt when chromium is missing.
test-browser: install
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)
	$(PY) -m pip install --quiet --disable-pip-version-check playwright==1.65.2
	MEDXAI_BROWSER_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/browser

site: install
	$(PY) site/build.py --out build/site

run: install
	MEDXAI_STATIC_WIDGETS=1 $(PY) -m medxai_lib.runner --notebooks notebooks --out runs/latest $(if $(PARAMS),--params $(PARAMS))

lab: install
	$(VENV)/bin/jupyter lab notebooks/

benchmark: install
	$(PY) benchmarks/gradcam_vs_peers.py
	$(PY) benchmarks/phantoms.py
	$(PY) benchmarks/explain_vs_peers.py
	$(PY) benchmarks/agreement.py
	$(PY) benchmarks/training_layout.py
	$(PY) benchmarks/inference_layout.py

claims: install
	MEDXAI_STATIC_WIDGETS=1 $(PY) scripts/claims_across_seeds.py $(NOTEBOOKS) --seeds $(SEEDS) $(if $(WRITE_BACK),--write-back) $(if $(KEEP),--keep $(KEEP))

student: install
	$(PY) -m medxai_lib.student --src notebooks --out notebooks-student

clean:
	rm -rf runs build data/cache .pytest_cache notebooks-student $(VENV) *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
