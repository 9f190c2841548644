# Every target bootstraps first: a fresh Debian machine needs nothing else.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test processes: the shared e2e stack and the unit tests run side by side (tests/conftest.py
# groups them), which keeps the whole suite within 15 minutes on two cores.
PYTEST_WORKERS ?= 3

.PHONY: bootstrap demo test test-quick test-compose lint bench clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m sandbox demo

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Unit and config tests only: no Prometheus, Alertmanager or sandbox stack.
test-quick: bootstrap
	$(PY) -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

# docker-compose.yml and the Dockerfile as users run them, under podman (tests/compose).
test-compose:
	@scripts/bootstrap-compose.sh
	DDB_COMPOSE_TESTS=1 $(PY) -m pytest tests/compose -x $(PYTEST_ARGS)

bench: bootstrap
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
