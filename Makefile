# cartfit: `make run` runs the default analysis, `make test` the test suite.
# Both create .venv with Python >= 3.12 first if it is missing.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-ci test-slow lint clean-venv

# Find a Python >= 3.12: python3.12, pyenv's 3.12/3.13, then python3 if it is new enough.
PYTHON_BOOT := $(shell for c in python3.12 python3.13 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null) python3; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then echo $$c; break; fi; done)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON_BOOT)" ]; then \
		echo "cartfit needs Python >= 3.12 (PyMC 6, ArviZ 1, Snakemake 9); none found as python3.12, python3.13 or python3." >&2; \
		echo "Install Python 3.12 (e.g. 'pyenv install 3.12' or your package manager) and rerun." >&2; exit 1; fi
	@echo "creating $(VENV) with $(PYTHON_BOOT)"
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m cartfit.versions
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores 2 --profile workflow/profiles/default

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

# the slow statistical tests that fit CI's time budget (marker `ci`; see pyproject.toml)
test-ci: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "slow and ci"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cartfit tests benchmarks workflow/scripts
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

clean-venv:
	rm -rf $(VENV)
