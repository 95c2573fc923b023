"""`make picture`: the README's picture of the Data health page (docs/images/data-health.png),
taken in Debian's chromium (Playwright) from the running stack, logged in as AIRFLOW_USER,
over the page's default range (the 45 days up to yesterday)."""

from __future__ import annotations

import os
import sys

from browser import log_in, opened
from stack_client import ROOT, load_env

TARGET = ROOT / "docs" / "images" / "data-health.png"


def main() -> int:
    load_env()
    try:
        with opened(height=900) as page:
            log_in(page)
            page.wait_for_url("**/", timeout=30_000)
            page.goto(f"{os.environ['AIRFLOW_URL']}/data-health/")
            page.wait_for_selector("body[data-loaded]", timeout=300_000)
            TARGET.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(TARGET), full_page=True)
    except FileNotFoundError as exc:
        print(f"picture: {exc}", file=sys.stderr)
        return 1
    print(f"picture: wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
