"""Test setup: the settings of .env, and the guard that the stack runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import helpers
import pytest

helpers.load_env()


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


@pytest.fixture(scope="session")
def fault_api() -> Iterator[str]:
    """An ad API serving the same pages as the stack's (same volume, same seed), with the
    fault queue the stack's API does not have: tests inject API faults here."""
    per_hour = int(os.environ.get("AD_API_IMPRESSIONS_PER_HOUR", "3000"))
    with helpers.served_api(18096, per_hour, "adpipe", faults=True) as url:
        yield url
