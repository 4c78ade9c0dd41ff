# The course's entry points. Every target installs the pinned environment into .venv first.
#   make run    the whole course as one job on the offline default (synthetic data -> ... -> served model)
#   make test   every test: lint (ruff), unit tests, every notebook (papermill), structure and output checks
#   make lab    JupyterLab on the course, on 127.0.0.1
#   make bench  the performance comparisons, written to benchmarks/RESULTS.md

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_PORT ?= 8888
PYTEST_ARGS ?=

.PHONY: install run test lint nbval unit notebooks lab bench bench-quick clean distclean

install: $(STAMP)

# uv (pinned, bootstrapped with pip) installs the pins in about a minute; pip is the fallback.
# UV_SYSTEM_CERTS: use the system's certificates as pip does; UV_COMPILE_BYTECODE: write .pyc
# files now (imports are 2-3x slower without them where PYTHONDONTWRITEBYTECODE is set).
UV_VERSION := 0.13.8
UV_ENV := UV_SYSTEM_CERTS=1 UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if $(PY) -m pip install --quiet uv==$(UV_VERSION) && \
	    $(UV_ENV) $(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt; then \
	  echo "installed requirements.txt with uv $(UV_VERSION)"; \
	else \
	  echo "uv unavailable or failed: installing with pip"; \
	  $(PY) -m pip install --quiet -r requirements.txt; \
	fi
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	@mkdir -p $(LAB_SETTINGS) && cp tools/jupyterlab/overrides.json $(LAB_SETTINGS)/overrides.json
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m pmlv_utils.course

test: $(STAMP) lint
	-@bash tools/install_browser.sh
	-@bash tools/install_java.sh
	-@PYTHON=$(PYTHON) bash tools/install_triton_client.sh
	$(PY) -m pytest tests $(PYTEST_ARGS)
	$(MAKE) --no-print-directory nbval

# nbval itself (--nbval-lax: cells marked NBVAL_CHECK_OUTPUT must print what is committed) on the
# notebooks that take about a minute or less at their committed learner defaults (~8 min in all,
# the default model trained once included); the papermill harness (tests/test_notebooks.py)
# covers every notebook with quick parameters.
NBVAL_NOTEBOOKS := \
	05_create_dataset/05_label_images.ipynb \
	05_create_dataset/05_split_tfrecord.ipynb \
	07_training/07b_gpumax.ipynb \
	07_training/07d_distribute.ipynb \
	09_deploying/09a_inmemory.ipynb \
	09_deploying/09b_rest.ipynb \
	09_deploying/09c_changesig.ipynb \
	09_deploying/09d_bytes.ipynb \
	09_deploying/09e_tflite.ipynb \
	09_deploying/09f_explain.ipynb \
	10_mlops/10b_explain.ipynb

nbval: $(STAMP)
	PMLV_WORKSPACE=$(CURDIR)/build/nbval-workspace TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m pytest --nbval-lax -p no:cacheprovider -q $(NBVAL_NOTEBOOKS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

unit: $(STAMP)
	$(PY) -m pytest tests -m "not notebook and not browser" $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) -m pytest tests -m notebook $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --port $(LAB_PORT) --no-browser \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: $(STAMP)
	$(PY) -m benchmarks.run

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf build workspace .pytest_cache

distclean: clean
	rm -rf $(VENV)
