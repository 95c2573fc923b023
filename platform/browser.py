"""Debian's chromium driven by Playwright, as the UI tests and `make picture` use it: a page
of a fresh browser (`opened`) and Airflow's login form filled in (`log_in`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# no sandbox (root in a container), and nothing that reaches out on its own
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def opened(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A page of a new chromium, closed after; `FileNotFoundError` naming `make browser`
    when chromium is missing."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError("chromium is missing: `make browser` installs it")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def log_in(page: Any, password: str | None = None) -> None:
    """Airflow's login form, as AIRFLOW_USER (with AIRFLOW_PASSWORD unless told another)."""
    page.goto(os.environ["AIRFLOW_URL"])
    page.wait_for_selector("input[name=username]", timeout=30_000)
    page.fill("input[name=username]", os.environ["AIRFLOW_USER"])
    page.fill(
        "input[name=password]", os.environ["AIRFLOW_PASSWORD"] if password is None else password
    )
    page.click("button[type=submit]")
