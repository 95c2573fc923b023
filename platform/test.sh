#!/usr/bin/env bash
# `make test`: every tier, in the least wall time. The job images' CLI tests run while the
# stack starts; then the tiers on the stack (tests/integration, tests/e2e), three groups side
# by side and then the tests that must run alone; then the Celery tier on the stack restarted
# with EXECUTOR=celery (CELERY=0 skips it, and the quick bench runs among the alone tests),
# the tiers that need no stack (tests/dags, tests/unit) and the quick bench beside it. The stack is started (`make start`) when
# it was not running, and stopped (`make stop`) after. With PYTEST_ARGS set, one pytest run
# with those arguments once the stack is up (for a chosen file or -k), then the Celery tier.
set -euo pipefail
cd "$(dirname "$0")/.."
pytest=(.venv/bin/pytest)
read -r -a args <<<"${PYTEST_ARGS:-}"
mkdir -p .state
t0=$SECONDS
say() { echo "test: $* ($((SECONDS - t0)) s)"; }
# One day and one seed for every pytest run below (tests/days.py): the groups side by side
# and the Celery tier keep the same days across midnight, and a red run is replayed with
# `make test ADPIPE_TEST_TODAY=... ADPIPE_TEST_SEED=...`.
export ADPIPE_TEST_TODAY="${ADPIPE_TEST_TODAY:-$(date -u +%F)}"
export ADPIPE_TEST_SEED="${ADPIPE_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
pytest+=("--hypothesis-seed=$ADPIPE_TEST_SEED")
say "ADPIPE_TEST_TODAY=$ADPIPE_TEST_TODAY ADPIPE_TEST_SEED=$ADPIPE_TEST_SEED (set both to replay this run)"

whole=0
[ ${#args[@]} != 0 ] || whole=1
make --no-print-directory engine
make --no-print-directory -j2 images browser  # apt (the browser) and the image builds at once
# The job images' own CLI (tests/integration/test_job_cli.py) needs no stack: it runs while
# the stack starts.
job_cli=tests/integration/test_job_cli.py
# The quick bench needs PostgreSQL and S3, not Airflow, and nothing beside it that removes
# data: with the Celery tier it runs beside that tier (whose stack keeps PostgreSQL and S3
# running), not among the tests that run alone.
bench=tests/integration/test_bench.py
celery=""
[ $whole = 1 ] && [ "${CELERY:-1}" != 0 ] && celery=1
if [ $whole = 1 ]; then
  "${pytest[@]}" -p no:cacheprovider "$job_cli" >.state/test-job-cli.log 2>&1 & cli=$!
fi
started=0
if ! bash platform/stack.sh running 2>/dev/null; then
  # as a user starts it (the images: just built)
  make --no-print-directory -o env -o images start || { wait; cat .state/test-job-cli.log; exit 1; }
  started=1
fi
stop_after() { if [ $started = 1 ]; then make --no-print-directory stop >/dev/null 2>&1 || true; fi; }
rc=0
if [ $whole = 1 ]; then
  wait "$cli" || rc=$?
  cat .state/test-job-cli.log
  say "the job images' CLI: exit $rc"
  if [ $rc != 0 ]; then stop_after; exit $rc; fi
  # On the one stack, three pytest runs side by side: the tests of days older than the
  # retention (an archive run moves every such day, so they run one at a time), and the tests
  # of recent days in two: the jobs' (tests/integration) and the DAGs' (tests/e2e, mostly
  # waiting on Airflow, with the doors', reconcile's and the hostile source's tests, so the
  # three take about as long), each with its own fault API (every module owns its days:
  # tests/days.py); then the tests marked
  # `alone` (a service stopped, the archive over today, the whole stack's state) with nothing
  # beside them. Each names its slowest tests, so a run shows where its minutes went.
  stacked=(-p no:cacheprovider --durations=8)
  beside=(tests/integration/test_doors.py tests/integration/test_reconcile.py
    tests/integration/test_hostile_source.py)
  "${pytest[@]}" tests/integration tests/e2e "${stacked[@]}" -m "old_days and not alone" \
    >.state/test-old-days.log 2>&1 & old=$!
  ADPIPE_TEST_FAULT_API_PORT=18095 "${pytest[@]}" tests/integration --ignore="$job_cli" \
    "${beside[@]/#/--ignore=}" \
    "${stacked[@]}" -m "not old_days and not alone" >.state/test-recent-jobs.log 2>&1 & jobs=$!
  ADPIPE_TEST_FAULT_API_PORT=18093 "${pytest[@]}" tests/e2e "${beside[@]}" "${stacked[@]}" \
    -m "not old_days and not alone" >.state/test-recent-dags.log 2>&1 & dags=$!
  for group in "$old" "$jobs" "$dags"; do wait "$group" || rc=$?; done
  cat .state/test-old-days.log .state/test-recent-jobs.log .state/test-recent-dags.log
  say "the tests of old and of recent days, side by side: exit $rc"
  if [ $rc = 0 ]; then
    "${pytest[@]}" tests/integration tests/e2e "${stacked[@]}" -m alone \
      ${celery:+"--ignore=$bench"} || rc=$?
  fi
else
  "${pytest[@]}" "${args[@]}" || rc=$?
fi
say "the tiers on the stack: exit $rc"
# The tiers that need no stack (one core's work for a minute and a half) run beside the
# Celery tier, which mostly waits on its timers, rather than beside the image builds.
fast=""
if [ $whole = 1 ]; then
  "${pytest[@]}" tests/dags tests/unit >.state/test-fast.log 2>&1 & fast=$!
  say "tests/dags and tests/unit run in the background (log: .state/test-fast.log)"
fi
if [ $rc = 0 ] && [ -n "$celery" ]; then
  "${pytest[@]}" -p no:cacheprovider "$bench" >.state/test-bench.log 2>&1 & bench_pid=$!
  make --no-print-directory -o venv -o env -o lock-check -o engine -o images test-celery \
    AFTER=keep || rc=$?
  say "the Celery tier: exit $rc"
  bench_rc=0
  wait "$bench_pid" || bench_rc=$?
  cat .state/test-bench.log
  say "the quick bench: exit $bench_rc"
  [ $bench_rc = 0 ] || rc=$bench_rc
  if [ $started = 1 ]; then stop_after; else bash platform/stack.sh start >/dev/null || rc=$?; fi
elif [ $rc = 0 ] && [ "${CELERY:-1}" != 0 ]; then
  make --no-print-directory -o venv -o env -o lock-check -o engine -o images test-celery \
    AFTER="$([ $started = 1 ] && echo stop || echo start)" || rc=$?
  say "the Celery tier: exit $rc"
else
  stop_after
fi
if [ -n "$fast" ]; then
  fast_rc=0
  wait "$fast" || fast_rc=$?
  cat .state/test-fast.log
  say "tests/dags and tests/unit: exit $fast_rc"
  [ $fast_rc = 0 ] || rc=$fast_rc
fi
exit $rc
