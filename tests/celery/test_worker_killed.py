"""Under the Celery profile (`make test-celery`): tasks run on the Celery workers, and a worker
killed mid-task (its job container running) loses and doubles no row: the scheduler notices
the dead worker, the task is retried on the other one, and reconcile balances."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import timedelta

import days
import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")


def worker(n: int) -> str:
    return helpers.service_container(f"airflow-worker-{n}")


@pytest.fixture(scope="module", autouse=True)
def celery_workers() -> None:
    if not (worker(1) and worker(2)):
        pytest.fail("the stack runs no Celery workers: use `make test-celery`")


def running_load_containers() -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", "ancestor=adpipe/load:dev"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def worker_logs(container: str, since: float) -> str:
    done = subprocess.run(
        ["docker", "logs", "--since", str(int(since)), container],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def test_a_worker_killed_mid_load_loses_and_doubles_nothing() -> None:
    airflow = helpers.Airflow()
    day = days.moment("test_worker_killed")
    start, end = day + timedelta(hours=20), day + timedelta(hours=21)
    run_id = f"celery-kill-{int(time.time())}"
    began = time.time()
    # the archive's exclusive lock on the day keeps the load waiting (its lock_timeout is
    # 30 s), so it is surely mid-task when its worker dies; once the lock goes, the orphaned
    # job container may finish its load
    with helpers.day_locked(day.date()):
        airflow.trigger("api-load", end, run_id)
        airflow.unpause("api-load")
        deadline = time.monotonic() + 180
        while not running_load_containers():
            assert time.monotonic() < deadline, airflow.task_states("api-load", run_id)
            time.sleep(0.5)
        # the worker running the load: extract_backup may have run on the other one
        victim = next(
            (
                n
                for n in (1, 2)
                for line in worker_logs(worker(n), began - 5).splitlines()
                if run_id in line and "load_impressions" in line
            ),
            None,
        )
        assert victim, "no worker's log names the run's load: did it run on Celery?"
        subprocess.run(["docker", "kill", worker(victim)], check=True, capture_output=True)
        job_containers = running_load_containers()
    try:
        state = airflow.wait("api-load", [run_id], timeout=600)[run_id]
        tries = airflow.api(
            "GET", f"/dags/api-load/dagRuns/{run_id}/taskInstances/load_impressions"
        )
        assert state == "success", airflow.task_states("api-load", run_id)
        assert tries["try_number"] >= 2, "the killed try was retried"
        assert job_containers, "the job container ran while its worker died"
    finally:  # the killed worker back, for what follows
        subprocess.run(
            ["bash", "platform/compose.sh", "up", "-d", f"airflow-worker-{victim}"],
            cwd=helpers.ROOT,
            capture_output=True,
            check=False,
            env={**os.environ, "EXECUTOR": "celery"},
        )

    rows, distinct = helpers.query(
        "SELECT count(*), count(DISTINCT impression_id) FROM ad_impressions "
        "WHERE shown_at >= %s AND shown_at < %s",
        (start, end),
    )[0]
    (written,) = helpers.query(
        "SELECT rows_written FROM load_runs WHERE window_start = %s AND window_end = %s "
        "ORDER BY load_run_id DESC LIMIT 1",
        (start, end),
    )[0]
    assert rows == distinct == written > 0
    helpers.balance_days("test_worker_killed")  # the day's other hours: accepted as gaps
    stamp = f"{day:%Y-%m-%d}"
    checked = docker_run(
        "adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp, "--json"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (balance,) = json.loads(checked.stdout[: checked.stdout.index("SUMMARY")])
    assert balance["balanced"], balance


def test_tasks_run_on_the_celery_workers() -> None:
    since = time.time() - 3600
    logs = worker_logs(worker(1), since) + worker_logs(worker(2), since)
    assert "execute_workload" in logs or "Executing workload" in logs, logs[-2000:]
