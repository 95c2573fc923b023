# adpipe: every development command is a target here. `make` or `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

UV_VERSION := 0.13.8
UV := .state/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STACK := bash platform/stack.sh
# one job command run as the DAGs run it: host network, its identity's env file (.env.<job>)
RUN_JOB := python3 platform/stack_client.py
PYTEST_ARGS ?=
# what the bench imports beside the venv's packages: the tests' helpers, the platform's scripts,
# the DAGs folder (the mock API); tests/integration/test_bench.py runs it with the same
BENCH_PATH := tests:platform:dags
# The Celery tier's stack notices a dead worker and retries its task sooner than .env's
# defaults (60 s each), and a run is late after 1 minute, not 20, alerting the tier's own
# webhook (tests/celery/test_deadline.py), so its tests wait less; the mechanisms are the same.
# Each name is one that platform/stack.sh lets the environment override.
CELERY_TIMERS := TASK_HEARTBEAT_TIMEOUT=30 JOB_RETRY_DELAY_SECONDS=5 API_LOAD_DEADLINE_MINUTES=1 \
  ALERT_WEBHOOK=http://127.0.0.1:18097/alerts

##@ Set up

help: ## List every target with what it does, by group (bold headings on a terminal only)
	@if [ -t 1 ]; then bold=$$(printf '\033[1m'); plain=$$(printf '\033[0m'); else bold=; plain=; fi; \
	awk -v bold="$$bold" -v plain="$$plain" 'BEGIN {FS = ":.*## "} \
	  /^##@ / {printf "%s%s%s\n", bold, substr($$0, 5), plain} \
	  /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

env: ## Create .env from .env.example (fresh random secrets) or add what it gained; write each job's own .env.<job> (TLS=1|0: switch TLS)
	@TLS="$(TLS)" PYTHONPATH=jobs/adpipe python3 platform/env.py
	@if [ "$$(sed -n 's/^TLS=//p' .env | tail -1)" = 1 ]; then bash platform/tls.sh; fi

certs: ## Make a throwaway CA and the server certificate for 127.0.0.1 under .state/tls/ (kept while valid; TLS=1 uses them)
	@bash platform/tls.sh

engine: ## Make sure a Docker engine answers with Compose v2 (installs the plugin; on Debian as root, dockerd too)
	@bash platform/engine.sh

$(UV):
	@python3 -m venv .state/uv && .state/uv/bin/pip install -q uv==$(UV_VERSION)

venv: $(UV) ## Create .venv from uv.lock (fails when the lock is stale)
	@$(UV) sync --locked --quiet
	@echo "venv: $(VENV) matches uv.lock" >&2

lock: $(UV) ## Re-resolve uv.lock and the images' pinned requirements after changing inputs
	@$(UV) lock
	@bash platform/lock.sh write

lock-check: $(UV) ## Fail when uv.lock or a pinned requirements file no longer matches its inputs
	@$(UV) lock --check --quiet
	@bash platform/lock.sh check

images: engine ## Build every image (platform and jobs), from a registry or Debian stand-ins
	@bash platform/images.sh all

build-jobs: engine ## Build adpipe/extract_backup, adpipe/load, adpipe/archive (tags :dev and :<git revision>)
	@bash platform/images.sh jobs

settings-doc: ## Rewrite docs/settings.md, every setting of each job identity, from adpipe.settings
	@PYTHONPATH=jobs/adpipe python3 -c 'from adpipe.settings import reference; print(reference(), end="")' >docs/settings.md
	@echo "settings-doc: wrote docs/settings.md" >&2

iam-policies: ## Write each S3 identity's AWS IAM policy (least privilege, from platform/s3/access.py) to docs/s3-policies/ (BUCKET=ad-data, OUT=...)
	@python3 platform/s3/access.py --bucket "$(or $(BUCKET),ad-data)" --out "$(or $(OUT),docs/s3-policies)"

browser: ## Install Debian's chromium for the UI test when missing (root on Debian/Ubuntu)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } || \
	  { echo "browser: install chromium (Debian: apt-get install chromium) for the UI test" >&2; exit 1; }

##@ Run

