"""`make picture`: the README's picture of the Data health page (docs/images/data-health.png),
taken in Debian's chromium (Playwright) from the running stack, logged in as AIRFLOW_USER,
over the page's default range (the 45 days up to yesterday)."""

from __future__ import annotations

import os
import shutil
import sys

from stack_client import ROOT, load_env

TARGET = ROOT / "docs" / "images" / "data-health.png"


def main() -> int:
    from playwright.sync_api import sync_playwright

    load_env()
    chromium = shutil.which("chromium")
    if not chromium:
        print("picture: chromium is missing: `make browser` installs it", file=sys.stderr)
        return 1
    base = os.environ["AIRFLOW_URL"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base)
        page.wait_for_selector("input[name=username]", timeout=30_000)
        page.fill("input[name=username]", os.environ["AIRFLOW_USER"])
        page.fill("input[name=password]", os.environ["AIRFLOW_PASSWORD"])
        page.click("button[type=submit]")
        page.wait_for_url("**/", timeout=30_000)
        page.goto(f"{base}/data-health/")
        page.wait_for_selector("body[data-loaded]", timeout=300_000)
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(TARGET), full_page=True)
        browser.close()
    print(f"picture: wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
