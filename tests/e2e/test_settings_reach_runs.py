"""Every setting a job identity reads, set in Airflow's environment to a value of its own
(``ADPIPE_<NAME>``, what .env.airflow carries from .env), reaches the job of each task of
both DAGs in a run by Airflow: each job's SUMMARY names what it read, under the name it read
it (tests/dags/test_settings_reach_tasks.py holds the same for every task as parsed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import days
import pytest
from adpipe.job import Command
from adpipe.settings import ENV_FILES, airflow_env, listed
from helpers import OwnAirflow, marked, own_airflow, summaries

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def airflow() -> Iterator[OwnAirflow]:
    with own_airflow() as found:
        yield found


# a half-hour window: WINDOW_MINUTES' marked value is 30, the DAG's grid in this run
END = days.moment("test_settings_reach_runs", hour=7) + timedelta(minutes=30)


def marked_env() -> dict[str, str]:
    """Airflow's environment with every setting a task is passed at its marked value."""
    # but the CA a job verifies against: a path in the job's container, which the DAG mounts
    # only on a TLS=1 stack (tests/e2e/test_tls.py, make test-tls, runs the jobs with it)
    values = {
        name: marked(name)
        for env in ENV_FILES.values()
        for name in env.passed
        if name != "S3_CA_BUNDLE"
    }
    env = airflow_env(values)
    env.pop("ADPIPE_JOB_SETTINGS")  # the stack's own: what make env wrote from the table
    return env


def assert_read_marked(summary: dict, identity: str) -> None:
    reader = ENV_FILES[identity].settings()
    shown = summary["settings"]
    for name in ENV_FILES[identity].passed:
        read_as = reader.name(name)
        if read_as in shown and name != "S3_CA_BUNDLE":  # the command reads it
            assert shown[read_as] == marked(name), (identity, read_as, shown[read_as])
    assert set(ENV_FILES[identity].passed) & set(shown), (identity, shown)


def test_each_setting_reaches_the_api_load_jobs_in_a_run(airflow: OwnAirflow) -> None:
    env = marked_env()
    assert env["ADPIPE_WINDOW_MINUTES"] == "30"
    done = airflow.test("dags", "api-load", END.isoformat(), env=env)
    output = done.stdout + done.stderr
    found = {s["job"]: s for s in summaries(output)}
    assert set(found) == {"extract_backup", "load"}, output[-3000:]
    assert found["extract_backup"]["exit_code"] == 0, output[-3000:]
    assert found["extract_backup"]["window"][0].endswith("07:00:00Z")  # the marked grid's
    assert_read_marked(found["extract_backup"], "extract_backup")
    assert_read_marked(found["load"], "load")
    # every one of the extract's and the load's settings was read, not only some
    for job in ("extract_backup", "load"):
        reader = ENV_FILES[job].settings()
        assert {reader.name(n) for n in ENV_FILES[job].passed} <= set(found[job]["settings"])


def run_task(airflow: OwnAirflow, task: str, logical: str) -> dict:
    """One task of the archive DAG run by Airflow at ``logical``, every setting marked: its
    job's SUMMARY."""
    done = airflow.test("tasks", "archive", task, logical, env=marked_env())
    found = summaries(done.stdout + done.stderr)
    assert len(found) == 1, (done.stdout + done.stderr)[-3000:]
    return found[0]


def assert_read_all(summary: dict, command: Command) -> None:
    """Every setting the command reads was read (none left to a default unseen)."""
    reads = command.reads()
    assert {reads.name(n) for n in listed(reads.names or ())} <= set(summary["settings"])


def test_each_setting_reaches_the_archive_job_in_a_run(airflow: OwnAirflow) -> None:
    """The archive's task for a date a week ahead: the job reads its settings, then refuses
    the date (exit 2), touching nothing; its SUMMARY names what it read."""
    from adpipe_archive.archive import RUN

    summary = run_task(airflow, "archive_days", (days.TODAY + timedelta(days=7)).isoformat())
    assert summary["exit_code"] == 2, summary
    assert_read_marked(summary, "archive")
    assert_read_all(summary, RUN)


def test_each_setting_reaches_the_reconcile_job_in_a_run(airflow: OwnAirflow) -> None:
    """The archive DAG's reconcile for days years before anything was loaded, which it only
    reads: every hour there is before RECONCILE_EXPECT_FROM (marked), so they balance."""
    from adpipe_archive.reconcile import RECONCILE

    summary = run_task(airflow, "reconcile_days", "2001-03-01")
    assert summary["exit_code"] == 0, summary
    assert_read_marked(summary, "reconcile")
    assert_read_all(summary, RECONCILE)
