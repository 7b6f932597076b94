# The two commands a newcomer needs are `make demo` and `make test`; each bootstraps what it needs.
.PHONY: bootstrap demo test lint typecheck unit clean lock bench bench-smoke

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	@bash scripts/bootstrap.sh

# DASHBOARD=1: keep the demo's services up after it, to open the dashboard it prints, until Ctrl-C.
demo: bootstrap
	DASHBOARD=$(DASHBOARD) $(PY) -m airlock.testing.demo

# The suite waits on servers (registries, Azurite, PostgreSQL, subprocesses) more than it computes, so
# it runs in TEST_WORKERS processes, one test file at a time each (module-scoped services stay shared):
# on 2 cores, 992 tests took 18 minutes in one process; 1,097 took 11 in 3. On a slower machine
# (2026-12-03) 1,180 took 12:34-12:59 in 3, and a fresh clone's run in 4 was no faster (12:58).
# TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3

test: bootstrap
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

unit: bootstrap
	$(VENV)/bin/pytest -q tests/oci tests/archive

lint: bootstrap
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

# Throughput and memory side by side with skopeo (bench/run.py), then scale-out runs per minute with
# 1, 2 and 4 workers on a private PostgreSQL (bench/scale_out.py), then many small artifacts beside skopeo
# sync (bench/many_small.py: 100 to 10,000 images), and again at 200 and 1,000 with the target registries
# on tmpfs where there is one (no fsync per file); results in bench/results/. 50-75 min.
bench: bootstrap
	$(PY) -m bench.run
	$(PY) -m bench.scale_out
	$(PY) -m bench.many_small
	if [ -d /dev/shm ]; then $(PY) -m bench.many_small --counts 200,1000 --scratch-dir /dev/shm \
		--results-dir bench/results/tmpfs --label "target registries on tmpfs"; fi

# The same on a tiny set in seconds (what CI runs); results stay in bench/work/results/.
bench-smoke: bootstrap
	$(PY) -m bench.run --smoke

# Re-pin the dependencies after changing pyproject.toml.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^airlock' > requirements.lock

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache
