"""bounded SECONDS COMMAND...: run COMMAND, and stop it when it takes longer than SECONDS
(exit 124, as GNU timeout says it). GNU coreutils' timeout is not on macOS, where the README
says the make targets run too; the stack's health checks and the image builds' registry
probe wait through this instead. Its own output and exit code are the command's."""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: bounded.py SECONDS COMMAND...", file=sys.stderr)
        return 2
    try:
        return subprocess.run(argv[1:], timeout=float(argv[0]), check=False).returncode  # noqa: S603
    except subprocess.TimeoutExpired:
        return 124
    except OSError as exc:  # not found, not executable: as a shell says it
        print(f"bounded: {argv[1]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
