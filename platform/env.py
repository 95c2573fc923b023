"""Create .env from .env.example, or add the settings .env.example gained since.

Values ``generate`` become fresh random secrets. Existing values in .env are never changed.
"""

import base64
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def value(raw: str) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() if raw == "generate" else raw


def main() -> int:
    example = (ROOT / ".env.example").read_text().splitlines()
    target = ROOT / ".env"
    if not target.exists():
        lines = [
            f"{k}={value(v)}" if "=" in line and not line.startswith("#") else line
            for line in example
            for k, _, v in [line.partition("=")]
        ]
        target.write_text("\n".join(lines) + "\n")
        target.chmod(0o600)
        print("env: wrote .env from .env.example")
        return 0
    have = {line.partition("=")[0] for line in target.read_text().splitlines() if "=" in line}
    missing = [
        line
        for line in example
        if "=" in line and not line.startswith("#") and line.partition("=")[0] not in have
    ]
    if missing:
        with target.open("a") as out:
            for line in missing:
                key, _, raw = line.partition("=")
                out.write(f"{key}={value(raw)}\n")
        print(f"env: added to .env: {', '.join(m.partition('=')[0] for m in missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
