# Thin aliases. A fresh machine needs only Python 3.11, pip and make: uv is installed on
# first use, and the lock file decides every package version.
PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_PYTHON_DOWNLOADS := never
# Installed packages are compiled to bytecode once, at install: where PYTHONDONTWRITEBYTECODE
# is set, every command would otherwise compile its imports again (about 0.7 s of CPU each).
export UV_COMPILE_BYTECODE := 1

.PHONY: run test lint format uv assets

run: uv  ## start the platform on http://localhost:3000 (embedded: SQLite + in-process)
	@# Without npm the platform still starts (and warns): the dashboard lacks htmx until then.
	-$(UV) run --frozen botplatform assets
	$(UV) run --frozen botplatform serve

test: uv assets  ## the whole test suite, on every backend that is reachable (all of them in CI)
	$(UV) run --frozen pytest

assets: uv  ## the dashboard's htmx, from the npm registry (digest-checked; git-ignored)
	$(UV) run --frozen botplatform assets

lint: uv
	$(UV) run --frozen ruff check src tests
	$(UV) run --frozen ruff format --check src tests
	$(UV) run --frozen mypy

format: uv
	$(UV) run --frozen ruff format src tests
	$(UV) run --frozen ruff check --fix src tests

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
	  || $(PYTHON) -m pip install --quiet --user uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv
