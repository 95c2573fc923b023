"""`make env TLS=1` / `TLS=0` (platform/env.py's `switch_tls`): what it rewrites in .env, and
that switching back gives .env as it was."""

from __future__ import annotations

from pathlib import Path

import env as env_files
import pytest

EXAMPLE_ENV = """# a comment with = in it
TLS=0
POSTGRES_PORT=5433
S3_PORT=9000
S3_ENDPOINT_URL=http://127.0.0.1:9000
S3_CA_BUNDLE=
WAREHOUSE_OWNER_DSN=postgresql://adpipe:p%40ss@127.0.0.1:5433/warehouse
LOAD_WAREHOUSE_DSN=postgresql://adpipe_loader:x@127.0.0.1:5433/warehouse?connect_timeout=5
AD_API_URL=http://127.0.0.1:8081
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(env_files, "ROOT", tmp_path)
    (tmp_path / ".env").write_text(EXAMPLE_ENV)
    return tmp_path


def settings(root: Path) -> dict[str, str]:
    lines = (root / ".env").read_text().splitlines()
    return dict(line.partition("=")[::2] for line in lines if "=" in line and line[0] != "#")


def test_tls_on_verifies_every_dsn_and_the_local_s3_endpoint_against_the_ca(root: Path) -> None:
    env_files.switch_tls(True)
    found = settings(root)
    ca = env_files.CA_IN_CONTAINERS
    assert found["TLS"] == "1"
    assert found["S3_CA_BUNDLE"] == ca
    assert found["S3_ENDPOINT_URL"] == "https://127.0.0.1:9000"
    assert found["WAREHOUSE_OWNER_DSN"] == (
        f"postgresql://adpipe:p%40ss@127.0.0.1:5433/warehouse?sslmode=verify-full&sslrootcert={ca}"
    )
    assert found["LOAD_WAREHOUSE_DSN"].endswith(
        f"/warehouse?connect_timeout=5&sslmode=verify-full&sslrootcert={ca}"
    )
    assert found["AD_API_URL"] == "http://127.0.0.1:8081"  # not a server TLS=1 changes
    assert (root / ".env").stat().st_mode & 0o777 == 0o600


def test_tls_off_after_on_gives_env_as_it_was(root: Path) -> None:
    env_files.switch_tls(True)
    env_files.switch_tls(True)  # twice: options are not added twice
    assert settings(root)["WAREHOUSE_OWNER_DSN"].count("sslmode") == 1
    env_files.switch_tls(False)
    assert (root / ".env").read_text() == EXAMPLE_ENV


def test_tls_off_keeps_an_operators_own_ssl_options_and_endpoint(root: Path) -> None:
    """Only the options TLS=1 adds go: a managed server's sslmode=require stays, and so does
    an S3 endpoint that is not the local one."""
    text = EXAMPLE_ENV.replace("?connect_timeout=5", "?sslmode=require").replace(
        "S3_ENDPOINT_URL=http://127.0.0.1:9000",
        "S3_ENDPOINT_URL=https://s3.eu-west-1.amazonaws.com",
    )
    (root / ".env").write_text(text)
    env_files.switch_tls(False)
    found = settings(root)
    assert found["LOAD_WAREHOUSE_DSN"].endswith("/warehouse?sslmode=require")
    assert found["S3_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"


def test_the_dags_mount_the_ca_into_job_containers_only_with_tls(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.env.airflow names the CA on the host only with TLS=1; the DAGs mount it read-only at
    the path the jobs read (S3_CA_BUNDLE), and mount nothing without it."""
    from adpipe_dags.jobs import ca_mounts

    env_files.switch_tls(True)
    known = {**settings(root), "AD_API_URL": "http://127.0.0.1:8081"}
    env_files.write_airflow_file(known)
    lines = (root / ".env.airflow").read_text().splitlines()
    written = dict(line.partition("=")[::2] for line in lines if "=" in line)
    assert written["ADPIPE_TLS_CA_FILE"] == str(root / ".state" / "tls" / "ca.crt")
    assert written["ADPIPE_S3_CA_BUNDLE"] == env_files.CA_IN_CONTAINERS
    for name in ("ADPIPE_TLS_CA_FILE", "ADPIPE_S3_CA_BUNDLE"):
        monkeypatch.setenv(name, written[name])
    (mount,) = ca_mounts()
    assert (mount["Source"], mount["Target"], mount["ReadOnly"], mount["Type"]) == (
        written["ADPIPE_TLS_CA_FILE"],
        env_files.CA_IN_CONTAINERS,
        True,
        "bind",
    )
    monkeypatch.delenv("ADPIPE_TLS_CA_FILE")
    assert ca_mounts() == []
