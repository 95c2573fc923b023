"""The stack over verified TLS (`make start TLS=1`, `make test-tls`): PostgreSQL takes TCP over
TLS only, the S3 port speaks HTTPS only, both present the certificate of `make certs`' CA, and
a job given another CA exits 4 with a FAILED line naming the certificate. The api-load and
archive DAG runs of `make test-tls` (test_dag_runs, test_archive_dag) go through the same
stack, so their green runs are runs over verified TLS. Skipped on a stack without TLS=1."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
from pathlib import Path

import helpers
import psycopg2
import pytest
import stack_client

CA = stack_client.tls_ca()
pytestmark = [
    pytest.mark.skipif(CA is None, reason="the stack runs without TLS: `make test-tls` runs this"),
    pytest.mark.usefixtures("stack"),
]


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second throwaway CA, which signed nothing the stack presents."""
    folder = tmp_path_factory.mktemp("wrong-ca")
    subprocess.run(
        ["bash", str(helpers.ROOT / "platform" / "tls.sh")],
        env={**os.environ, "DIR": str(folder)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder / "ca.crt"


def run_with_ca(
    ca: Path, image: str, *args: str, s3_only: bool = False
) -> subprocess.CompletedProcess:
    """``docker run`` of a job command as `helpers.job_argv` runs it, with ``ca`` mounted where
    the job reads its CA; ``s3_only``: the stack's own CA stays for PostgreSQL and ``ca`` is
    S3_CA_BUNDLE alone."""
    assert CA is not None
    host_ca, in_container = CA
    if s3_only:
        mounts = ["-v", f"{host_ca}:{in_container}:ro", "-v", f"{ca}:/etc/adpipe/other-ca.crt:ro"]
        mounts += ["-e", "S3_CA_BUNDLE=/etc/adpipe/other-ca.crt"]
    else:
        mounts = ["-v", f"{ca}:{in_container}:ro"]
    env_file = stack_client.job_env_file(image, args)
    argv = ["docker", "run", "--rm", "--network", "host", *mounts, "--env-file", str(env_file)]
    return subprocess.run(
        [*argv, image, *args], capture_output=True, text=True, timeout=300, check=False
    )


def failed_line(done: subprocess.CompletedProcess) -> str:
    return next((line for line in done.stderr.splitlines() if line.startswith("FAILED ")), "")


def test_every_dsn_of_the_jobs_verifies_the_server_against_the_ca() -> None:
    assert CA is not None
    for job in ("load", "archive", "reconcile", "health", "migrate"):
        values = stack_client.env_file_values(helpers.ROOT / f".env.{job}")
        dsns = {name: dsn for name, dsn in values.items() if name.endswith("_DSN")}
        assert dsns, job
        for name, dsn in dsns.items():
            options = psycopg2.extensions.parse_dsn(dsn)
            assert (options.get("sslmode"), options.get("sslrootcert")) == ("verify-full", CA[1]), (
                job,
                name,
            )


def test_postgresql_refuses_a_connection_without_tls() -> None:
    plain = psycopg2.extensions.make_dsn(
        helpers.on_host(os.environ["WAREHOUSE_DSN"]), sslmode="disable"
    )
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(plain).close()


def test_a_verified_session_is_tls_in_pg_stat_ssl() -> None:
    conn = psycopg2.connect(helpers.on_host(os.environ["WAREHOUSE_DSN"]))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ssl_on, version = cur.fetchone()
    finally:
        conn.close()
    assert ssl_on is True
    assert version in ("TLSv1.2", "TLSv1.3")


def test_s3_answers_only_https_with_the_stacks_certificate() -> None:
    assert CA is not None
    port = int(os.environ["S3_PORT"])
    assert os.environ["S3_ENDPOINT_URL"] == f"https://127.0.0.1:{port}"
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/")
        plain.getresponse()
    plain.close()
    verified = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=ssl.create_default_context(cafile=str(CA[0]))
    )
    verified.request("GET", "/")
    assert verified.getresponse().status == 403  # unsigned: refused, over verified TLS
    verified.close()


def test_a_job_given_the_wrong_ca_for_postgresql_exits_4_naming_the_certificate(
    wrong_ca: Path,
) -> None:
    done = run_with_ca(wrong_ca, "adpipe/archive:dev", "migrate")
    line = failed_line(done)
    assert done.returncode == 4, done.stderr
    assert "certificate verify failed" in line, line
    assert "WAREHOUSE_OWNER_DSN (sslrootcert=/etc/adpipe/tls/ca.crt)" in line, line
    assert "make start TLS=1" in line, line


def test_a_job_given_the_wrong_ca_for_s3_exits_4_naming_the_certificate(wrong_ca: Path) -> None:
    # the extract lists the window's backup before it asks the API: it stops there, having
    # written nothing
    done = run_with_ca(
        wrong_ca,
        "adpipe/extract_backup:dev",
        "run",
        "--start",
        "2026-11-02T10:00:00Z",
        "--end",
        "2026-11-02T11:00:00Z",
        s3_only=True,
    )
    line = failed_line(done)
    assert done.returncode == 4, done.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in line, line
    assert "S3_CA_BUNDLE (/etc/adpipe/other-ca.crt)" in line, line
    assert "make start TLS=1" in line, line


def test_a_job_given_the_stacks_ca_connects(wrong_ca: Path) -> None:
    """The same command as above with the stack's CA: the refusal was the certificate's."""
    done = helpers.docker_run("adpipe/archive:dev", "migrate", claim=False)
    assert done.returncode == 0, done.stderr
