"""Shared test helpers: the settings of .env, and handles on the real services."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"


def _load_env() -> None:
    if not ENV_FILE.exists():
        return
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


_load_env()


def docker_run(image: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300, detach: bool = False,
               name: str | None = None) -> subprocess.CompletedProcess:
    """``docker run --rm --network host --env-file .env <image> <args>``, as a user would."""
    cmd = ["docker", "run", "--rm", "--network", "host", "--env-file", str(ENV_FILE)]
    if detach:
        cmd.append("-d")
    if name:
        cmd += ["--name", name]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    cmd += [image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "platform" / "compose.sh"), *args],
                          capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)


@pytest.fixture(scope="session")
def stack() -> None:
    """Skip-proof guard: the stack must run (make test starts it)."""
    probe = subprocess.run(["bash", str(ROOT / "platform" / "stack.sh"), "running"],
                           capture_output=True, text=True, check=False, cwd=ROOT)
    if probe.returncode != 0:
        pytest.fail("the stack is not running: use `make test`, or `make start` first")
