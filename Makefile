# The two commands of the README:
#   make demo   set up, then run the end-to-end demo on the embedded MLflow store
#   make test   set up (dev extra and system packages), then run the whole test suite
#   make docs   set up (docs extra), then build the docs site into docs/_build/html, warnings as errors
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
UV    := $(VENV)/bin/uv

.PHONY: demo test docs install install-dev install-docs system-deps export clean-nbs lint bench labextension \
        link-labextension screenshots

$(UV):
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv

# Installs compile every module to bytecode, as pip does by default (uv does not): where PYTHONDONTWRITEBYTECODE is
# set, Python would otherwise compile each imported module again in every process, which doubles the start of each
# pipeline step, kernel and command. The package itself is an editable install, outside site-packages: compiled here.
COMPILE_PACKAGE = $(PY) -m compileall -q mlops_wb >/dev/null

install: $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e .
	@$(COMPILE_PACKAGE)
	@$(MAKE) --no-print-directory link-labextension

install-dev: $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@$(COMPILE_PACKAGE)
	@$(MAKE) --no-print-directory link-labextension

# The widgets' JupyterLab / Notebook 7 extension is prebuilt in widgets/labextension; a wheel installs it into
# <venv>/share/jupyter/labextensions/mlops-wb, an editable install does not (no data files): link it there.
LABEXT := $(VENV)/share/jupyter/labextensions/mlops-wb
link-labextension:
	@mkdir -p $(dir $(LABEXT)) && rm -rf $(LABEXT) && ln -s $(CURDIR)/widgets/labextension $(LABEXT)

# Rebuild widgets/labextension from widgets/extension after changing it (needs node and npm), then commit both.
labextension: install-dev
	cd widgets/extension && npm ci --no-audit --no-fund --loglevel=error && rm -rf ../labextension && \
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH node node_modules/@jupyterlab/builder/lib/build-labextension.js \
	  --core-path $$($(CURDIR)/$(PY) -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging")') .
	cat widgets/extension/package.json widgets/extension/src/*.js widgets/extension/style/index.css \
	  | sha256sum | cut -d' ' -f1 > widgets/labextension/source.sha256

install-docs: $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e '.[docs]'
	@$(COMPILE_PACKAGE)

# Debian packages the tests need: Chromium for the browser tests, PostgreSQL for the team tests.
# apt only runs when one is missing.
SYSTEM_PACKAGES := chromium postgresql
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: install
	$(VENV)/bin/mlops-wb demo

test: install-dev system-deps
	@set -o pipefail; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure, not a pass." >&2; exit 1; fi; exit $$rc

# The docs site, from a fresh clone and offline: each module notebook is executed once (in a process of its own,
# forked on Linux from a warm one that has already imported the heavy modules, with nbdev-test's cells and shell,
# JOBS at a time) into docs/_build/executed/, a cache keyed by a hash of the notebook, the package, the project files
# and the installed versions, so only what changed runs again (`make test` fills it too: its notebook tests are these
# executions). Sphinx with MyST-NB then renders the executed copies, the README and an API reference of every family
# into docs/_build/html, with warnings as errors. FORCE=1 executes everything.
JOBS ?=
docs: install-docs
	$(PY) docs/make_docs.py $(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force)

# Regenerate the screenshots in docs/screenshots/ (the README shows them) with the browser tests: the tests alone
# write screenshots only to tests/artifacts/.
screenshots: install-dev system-deps
	MLOPS_WB_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -p no:cacheprovider -n 0 tests/browser/test_workbench.py

# Developer helpers
export:
	$(VENV)/bin/nbdev-clean && $(VENV)/bin/nbdev-export

lint:
	$(VENV)/bin/ruff check mlops_wb tests bench

bench:
	$(PY) bench/import_time.py
	$(PY) bench/data.py
	$(PY) bench/pipelines.py
	$(PY) bench/registry.py 100
	$(PY) bench/compare.py
	$(PY) bench/team.py
