"""The Makefile works where the README says users are (Linux, and macOS with Docker Desktop,
whose make runs BSD tools): `make help` groups every target and writes no terminal escape
into a pipe, and no target's recipe, nor a platform script one runs, needs a GNU-only tool
(GNU date's -d, stat -c without BSD's -f beside it, timeout, sha256sum, ...)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
GROUPS = ["Set up", "Run", "Operate", "Test and measure"]
# the scripts a make target runs on a user's machine; engine.sh (dockerd on Debian as root)
# and base.sh (debootstrap, for a machine no registry answers) are Debian's by design
SCRIPTS = sorted(
    set((ROOT / "platform").glob("*.sh"))
    - {ROOT / "platform" / n for n in ("engine.sh", "base.sh")}
)
GNU_ONLY = {
    r"\bdate\s+(?:-u\s+)?-d\b|\bdate\s+--": "GNU date's -d (BSD date has -v)",
    r"\bstat\s+-c\b(?!.*\bstat\s+-f\b)": "stat -c with no BSD stat -f beside it",
    r"(?<![\w.-])timeout\s+[0-9\"$]": "GNU timeout (platform/bounded.py bounds a wait)",
    r"\bsha256sum\b|\bmd5sum\b": "sha256sum (not on macOS)",
    r"\breadlink\s+-f\b": "readlink -f",
    r"\bgrep\s+-\w*P": "grep -P",
    r"\bsed\s+-i\b": "sed -i (its argument differs on BSD)",
    r"\bxargs\s+-r\b": "xargs -r",
    r"\bnproc\b": "nproc",
}


def targets() -> list[str]:
    return re.findall(r"^([a-z-]+):.*## ", MAKEFILE.read_text(), re.M)


def test_make_help_groups_every_target_and_writes_no_escape_into_a_pipe() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, check=True
    )
    assert b"\x1b" not in done.stdout
    lines = done.stdout.decode().splitlines()
    assert [line for line in lines if not line.startswith("  ")] == GROUPS
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert sorted(listed) == sorted(targets()) and len(listed) == len(set(listed))


def test_no_recipe_or_platform_script_needs_a_gnu_only_tool() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {why}"
        for path in [MAKEFILE, *SCRIPTS]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#")
        for pattern, why in GNU_ONLY.items()
        if re.search(pattern, line)
    ]
    assert found == []


def test_the_checker_finds_what_it_looks_for() -> None:
    samples = [
        "date -u -d '45 days ago' +%F",
        "stat -c %g /var/run/docker.sock",
        "timeout 60 docker pull",
        "sha256sum x",
    ]
    for sample in samples:
        assert any(re.search(p, sample) for p in GNU_ONLY), sample
    assert not any(re.search(p, "stat -c %g f || stat -f %g f") for p in GNU_ONLY)


def test_reconcile_leaves_its_default_days_to_the_job() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "reconcile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [x for x in done.stdout.splitlines() if "adpipe/archive:dev reconcile" in x]
    assert "--from" not in line and "date" not in line
