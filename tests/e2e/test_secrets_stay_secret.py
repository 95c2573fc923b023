"""After real api-load and archive runs through Airflow, no generated secret of .env shows in
a task log or OpenLineage event, a rendered template, a job's SUMMARY or FAILED line or an
image layer; .env itself is readable by its owner only. (Runs after the DAG-run tests of this
folder.)"""

from __future__ import annotations

import os
import stat
import subprocess

import helpers
import pytest
from helpers import compose

pytestmark = pytest.mark.usefixtures("stack")


def secrets() -> dict[str, str]:
    """Every generated secret of .env (passwords and secret keys), by setting."""
    found = {}
    for line in helpers.ENV_FILE.read_text().splitlines():
        key, _, value = line.partition("=")
        named = key.endswith(("PASSWORD", "SECRET_ACCESS_KEY", "SECRET_KEY", "FERNET_KEY"))
        if named and len(value) >= 16:  # the UI login airflow/airflow is no secret, by design
            found[key] = value
    assert len(found) >= 8, found.keys()
    return found


def leaks(blob: bytes) -> list[str]:
    return [key for key, value in secrets().items() if value.encode() in blob]


def test_env_is_readable_by_its_owner_only() -> None:
    assert stat.S_IMODE(os.stat(helpers.ENV_FILE).st_mode) == 0o600


@pytest.mark.alone  # after every other test's runs, so it reads all their logs and events
def test_no_secret_in_any_task_log() -> None:
    scheduler = compose("ps", "-q", "airflow-scheduler").stdout.strip()
    logs = subprocess.run(
        ["docker", "exec", scheduler, "tar", "-C", "/opt/airflow/logs", "-cf", "-", "."],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    # the jobs' summary lines and the OpenLineage events file are there, and were searched
    assert b"SUMMARY {" in logs and b'"eventType": "COMPLETE"' in logs
    assert leaks(logs) == []


@pytest.mark.alone
def test_no_secret_in_a_rendered_template_or_a_task_instance() -> None:
    airflow = helpers.Airflow()
    searched = 0
    for dag_id in ("api-load", "archive"):
        runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?limit=20")["dag_runs"]
        for run in runs:
            instances = airflow.api(
                "GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
            )["task_instances"]
            for instance in instances:
                assert leaks(repr(instance).encode()) == [], instance["task_id"]
                searched += 1
    assert searched >= 2


def image_leaks(image: str) -> list[str]:
    """Secrets found in ``docker save`` of the image, read as a stream (overlapping chunks)."""
    wanted = {key: value.encode() for key, value in secrets().items()}
    overlap = max(len(v) for v in wanted.values())
    found: set[str] = set()
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as saving:
        assert saving.stdout is not None
        tail = b""
        while chunk := saving.stdout.read(8 << 20):
            window = tail + chunk
            found |= {key for key, value in wanted.items() if value in window}
            tail = window[-overlap:]
    assert saving.returncode == 0
    return sorted(found)


@pytest.mark.parametrize("image", ["extract_backup", "load", "archive", "airflow", "s3"])
def test_no_secret_in_an_image(image: str) -> None:
    assert image_leaks(f"adpipe/{image}:dev") == []
