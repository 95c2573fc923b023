"""One way to time and one way to weigh every entry of ``make bench``: each entry is a
process (a ``docker run`` of an image, or a child process of the bench) started in a memory
cgroup of its own, whose anonymous memory the bench samples every 10 ms; the highest sample
is the entry's peak. Page cache and memory-mapped files are not anonymous memory, so input
a process maps or reads through the cache does not count as its memory.

A sample is the higher of two readings of the same memory: the group's memory.stat
(cgroup v1: ``total_rss``; v2: ``anon``; both count the group's descendants, such as a
container the engine starts under it), and the sum of ``RssAnon`` of every process in the
group and its descendants (/proc/<pid>/status). Recent kernels refresh memory.stat lazily
(every 2 s, measured here: a container holding 200 MB for 0.3 s never showed in it), so the
processes' own counters catch what a short run would otherwise hide.
Docker must use the cgroupfs driver, which takes ``--cgroup-parent /adpipe-bench/<entry>``
as a path; the bench must be allowed to create groups there (root, or a delegated group).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup")
ROOT_GROUP = "adpipe-bench"
SAMPLE_SECONDS = 0.01
REMOVE_SECONDS = 10  # a container's own group goes when the engine has removed it


class CgroupUnavailable(Exception):
    """The bench cannot create memory cgroups here."""


@dataclass
class Hierarchy:
    """Where memory groups live and which memory.stat line is anonymous memory."""

    memory: Path  # the directory groups are created in (v1: the memory controller's)
    anon_field: str
    v2: bool

    @classmethod
    def find(cls) -> Hierarchy:
        if (CGROUPS / "cgroup.controllers").exists():
            return cls(CGROUPS, "anon", True)
        if (CGROUPS / "memory" / "memory.stat").exists():
            return cls(CGROUPS / "memory", "total_rss", False)
        raise CgroupUnavailable(f"no memory cgroup controller under {CGROUPS}")

    @property
    def base(self) -> Path:
        return self.memory / ROOT_GROUP


@dataclass
class Group:
    """One entry's memory cgroup and the highest anonymous memory sampled in it."""

    hierarchy: Hierarchy
    name: str
    peak_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def path(self) -> Path:
        return self.hierarchy.base / self.name

    @property
    def parent(self) -> str:
        """The group as ``docker run --cgroup-parent`` takes it (cgroupfs driver)."""
        return f"/{ROOT_GROUP}/{self.name}"

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside the group: a shell writes its own pid into the group's
        cgroup.procs and then becomes the program (exec), so every page the program touches
        is charged to the group. No value of the environment appears in the arguments."""
        procs = str(self.path / "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]

    def sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self._stat(), self._processes())

    def _stat(self) -> int:
        prefix = self.hierarchy.anon_field + " "
        with contextlib.suppress(OSError):
            for line in (self.path / "memory.stat").read_text().splitlines():
                if line.startswith(prefix):
                    return int(line[len(prefix) :])
        return 0

    def _processes(self) -> int:
        """The anonymous memory of every process in the group and its descendants."""
        total = 0
        for procs in self.path.glob("**/cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    total += _rss_anon(pid)
        return total

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()


def _rss_anon(pid: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class Cgroups:
    """The bench's memory groups, one per entry run, under ``adpipe-bench``."""

    def __init__(self) -> None:
        self.hierarchy = Hierarchy.find()
        self.count = 0
        try:
            self.hierarchy.base.mkdir(exist_ok=True)
            if self.hierarchy.v2:  # the memory controller must reach the entries' groups
                (self.hierarchy.base / "cgroup.subtree_control").write_text("+memory")
        except OSError as exc:
            raise CgroupUnavailable(f"cannot create {self.hierarchy.base}: {exc}") from None

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[Group]:
        """A new memory group for one run of an entry, sampled every 10 ms while the block
        runs, and removed after it."""
        self.count += 1
        group = Group(self.hierarchy, f"{name.replace('/', '-')}-{self.count}")
        group.path.mkdir()
        watcher = threading.Thread(target=group._watch, daemon=True)
        watcher.start()
        try:
            yield group
        finally:
            group.sample()
            group._stop.set()
            watcher.join(timeout=5)
            self._remove(group.name)

    def _remove(self, name: str) -> None:
        """The group in every hierarchy it was made in: the engine makes one in each v1
        controller for a container's parent, and removes only the container's own."""
        roots = [CGROUPS] if self.hierarchy.v2 else [p for p in CGROUPS.iterdir() if p.is_dir()]
        deadline = time.monotonic() + REMOVE_SECONDS
        for root in roots:
            path = root / ROOT_GROUP / name
            while path.exists():
                try:
                    for child in sorted(path.glob("**/"), key=lambda p: -len(p.parts)):
                        child.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def close(self) -> None:
        roots = [CGROUPS] if self.hierarchy.v2 else [p for p in CGROUPS.iterdir() if p.is_dir()]
        for root in roots:
            with contextlib.suppress(OSError):
                (root / ROOT_GROUP).rmdir()


class Unweighed:
    """Stands in for `Cgroups` where the bench may not create memory groups (a user who is
    not root, with no delegated group): the quick bench, a check that the harness runs, still
    times every entry and checks its rows; it weighs none (``peak_mb`` None)."""

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        yield None

    def close(self) -> None:
        pass


def docker_cgroup_driver() -> str:
    done = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupDriver}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip()