start: env images ## Start the stack and wait until healthy (EXECUTOR=celery: Redis and two Celery workers; TLS=1: verified TLS to PostgreSQL and S3, TLS=0: without)
	@EXECUTOR=$(EXECUTOR) $(STACK) start

demo: start ## The main job: start everything, run api-load and archive through Airflow, reconcile (STOP=1 stops after)
	@rc=0; python3 platform/demo.py || rc=$$?; \
	if [ -n "$(STOP)" ]; then $(STACK) stop >/dev/null 2>&1; echo "demo: stack stopped"; fi; exit $$rc

stop: ## Stop every container of the stack; data stays in its volumes
	@$(STACK) stop

status: env ## Show each service with its address and health, and how full the S3 store is
	@$(STACK) status
	@python3 platform/capacity.py

logs: ## Follow the stack's logs, or one service's: make logs SERVICE=airflow-scheduler
	@bash platform/compose.sh logs -f --tail 50 $(SERVICE)

airflow: env ## Run an Airflow CLI command in the stack: make airflow ARGS="dags list"
	@bash platform/compose.sh exec $$([ -t 0 ] || echo -T) airflow-scheduler airflow $(ARGS)

psql: env ## psql on the warehouse as the read-only role (ROLE=owner: as its owner, for migrations by hand)
	@python3 platform/psql.py "$(ROLE)"

