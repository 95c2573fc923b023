"""The Airflow UI in a real browser (Debian's chromium, driven by Playwright): login, the DAG
list with both pipelines and their successful runs, and the error for a wrong password."""

from __future__ import annotations

import os

import helpers
import pytest
from browser import log_in

pytestmark = pytest.mark.usefixtures("stack")

ARTIFACTS = helpers.ROOT / "artifacts"


def test_login_shows_both_pipelines_with_successful_runs(page) -> None:
    airflow = helpers.Airflow()
    for dag_id in ("api-load", "archive"):
        runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?state=success&limit=1")
        assert runs["total_entries"] > 0, f"{dag_id} has no successful run to show"
    log_in(page)
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
    log_in(page, "not-the-password")
    page.get_by_text("Invalid credentials").wait_for(timeout=30_000)
    assert "/auth/login" in page.url
