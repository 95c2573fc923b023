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


@pytest.mark.parametrize("job", ["extract_backup", "load", "archive"])
def test_each_job_image_reaches_its_services_as_its_own_identity(job: str) -> None:
    result = helpers.summary(docker_run(f"adpipe/{job}:dev", "check"))
    assert result["exit_code"] == 0 and result["status"] == "ok", result
    assert result["bucket"] == f"s3://{helpers.bucket()}"
    role = {"load": "adpipe_loader", "archive": "adpipe_archiver"}.get(job)
    assert result.get("role") == role, result  # the extract has no warehouse role


def _restart() -> None:
    stop = helpers.stack("stop")
    assert stop.returncode == 0, stop.stderr
    assert compose("ps", "-q").stdout.strip() == "", "a container of the stack still runs"
    start = helpers.stack("start")
    assert start.returncode == 0, start.stdout + start.stderr


@pytest.mark.alone
def test_rows_and_objects_survive_stop_and_start_even_when_written_just_after_one() -> None:
    marker = uuid.uuid4().hex
    helpers.query("CREATE TABLE IF NOT EXISTS restart_probe (marker text)")
    helpers.query("INSERT INTO restart_probe VALUES (%s)", (marker,))
    first, second = f"probe/{marker}-1.bin", f"probe/{marker}-2.bin"
    payload = bytes(range(256)) * 64
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=first, Body=payload)

    _restart()
    # written the moment the stack says it is healthy, then through a second restart of the
    # one service that holds it: its container removed as `make stop` removes it (SIGTERM,
    # and what still runs 3 s later is killed), and made again by `make start`
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=second, Body=payload[::-1])
    assert compose("rm", "--stop", "--force", "s3").returncode == 0
    assert compose("ps", "-q", "s3").stdout.strip() == ""
    start = helpers.stack("start")
    assert start.returncode == 0, start.stdout + start.stderr

    assert (
        helpers.query("SELECT count(*) FROM restart_probe WHERE marker = %s", (marker,))[0][0] == 1
    )
    assert helpers.get(first) == payload and helpers.get(second) == payload[::-1]
    helpers.s3().delete_objects(
        Bucket=helpers.bucket(), Delete={"Objects": [{"Key": first}, {"Key": second}]}
    )
    helpers.query("DROP TABLE restart_probe")


def _client(key: str, secret: str):
    import os

    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def _code(call) -> str:
    import botocore.exceptions

    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def _unsigned(method: str, path: str) -> int:
    import os
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - the local S3 server
        os.environ["S3_ENDPOINT_URL"] + path, method=method, data=b"x" if method != "GET" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_s3_refuses_unsigned_and_wrongly_signed_requests_and_has_no_reset() -> None:
    import os

    # an object of this test's own, which a reset would take with it (the bucket's other
    # objects are other tests', written and deleted beside this one)
    canary = f"probe/{uuid.uuid4().hex}-canary"
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=canary, Body=b"canary")
    try:
        assert _unsigned("GET", f"/{helpers.bucket()}?list-type=2") == 403
        assert _unsigned("PUT", f"/{helpers.bucket()}/probe/unsigned") == 403
        for path in ("/moto-api/reset", "/moto-api/recorder/replay-recording", "/_faults"):
            assert _unsigned("POST", path) >= 400, path
        wrong = _client(os.environ["AWS_ACCESS_KEY_ID"], "not-the-secret")
        assert _code(lambda: wrong.list_objects_v2(Bucket=helpers.bucket())) == (
            "SignatureDoesNotMatch"
        )
        assert helpers.get(canary) == b"canary"
        assert helpers.keys("probe/unsigned") == []
    finally:
        helpers.s3().delete_object(Bucket=helpers.bucket(), Key=canary)


