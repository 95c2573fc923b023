"""The Airflow UI in a real browser (Debian's chromium, driven by Playwright): login, the DAG
list with both pipelines and their successful runs, and the error for a wrong password."""

from __future__ import annotations

import os
import shutil

import helpers
import pytest

pytestmark = pytest.mark.usefixtures("stack")

ARTIFACTS = helpers.ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "chromium is missing: `make test` installs it"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()


def login(page, password: str) -> None:
    page.goto(os.environ["AIRFLOW_URL"])
    page.wait_for_selector("input[name=username]", timeout=30_000)
    page.fill("input[name=username]", os.environ["AIRFLOW_USER"])
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_shows_both_pipelines_with_successful_runs(page) -> None:
    airflow = helpers.Airflow()
    for dag_id in ("api-load", "archive"):
        runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?state=success&limit=1")
        assert runs["total_entries"] > 0, f"{dag_id} has no successful run to show"
    login(page, os.environ["AIRFLOW_PASSWORD"])
    page.wait_for_url("**/", timeout=30_000)
    page.goto(os.environ["AIRFLOW_URL"] + "/dags")
    for dag_id in ("api-load", "archive"):
        page.locator(f'a[data-testid="dag-id"][href="/dags/{dag_id}"]').wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-dag-list.png"))
    body = page.inner_text("body")
    assert "Latest Run" in body and "Invalid credentials" not in body


def test_a_wrong_password_shows_the_login_error(page) -> None:
    login(page, "not-the-password")
    page.get_by_text("Invalid credentials").wait_for(timeout=30_000)
    assert "/auth/login" in page.url
