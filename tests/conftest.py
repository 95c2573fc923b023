"""Test setup: the settings of .env, and the guard that the stack runs."""

from __future__ import annotations

import subprocess

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
