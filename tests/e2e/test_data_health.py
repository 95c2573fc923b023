"""The Data health page in Airflow's UI, in a real browser (Debian's chromium, driven by
Playwright): its per-day numbers are reconcile's `--json` for the same days, an hour made to
miss shows as missing; its API refuses a request without a session, and the service behind
it holds only the reader's rights."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import days
import helpers
import pytest
from browser import log_in

pytestmark = pytest.mark.usefixtures("stack")

ARTIFACTS = helpers.ROOT / "artifacts"
OWNER = "test_data_health"
WHOLE, GAPPY = days.day(OWNER, n=0), days.day(OWNER, n=1)  # a balanced day; one missing 01:00
FIELDS = ("backup", "postgres", "archive", "rejected", "duplicates")
HOUR = timedelta(hours=1)


def midnight(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.fixture(scope="module")
def two_days() -> None:
    """WHOLE: 00:00-02:00 loaded, the rest accepted as a gap (balanced). GAPPY: 00:00 and
    02:00 loaded, 03:00-24:00 accepted: 01:00 is missing, and the day is out of balance."""
    helpers.load_windows(
        [(midnight(WHOLE) + n * HOUR, midnight(WHOLE) + (n + 1) * HOUR) for n in (0, 1)]
        + [(midnight(GAPPY) + n * HOUR, midnight(GAPPY) + (n + 1) * HOUR) for n in (0, 2)],
        None,
    )
    for day, first in ((WHOLE, 2), (GAPPY, 3)):
        low, high = midnight(day) + first * HOUR, midnight(day) + 24 * HOUR
        if not helpers.query(
            "SELECT 1 FROM accepted_gaps WHERE gap_start = %s AND gap_end = %s", (low, high)
        ):
            helpers.query(
                "INSERT INTO accepted_gaps (gap_start, gap_end, reason) VALUES (%s, %s, %s)",
                (low, high, f"{OWNER}: a test loads only some hours"),
            )


def reconciled() -> dict[str, dict]:
    done = helpers.docker_run(
        "adpipe/archive:dev", "reconcile", "--from", f"{WHOLE}", "--to", f"{GAPPY}", "--json"
    )
    assert done.returncode == 3, done.stdout + done.stderr  # GAPPY does not balance
    text = (
        done.stdout[: done.stdout.index("\nSUMMARY ")]
        if "\nSUMMARY " in done.stdout
        else done.stdout
    )
    return {d["day"]: d for d in json.loads(text)}


def get(path: str, headers: dict[str, str] | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(  # noqa: S310 - the local stack
        os.environ["AIRFLOW_URL"] + path, headers=headers or {}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("path", ["/data-health/", "/data-health/api/days"])
def test_without_a_session_the_page_and_its_api_are_refused(path: str) -> None:
    assert get(path) in (401, 403)
    assert get(path, {"Authorization": "Bearer not-a-token"}) in (401, 403)


def test_the_page_is_in_airflows_navigation_and_its_api_only_reads() -> None:
    airflow = helpers.Airflow()
    plugins = airflow.api("GET", "/plugins")["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "data_health"]
    assert plugin["external_views"][0]["url_route"] == "data-health"
    token = {"Authorization": f"Bearer {airflow.token}"}
    assert get(f"/data-health/api/days?from={WHOLE}&to={WHOLE}", token) == 200
    for method in ("POST", "PUT", "DELETE"):
        assert get("/data-health/api/days", token, method) == 405


def test_the_service_behind_the_page_holds_only_the_readers_rights() -> None:
    found = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{json .Config.Env}}",
            helpers.compose("ps", "-q", "health").stdout.strip(),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    env = dict(item.partition("=")[::2] for item in json.loads(found.stdout))
    assert env["WAREHOUSE_DSN"].startswith("postgresql://adpipe_reader:")
    secrets = {
        k for k in env if k.endswith(("_DSN", "_KEY", "_PASSWORD", "_SECRET_ACCESS_KEY", "_TOKEN"))
    }
    assert secrets == {"WAREHOUSE_DSN", "RECONCILE_AWS_SECRET_ACCESS_KEY", "HEALTH_TOKEN"}, secrets
    assert env["RECONCILE_AWS_ACCESS_KEY_ID"] == os.environ["RECONCILE_AWS_ACCESS_KEY_ID"]
    # the reader may write nothing: what the service connects as is refused a write
    refused = helpers.attempt("WAREHOUSE_DSN", "DELETE FROM load_runs WHERE false")
    assert refused == "InsufficientPrivilege", refused


def signed_in(page) -> None:
    log_in(page)
    page.wait_for_url("**/", timeout=30_000)


@pytest.mark.usefixtures("two_days")
def test_chromium_shows_reconciles_numbers_and_the_missing_hour(page) -> None:
    signed_in(page)
    page.goto(f"{os.environ['AIRFLOW_URL']}/data-health/?from={WHOLE}&to={GAPPY}")
    page.wait_for_selector(f"body[data-loaded='{WHOLE}..{GAPPY}']", timeout=300_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "data-health.png"), full_page=True)
    expected = reconciled()
    for day in (WHOLE, GAPPY):
        row = page.locator(f"#days tr[data-day='{day}']")
        shown = {f: int(row.locator(f"td[data-field={f}]").inner_text()) for f in FIELDS}
        assert shown == {f: expected[f"{day}"][f] for f in FIELDS}, (day, shown, expected)
        assert row.get_attribute("class") == ("ok" if expected[f"{day}"]["balanced"] else "off")
    assert expected[f"{WHOLE}"]["balanced"] and not expected[f"{GAPPY}"]["balanced"]
    marks = page.locator(f"#hours tr[data-day='{GAPPY}'] .cell")
    # the module's hours are loaded months after their windows ended: past the deadline
    assert [marks.nth(h).get_attribute("data-mark") for h in range(4)] == [
        "late",
        "missing",
        "late",
        "accepted",
    ]
    assert page.locator("#last-loaded").inner_text() != ""