def test_each_job_s3_identity_may_do_its_work_and_nothing_else() -> None:
    import os

    def identity(job: str):
        return _client(
            os.environ[f"{job}_AWS_ACCESS_KEY_ID"], os.environ[f"{job}_AWS_SECRET_ACCESS_KEY"]
        )

    bucket = helpers.bucket()
    probe = uuid.uuid4().hex
    extract, load = identity("EXTRACT"), identity("LOAD")
    archive, reconcile = identity("ARCHIVE"), identity("RECONCILE")
    put = lambda client, key: lambda: client.put_object(Bucket=bucket, Key=key, Body=b"x")  # noqa: E731
    get = lambda client, key: lambda: client.get_object(Bucket=bucket, Key=key)  # noqa: E731
    assert _code(put(extract, f"backup/probe/{probe}")) == "ok"
    assert _code(put(extract, f"archive/probe/{probe}")) == "AccessDenied"
    assert _code(put(extract, f"quarantine/probe/{probe}")) == "AccessDenied"
    assert _code(get(load, f"backup/probe/{probe}")) == "ok"
    assert _code(put(load, f"backup/probe/{probe}-2")) == "AccessDenied"
    assert _code(put(load, f"quarantine/probe/{probe}")) == "ok"
    assert _code(put(archive, f"archive/probe/{probe}")) == "ok"
    assert _code(get(archive, f"backup/probe/{probe}")) == "AccessDenied"
    assert _code(get(reconcile, f"backup/probe/{probe}")) == "ok"
    assert _code(put(reconcile, f"backup/probe/{probe}-3")) == "AccessDenied"
    assert _code(lambda: reconcile.delete_object(Bucket=bucket, Key=f"backup/probe/{probe}")) == (
        "AccessDenied"
    )
    for key in (f"backup/probe/{probe}", f"quarantine/probe/{probe}", f"archive/probe/{probe}"):
        helpers.s3().delete_object(Bucket=bucket, Key=key)


def test_a_50_mb_object_round_trips_by_multipart() -> None:
    import hashlib
    import io

    body = hashlib.sha256(b"adpipe").digest() * (50 * 1024 * 1024 // 32)
    key = f"probe/{uuid.uuid4().hex}.bin"
    helpers.s3().upload_fileobj(io.BytesIO(body), helpers.bucket(), key)
    try:
        head = helpers.s3().head_object(Bucket=helpers.bucket(), Key=key)
        assert "-" in head["ETag"]  # a multipart upload's ETag names its part count
        assert hashlib.sha256(helpers.get(key)).digest() == hashlib.sha256(body).digest()
    finally:
        helpers.s3().delete_object(Bucket=helpers.bucket(), Key=key)


def test_the_stacks_ad_api_has_no_fault_endpoint() -> None:
    import os
    import urllib.error

    try:
        helpers.post_json(f"{os.environ['AD_API_URL']}/_faults", {"plan": ["500"]})
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    else:
        pytest.fail("the stack's ad API accepted a fault plan")


def test_no_airflow_container_runs_as_root_and_only_the_scheduler_holds_the_docker_socket() -> None:
    import json

    ids = compose("ps", "-q").stdout.split()
    seen = {}
    for container in ids:
        info = json.loads(
            subprocess.run(
                ["docker", "inspect", container], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        service = info["Config"]["Labels"]["com.docker.compose.service"]
        if not service.startswith("airflow-") or not info["State"]["Running"]:
            continue
        top = subprocess.run(
            ["docker", "exec", container, "id", "-u"], capture_output=True, text=True, check=True
        )
        sockets = [m for m in info["Mounts"] if m["Destination"] == "/var/run/docker.sock"]
        seen[service] = (top.stdout.strip(), bool(sockets))
    assert set(seen) >= {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor"}
    for service, (uid, socket) in seen.items():
        assert uid != "0", service
        assert socket == (service == "airflow-scheduler"), service


@pytest.mark.parametrize("job", ["extract_backup", "load", "archive"])
def test_each_job_image_runs_as_a_non_root_user(job: str) -> None:
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", f"adpipe/{job}:dev", "-u"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() not in ("", "0")


@pytest.mark.alone
def test_make_start_stops_in_seconds_naming_docker_desktops_setting_without_host_networking() -> (
    None
):
    import os
    import time

    # the probe container listens, the host looks elsewhere: what a VM without host
    # networking (Docker Desktop before the setting) looks like from the host
    began = time.monotonic()
    done = subprocess.run(
        ["bash", str(helpers.ROOT / "platform" / "stack.sh"), "start"],
        env={**os.environ, "HOST_NETWORK_REACH_PORT": "18998"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    took = time.monotonic() - began
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Enable host networking" in done.stderr and "Docker Desktop" in done.stderr
    assert took < 20, took
    assert helpers.stack("running").returncode == 0  # the running stack was left alone