clean: ## Stop the stack, delete its volumes (all data), the venv and the logs; .env and images stay
	-@bash platform/compose.sh down -v --remove-orphans >/dev/null 2>&1
	@rm -rf $(VENV) .state/uv .state/*.log
	@echo "clean: stack volumes, venv and logs removed (.env kept)"

##@ Operate

reconcile: env ## Per day: backup = postgres + archive + rejected + duplicates? FROM=... TO=... (default: the 45 days to yesterday)
	@$(RUN_JOB) adpipe/archive:dev reconcile $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) $(if $(JSON),--json)

backfill: env ## Backfill a DAG through Airflow's API: make backfill DAG=api-load FROM=2026-11-20T00:00 TO=2026-11-20T05:00
	@test -n "$(DAG)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill DAG=api-load FROM=... TO=... (ISO 8601; UTC without an offset)" >&2; exit 2; }
	@python3 platform/backfill.py --dag "$(DAG)" --from "$(FROM)" --to "$(TO)" $(if $(REPROCESS),--reprocess $(REPROCESS))

accept-gap: env ## Accept hours no load will fill (reconcile stops naming them): make accept-gap FROM=2026-11-20T03:00 TO=2026-11-20T05:00 REASON="API outage"
	@test -n "$(FROM)" -a -n "$(TO)" -a -n "$(REASON)" || { echo "usage: make accept-gap FROM=... TO=... REASON=... (the first and last hour, UTC)" >&2; exit 2; }
	@printf '%s\n' "SET TimeZone = 'UTC';" \
	  "INSERT INTO accepted_gaps (gap_start, gap_end, reason) VALUES (:'first', (:'last')::timestamptz + interval '1 hour', :'reason') RETURNING *;" | \
	  python3 platform/psql.py owner -v ON_ERROR_STOP=1 -v first="$(FROM)" -v last="$(TO)" -v reason="$(REASON)"

restore: env ## Restore archived days into ad_impressions: make restore FROM=YYYY-MM-DD TO=YYYY-MM-DD
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make restore FROM=YYYY-MM-DD TO=YYYY-MM-DD" >&2; exit 2; }
	@$(RUN_JOB) adpipe/archive:dev restore --from $(FROM) --to $(TO)

query: export QUERY_SQL = $(value SQL)
query: export QUERY_FORMAT = $(FORMAT)
query: export QUERY_OUT = $(OUT)
query: venv env ## Query the table and the archive as one read-only table, impressions (SQL="..."; none: a shell; FORMAT=csv: to stdout, or OUT=path; FORMAT=parquet OUT=path)
	@$(PY) platform/query.py

picture: venv env ## Retake the README's picture of the Data health page (docs/images/data-health.png) from the running stack
	@PYTHONPATH=platform $(PY) platform/picture.py

lineage: ## Print the OpenLineage events of the stack's tasks, one JSON per line (the default file transport; OPENLINEAGE_TRANSPORT in .env)
	@bash platform/compose.sh exec -T airflow-scheduler sh -c 'cat /opt/airflow/logs/openlineage/events.jsonl 2>/dev/null' || \
	  { echo "lineage: no events file: no task has run since make start, or OPENLINEAGE_TRANSPORT sends the events elsewhere" >&2; exit 1; }

migrate: env ## Apply the warehouse's migrations as its owner (the stack does it at start)
	@$(RUN_JOB) adpipe/archive:dev migrate

##@ Test and measure

test: venv env lock-check ## Every test tier, then the Celery tier (CELERY=0 skips it); starts the stack when needed, stops it after
	@CELERY=$(CELERY) PYTEST_ARGS="$(PYTEST_ARGS)" bash platform/test.sh

test-fast: venv ## Only the tiers that need no stack: tests/dags and tests/unit
	@$(VENV)/bin/pytest tests/dags tests/unit $(PYTEST_ARGS)

test-celery: venv env lock-check images ## The Celery tier alone: the stack on EXECUTOR=celery, same end state as LocalExecutor, a worker killed mid-task
	@was=0; if $(STACK) running 2>/dev/null; then was=1; fi; rc=0; \
	if [ -z "$$(find .state/parity-local.json -mmin -360 2>/dev/null)" ]; then \
	  echo "test-celery: first the LocalExecutor's record of the parity runs"; \
	  EXECUTOR=local $(STACK) start && $(VENV)/bin/pytest tests/e2e/test_executor_parity.py || rc=$$?; \
	fi; \
	if [ $$rc = 0 ]; then env EXECUTOR=celery $(CELERY_TIMERS) bash -c '$(STACK) start && \
	  $(VENV)/bin/pytest tests/e2e/test_executor_parity.py tests/celery $(PYTEST_ARGS)' || rc=$$?; fi; \
	after="$(AFTER)"; [ -n "$$after" ] || { [ $$was = 1 ] && after=start || after=stop; }; \
	case $$after in start) $(STACK) start >/dev/null;; keep) ;; *) $(STACK) stop >/dev/null 2>&1;; esac; exit $$rc

test-tls: venv env images ## The stack over verified TLS (TLS=1): tests/e2e/test_tls.py and the api-load and archive DAG runs; then the stack as it was
	@before="$$(sed -n 's/^TLS=//p' .env | tail -1)"; was=0; if $(STACK) running 2>/dev/null; then was=1; fi; \
	rc=0; $(MAKE) --no-print-directory env TLS=1 && $(STACK) start && \
	  $(VENV)/bin/pytest tests/e2e/test_tls.py tests/e2e/test_dag_runs.py tests/e2e/test_archive_dag.py \
	  $(PYTEST_ARGS) || rc=$$?; \
	$(MAKE) --no-print-directory env TLS="$${before:-0}" >/dev/null; \
	if [ $$was = 1 ]; then $(STACK) start >/dev/null || rc=1; else $(STACK) stop >/dev/null 2>&1; fi; exit $$rc

lint: venv ## ruff (with the S and AIR rules) and mypy, clean
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy jobs/adpipe/adpipe jobs/extract_backup/adpipe_extract_backup jobs/load/adpipe_load \
	  jobs/archive/adpipe_archive

fmt: venv ## Format and fix what ruff can
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

bench: venv env ## adpipe's jobs against the alternatives, same rows, same run (own database and bucket; QUICK=1: small)
	@PYTHONPATH=$(BENCH_PATH) $(PY) bench/bench_jobs.py $(if $(QUICK),--quick)

soak: env ## Outside CI: 200 hourly api-load runs and their daily archives through the scheduler; reconcile and memory growth (needs make start)
	@python3 platform/soak.py

.PHONY: certs test-tls settings-doc accept-gap lineage picture query help env engine venv lock lock-check images build-jobs start stop status logs airflow psql backfill test test-celery test-fast lint fmt bench soak migrate restore reconcile demo browser clean
