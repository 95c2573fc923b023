"""Test setup: the settings of .env, the guard that the stack runs, each module's days
(tests/days.py: what it may write, and what it leaves balanced), and the stores' last log
lines beside a failed stack test (the containers are gone when `make test` ends)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import days
import helpers
import pytest

helpers.load_env()


def pytest_report_header() -> list[str]:
    return [
        f"adpipe: ADPIPE_TEST_TODAY={days.TODAY} ADPIPE_TEST_SEED={days.SEED} "
        "(set both to replay this run's days and draws)"
    ]


@pytest.fixture(scope="module", autouse=True)
def owned_days(request: pytest.FixtureRequest) -> Iterator[None]:
    """The module's tests may write only its days (`days.claim`); a module whose days lie
    inside the archive DAG's reconcile window leaves them balanced, checked by reconcile."""
    owner = request.module.__name__.rsplit(".", 1)[-1]
    days.CURRENT = owner
    on_stack = any("stack" in m.args for m in request.node.iter_markers("usefixtures"))
    mine = [d for d in days.RESERVED if d.owner == owner and not (d.draw or d.old)]
    for d in mine if on_stack else []:
        # an archive run of an earlier session moved them (every day older than its cutoff
        # goes): a clean slate is the module's own days back in the table (its old days,
        # which the old-days group's own archive runs move, its tests restore themselves)
        first, last = d.span()
        helpers.restore_days(first.isoformat(), last.isoformat())
    yield
    days.CURRENT = ""
    if not any(d.owner == owner and d.balance for d in days.RESERVED):
        return
    helpers.balance_days(owner)
    for first, last in days.of(owner):
        done = helpers.docker_run(
            "adpipe/archive:dev", "reconcile", "--from", f"{first}", "--to", f"{last}"
        )
        assert done.returncode == 0, (
            f"{owner} left its days {first}..{last} unbalanced:\n{done.stdout}{done.stderr}"
        )


@pytest.fixture(scope="session")
def stack() -> None:
    """The stack must run: `make test` starts it; a bare pytest run says so and fails."""
    probe = subprocess.run(
        ["bash", str(helpers.ROOT / "platform" / "stack.sh"), "running"],
        capture_output=True,
        text=True,
        check=False,
        cwd=helpers.ROOT,
    )
    if probe.returncode != 0:
        pytest.fail("the stack is not running: use `make test`, or `make start` first")
    # The product's DAGs run once the stack is up: a fresh stack starts api-load's latest
    # hour and archive's latest day at once. Let those end before tests share their tables
    # and the archive lock (bounded; a run still going after it fails the session here).
    airflow = helpers.Airflow()
    for dag_id in ("api-load", "archive"):
        airflow.wait_for_dag(dag_id)
        deadline = time.monotonic() + 300
        while active := airflow.api(
            "GET", f"/dags/{dag_id}/dagRuns?state=queued&state=running&run_type=scheduled&limit=20"
        )["dag_runs"]:
            if time.monotonic() > deadline:
                pytest.fail(f"{dag_id}'s scheduled runs did not end in 300 s: {active}")
            time.sleep(3)
    # the scheduler's first hour leaves the hours of its day before it unloaded: on a new
    # stack they were never anyone's to load (reconcile expects a day with a load whole)
    helpers.balance_days("scheduler", "before this stack's first scheduled api-load run")


@pytest.fixture(scope="session")
def stores() -> None:
    """PostgreSQL and S3 must answer (what needs no Airflow: the bench, which `make test`
    runs beside the Celery tier while Airflow's services are started again)."""
    probe = helpers.stack("wait", "postgres", "s3")
    if probe.returncode != 0:
        pytest.fail(f"PostgreSQL or S3 is not running: `make start` first\n{probe.stderr}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """A failed test on the stack carries the last log lines of S3 and PostgreSQL."""
    report = yield
    if report.when == "call" and report.failed and {"stack", "stores"} & set(item.fixturenames):
        tail = ("--no-color", "--timestamps", "--tail", "30", "s3", "postgres")
        logs = helpers.compose("logs", *tail)
        report.sections.append(("the last log lines of s3 and postgres", logs.stdout + logs.stderr))
    return report


@pytest.fixture(scope="session")
def fault_api() -> Iterator[str]:
    """An ad API serving the same pages as the stack's (same volume, same seed), with the
    fault queue the stack's API does not have: tests inject API faults here. A pytest run
    beside another (platform/test.sh) has its own, on ADPIPE_TEST_FAULT_API_PORT."""
    per_hour = int(os.environ.get("AD_API_IMPRESSIONS_PER_HOUR", "3000"))
    port = int(os.environ.get("ADPIPE_TEST_FAULT_API_PORT", "18096"))
    with helpers.served_api(port, per_hour, "adpipe", faults=True) as url:
        yield url
