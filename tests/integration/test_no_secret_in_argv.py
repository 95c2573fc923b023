"""No secret of .env is ever in a process's arguments, which every user of the host can read
(``ps``, /proc/<pid>/cmdline). Each make target that uses a password or key runs here while
every process on the host, the containers' among them, is watched every 50 ms: none may hold
a password, a secret, a key or a DSN's password of .env in its arguments. The targets pass
them through the environment or a private file instead (platform/psql.py, .env.<job>).

It watches every process of the host: the other tests that run beside it (platform/test.sh)
pass no secret in arguments either (`helpers.docker_run` hands docker names only), so a leak
of theirs fails it too. It writes only on its days in tests/days.py.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import days
import helpers
import pytest

pytestmark = pytest.mark.usefixtures("stack")

GAP_HOUR = f"{days.day('test_no_secret_in_argv', n=1)}T05:00"  # accepted, then removed
RESTORED_DAY = f"{days.day('test_no_secret_in_argv')}"  # restored, reconciled (none archived)
REASON = "test_no_secret_in_argv: an hour accepted while every process is watched"
POLL_SECONDS = 0.05
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$")
# shorter values are no secret: the UI's login is the well-known airflow / airflow (README)
SHORTEST_SECRET = 8


def env_values() -> dict[str, str]:
    """The settings of .env, as compose and the shell read them (quotes dropped)."""
    found = {}
    for line in helpers.ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key.strip()] = value
    return found


def secrets() -> dict[str, str]:
    """Each secret value of .env (a DSN's password as written and decoded) -> its setting."""
    found = {}
    for name, value in env_values().items():
        candidates = [value] if SECRET_NAME.search(name) else []
        if "DSN" in name:
            password = urllib.parse.urlsplit(value).password
            candidates += [password, urllib.parse.unquote(password)] if password else []
        for candidate in candidates:
            if len(candidate) >= SHORTEST_SECRET:
                found[candidate] = name
    return found


class Watch:
    """Every process's arguments, read from /proc every POLL_SECONDS while the block runs."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.leaks: dict[tuple[str, str], str] = {}  # (pid, setting) -> arguments, masked
        self.commands: set[str] = set()
        self.polls = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:  # it ended meanwhile
                continue
            line = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            self.commands.add(line)
            for value, setting in self.values.items():
                if value in line:
                    masked = line
                    for secret in self.values:
                        masked = masked.replace(secret, "***")
                    self.leaks[(entry.name, setting)] = masked[:300]
        self.polls += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(POLL_SECONDS)

    @contextmanager
    def watching(self) -> Iterator[Watch]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=10)
        self._poll()  # once more: a leak in the last 50 ms

    def saw(self, pattern: str) -> bool:
        return any(re.search(pattern, command) for command in self.commands)


def make(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=helpers.ROOT,
    )


def test_the_watch_sees_a_value_in_the_arguments_of_a_process_in_a_container() -> None:
    # the control: a made-up value put where the old `make psql` put the DSN
    canary = f"canary-{uuid.uuid4().hex}"
    with Watch({canary: "CANARY"}).watching() as watch:
        done = helpers.compose("exec", "-T", "postgres", "sh", "-c", "sleep 1", canary)
    assert done.returncode == 0, done.stderr
    assert {setting for _, setting in watch.leaks} == {"CANARY"}
    # seen in the container's own process too, not only in docker's and compose's
    assert any(
        text.startswith(("sh -c sleep 1", "/bin/sh -c sleep 1")) for text in watch.leaks.values()
    )


TARGETS = {
    "psql as the owner": (("psql", "ROLE=owner"), "SELECT pg_sleep(3);\n", r"^psql\b"),
    "accept-gap": (
        (
            "accept-gap",
            f"FROM={GAP_HOUR}",
            f"TO={GAP_HOUR}",
            f"REASON={REASON}",
        ),
        "",
        # psql may come and go between two polls; compose's exec runs around it
        r"compose.*\bexec\b",
    ),
    "migrate": (("migrate",), "", r"^docker run .* adpipe/archive:dev migrate"),
    "restore": (
        ("restore", f"FROM={RESTORED_DAY}", f"TO={RESTORED_DAY}"),
        "",
        r"^docker run .* restore",
    ),
    "reconcile": (
        ("reconcile", f"FROM={RESTORED_DAY}", f"TO={RESTORED_DAY}"),
        "",
        r"^docker run .* reconcile",
    ),
    # the reader's DSN and the query identity's S3 key, read in the host's own process
    "query": (
        ("query", "SQL=select count(*) from impressions where shown_date = '2026-07-09'"),
        "",
        r"platform/query\.py",
    ),
}


@pytest.mark.parametrize("target", TARGETS)
def test_a_make_target_puts_no_secret_in_any_process_arguments(target: str) -> None:
    args, stdin, its_process = TARGETS[target]
    values = secrets()
    assert len(values) >= 10, "the secrets of .env were not found"
    deadline = time.monotonic() + 180
    try:
        with Watch(values).watching() as watch:
            done = make(*args, stdin=stdin)
            # an archive run of the tests beside this one holds the archive lock: again
            while "holds the archive lock" in done.stderr and time.monotonic() < deadline:
                time.sleep(2)
                done = make(*args, stdin=stdin)
    finally:
        if target == "accept-gap":
            helpers.query("DELETE FROM accepted_gaps WHERE reason = %s", (REASON,))
    assert done.returncode == 0, done.stdout + done.stderr
    assert watch.saw(its_process), f"the watch never saw {its_process} ({watch.polls} polls)"
    assert watch.leaks == {}, "\n".join(
        f"{setting} in the arguments of pid {pid}: {text}"
        for (pid, setting), text in watch.leaks.items()
    )
