# Corridor: `make run` starts the AS (SQLite, local TLS) and the demo API; `make test` runs ruff, the import contracts, mypy and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tests/interop/node_modules/.installed
PEER_STAMP := bench/peer/node_modules/.installed

.PHONY: run test lint typecheck pytest clean system-packages bench cluster-demo check-report

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --silent
	touch $(NODE_STAMP)

$(PEER_STAMP): bench/peer/package.json bench/peer/package-lock.json
	cd bench/peer && npm ci --no-audit --no-fund --silent
	touch $(PEER_STAMP)

# The AS in the foreground, in dev mode (--dev: demo user, demo client, local CA), and the demo
# payments API (examples/payments_api) beside it on https://127.0.0.1:8444. The API waits for the
# AS (which makes the dev TLS material on its first start) and is stopped when the AS exits.
run: $(STAMP)
	@$(BIN)/corridor demo-api --wait-for-issuer 30 & api=$$!; \
	trap 'kill $$api 2>/dev/null; wait $$api; trap - EXIT' EXIT INT TERM; \
	$(BIN)/corridor serve --dev

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Tests that need system packages (design.md 8): Debian's chromium and chromium-driver (a real
# browser), nginx (Corridor behind a TLS-terminating proxy) and systemd (systemd-analyze checks
# deploy/systemd/corridor.service; nothing is started with it). Installed here when running as
# root; elsewhere those tests skip with a reason, and fail in CI (.ci/run sets the variables).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || missing="$$missing nginx"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# pytest-xdist workers (issue 19): more than the cores, since much of the suite waits on servers,
# subprocesses and PostgreSQL; one module (or file) stays on one worker, so its module-scoped
# servers start once. A plain `pytest tests/...` runs in one process as before. The 30 slowest
# tests are listed at the end, so a slow newcomer shows in every run.
PYTEST_WORKERS ?= 4
pytest: $(STAMP) $(NODE_STAMP) $(PEER_STAMP) system-packages
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=30

test: lint typecheck pytest

# Corridor against oidc-provider (bench/peer), interleaved, plus scaling figures; rewrites the
# generated part of bench/RESULTS.md. Takes about 15 minutes; never part of make test.
# The growth figure also runs on the PostgreSQL at CORRIDOR_BENCH_POSTGRES_URL (default: this
# machine's, trust auth).
bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python -m bench.run --postgres "$${CORRIDOR_BENCH_POSTGRES_URL:-postgresql://$$(id -un)@127.0.0.1:5432/test}" $(BENCH_ARGS)

# Scale-out on this machine (deploy/cluster/README.md): three Corridor instances behind nginx
# on a fresh database on the PostgreSQL at 127.0.0.1:5432, until Ctrl-C (then everything is
# stopped and the database dropped). CLUSTER_ARGS=--check checks once instead and exits 0 or 1.
cluster-demo: $(STAMP)
	$(BIN)/python deploy/cluster/demo.py $(CLUSTER_ARGS)

# docs/corridor-check-report.{html,md}: `corridor check --all-variants` against Corridor as
# `make run` starts it (on free ports, in a temporary data directory, with two check clients
# per variant registered by the CLI), with --slow so the lifetimes are measured. About two
# minutes; never part of make test.
check-report: $(STAMP)
	$(BIN)/python -m tests.check.corridor_stack --slow --html docs/corridor-check-report.html \
		--markdown docs/corridor-check-report.md

clean:
	rm -rf $(VENV) tests/interop/node_modules bench/peer/node_modules .pytest_cache .mypy_cache .ruff_cache
