"""A job's failure line never echoes a DSN or its password, and placeholders are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PASSWORD = "Zq#/@%distinctive"  # noqa: S105 - the test's own, for no server
WINDOW = ["--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z"]


def run_load(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("WAREHOUSE_DSN")}
    return subprocess.run(
        [sys.executable, "-m", "adpipe_load", *WINDOW],  # the load as its image runs it
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "dsn",
    [
        # percent-encoded, as it should be, to a port nothing listens on
        "postgresql://loader:Zq%23%2F%40%25distinctive@127.0.0.1:9/warehouse",
        # written raw: libpq cannot even parse it
        f"postgresql://loader:{PASSWORD}@127.0.0.1:9/warehouse",
        f"host=127.0.0.1 port=9 user=loader password={PASSWORD} dbname=warehouse",
    ],
)
def test_a_failing_connection_never_prints_the_dsn_or_its_password(dsn: str) -> None:
    done = run_load(
        LOAD_WAREHOUSE_DSN=dsn,
        LOAD_AWS_ACCESS_KEY_ID="k",
        LOAD_AWS_SECRET_ACCESS_KEY="s",  # noqa: S106 - for no server
        S3_ENDPOINT_URL="http://127.0.0.1:9",
    )
    output = done.stdout + done.stderr
    assert done.returncode in (2, 4), output
    assert "FAILED load:" in output
    assert "check that PostgreSQL is up and LOAD_WAREHOUSE_DSN" in output or (
        "check LOAD_WAREHOUSE_DSN (percent-encode" in output  # the setting the load reads
    ), output
    for secret in (PASSWORD, "Zq%23%2F%40%25distinctive", "distinctive", dsn):
        assert secret not in output


def test_a_setting_still_reading_generate_is_refused() -> None:
    done = run_load(LOAD_WAREHOUSE_DSN="generate")
    assert done.returncode == 2
    assert "setting LOAD_WAREHOUSE_DSN still reads 'generate'" in done.stderr
