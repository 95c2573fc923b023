#!/usr/bin/env bash
# `make test`: every tier, in the least wall time. The tiers that need no stack (tests/dags,
# tests/unit) run in the background while the images build and the stack starts; then the
# tiers on the stack (tests/integration, tests/e2e; the quick bench among them); then the
# Celery tier on the stack restarted with EXECUTOR=celery (CELERY=0 skips it). The stack is
# started when it was not running, and stopped after. With PYTEST_ARGS set, one pytest run
# with those arguments once the stack is up (for a chosen file or -k), then the Celery tier.
set -euo pipefail
cd "$(dirname "$0")/.."
pytest=(.venv/bin/pytest)
read -r -a args <<<"${PYTEST_ARGS:-}"
mkdir -p .state
t0=$SECONDS
say() { echo "test: $* ($((SECONDS - t0)) s)"; }

fast=""
if [ ${#args[@]} = 0 ]; then
  "${pytest[@]}" tests/dags tests/unit >.state/test-fast.log 2>&1 & fast=$!
  say "the tiers that need no stack run in the background (log: .state/test-fast.log)"
fi
make --no-print-directory engine
make --no-print-directory -j2 images browser  # apt (the browser) and the image builds at once
started=0
if ! bash platform/stack.sh running 2>/dev/null; then
  bash platform/stack.sh start
  started=1
fi
stop_after() { if [ $started = 1 ]; then bash platform/stack.sh stop >/dev/null 2>&1 || true; fi; }
rc=0
if [ -n "$fast" ]; then
  wait "$fast" || rc=$?
  cat .state/test-fast.log
  say "tests/dags and tests/unit: exit $rc"
  if [ $rc != 0 ]; then stop_after; exit $rc; fi
  # the slowest tests named at the end, so a run shows where its minutes went
  "${pytest[@]}" tests/integration tests/e2e --durations=15 || rc=$?
else
  "${pytest[@]}" "${args[@]}" || rc=$?
fi
say "the tiers on the stack: exit $rc"
if [ $rc = 0 ] && [ "${CELERY:-1}" != 0 ]; then
  make --no-print-directory test-celery AFTER="$([ $started = 1 ] && echo stop || echo start)" || rc=$?
  say "the Celery tier: exit $rc"
else
  stop_after
fi
exit $rc
