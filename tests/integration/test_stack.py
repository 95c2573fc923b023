"""The stack: login, addresses, and state that survives a restart of the stack."""

from __future__ import annotations

import subprocess
import uuid

import helpers
import pytest
from helpers import compose, docker_run

pytestmark = pytest.mark.usefixtures("stack")


def test_login_with_the_stack_user_and_a_wrong_password() -> None:
    assert helpers.login_status("airflow", "airflow") == 201
    assert helpers.login_status("airflow", "not-the-password") == 401


def test_every_stack_port_listens_on_loopback_only() -> None:
    import os

    ports = {os.environ[k] for k in ("POSTGRES_PORT", "S3_PORT", "AD_API_PORT", "AIRFLOW_PORT")}
    listening = subprocess.run(
        ["ss", "-ltnH"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for line in listening:
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if port in ports | {"8974"}:
            assert address in ("127.0.0.1", "[::ffff:127.0.0.1]"), line


@pytest.mark.parametrize("job", ["extract_backup", "load", "archive"])
def test_each_job_image_reaches_postgres_and_s3(job: str) -> None:
    done = docker_run(f"adpipe/{job}:dev", "-m", "adpipe.check", entrypoint="python3")
    assert done.returncode == 0, done.stderr
    assert '"status": "ok"' in done.stdout and '"warehouse": "warehouse"' in done.stdout


def test_rows_and_objects_survive_stop_and_start() -> None:
    marker = uuid.uuid4().hex
    helpers.query("CREATE TABLE IF NOT EXISTS restart_probe (marker text)")
    helpers.query("INSERT INTO restart_probe VALUES (%s)", (marker,))
    key = f"probe/{marker}.bin"
    payload = bytes(range(256)) * 64
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=payload)

    stop = helpers.stack("stop")
    assert stop.returncode == 0, stop.stderr
    assert compose("ps", "-q").stdout.strip() == "", "a container of the stack still runs"
    start = helpers.stack("start")
    assert start.returncode == 0, start.stdout + start.stderr

    assert (
        helpers.query("SELECT count(*) FROM restart_probe WHERE marker = %s", (marker,))[0][0] == 1
    )
    assert helpers.get(key) == payload
    helpers.s3().delete_object(Bucket=helpers.bucket(), Key=key)
    helpers.query("DROP TABLE restart_probe")
