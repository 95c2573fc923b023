"""A vendor's ad API that wants a token, through Airflow (one of the test's own, `own_airflow`:
the stack's Airflow with the ``ad_api`` connection pointed at that API): the token in the
connection loads the window; without it the extract exits 2 naming the setting, with a wrong
one 4 naming the API, once a try; and the token is in no backup object, manifest, SUMMARY,
XCom, lineage event or task log, searched byte for byte."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import days
import helpers
import pytest
from helpers import OwnAirflow, compose, own_airflow, summaries

pytestmark = pytest.mark.usefixtures("stack")

TOKEN = secrets.token_urlsafe(24)
PORT = 18121
END = days.moment("test_api_credential", hour=7)  # the window [06:00, 07:00) of its day
START = END - timedelta(hours=1)
REFUSED = days.moment("test_api_credential", hour=2)  # the refused runs' windows: 01:00, 02:00
FAST_RETRIES = {"ADPIPE_JOB_RETRY_DELAY_SECONDS": "1"}


@pytest.fixture(scope="module")
def vendor_api() -> Iterator[str]:
    with helpers.served_api(PORT, 600, "vendor-api", token=TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def airflow(vendor_api: str) -> Iterator[OwnAirflow]:
    with own_airflow() as found:
        yield found


def connection(password: str | None) -> dict[str, str]:
    """The run's environment: the ``ad_api`` connection to the vendor's API, with
    ``password`` as its token, sent as a bearer token."""
    found: dict[str, object] = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": PORT,
        "extra": {"auth": "bearer"},
    }
    if password is not None:
        found["password"] = password
    return {"AIRFLOW_CONN_AD_API": json.dumps(found), **FAST_RETRIES}


def extract_summaries(done: subprocess.CompletedProcess) -> list[dict]:
    return [s for s in summaries(done.stdout + done.stderr) if s["job"] == "extract_backup"]


def test_without_the_token_the_extract_exits_2_naming_the_setting(airflow: OwnAirflow) -> None:
    done = airflow.test("dags", "api-load", REFUSED.isoformat(), env=connection(None))
    output = done.stdout + done.stderr
    tries = extract_summaries(done)
    assert [s["exit_code"] for s in tries] == [2], output[-3000:]  # refused once, no retry
    assert "setting EXTRACT_AD_API_TOKEN is missing" in tries[0]["error"]


def test_a_wrong_token_exits_4_naming_the_api_on_every_try(airflow: OwnAirflow) -> None:
    end = REFUSED - timedelta(hours=1)
    before = helpers.backup_manifests(end - timedelta(hours=1), end)
    done = airflow.test("dags", "api-load", end.isoformat(), env=connection("not-" + TOKEN))
    output = done.stdout + done.stderr
    tries = extract_summaries(done)
    # a service's refusal keeps the task's retries (3), and no more
    assert [s["exit_code"] for s in tries] == [4, 4, 4, 4], output[-3000:]
    assert f"ad API http://127.0.0.1:{PORT} refused the credential (HTTP 403)" in tries[0]["error"]
    # nothing of the window recorded
    assert helpers.backup_manifests(end - timedelta(hours=1), end) == before


def test_the_token_loads_the_window_and_is_recorded_nowhere(airflow: OwnAirflow) -> None:
    done = airflow.test("dags", "api-load", END.isoformat(), env=connection(TOKEN))
    output = done.stdout + done.stderr
    extract, load = (
        [s for s in summaries(output) if s["job"] == job][-1] for job in ("extract_backup", "load")
    )
    assert extract["exit_code"] == 0 and load["exit_code"] == 0, output[-3000:]
    assert extract["records"] > 0 and extract["window"][0].startswith(START.strftime("%Y-%m-%dT%H"))
    assert extract["settings"]["EXTRACT_AD_API_TOKEN"] == "(set)"  # noqa: S105 - a marker
    assert extract["settings"]["AD_API_AUTH"] == "bearer"
    (count,) = helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", (START, END)
    )[0]
    assert count == load["rows_written"] > 0

    searched = {"the run's output": output.encode()}
    searched.update(helpers.backup_objects(START, END))  # every page and manifest version
    assert any(key.endswith(".json") for key in searched), "the manifest was searched"
    searched["every XCom"] = airflow.xcoms()
    assert b"records" in searched["every XCom"]  # the jobs' SUMMARYs are there
    run_ids = set(re.findall(r"run_id=(manual__[^\s,\"]+)", output))
    assert len(run_ids) == 1, run_ids
    for task in ("extract_backup", "load_impressions"):
        for kind in ("START", "COMPLETE"):
            event = helpers.lineage_events(next(iter(run_ids)), task, kind)
            searched[f"{task}'s {kind} lineage event"] = json.dumps(event).encode()
    scheduler = compose("ps", "-q", "airflow-scheduler").stdout.strip()
    searched["every task log"] = subprocess.run(
        ["docker", "exec", scheduler, "tar", "-C", "/opt/airflow/logs", "-cf", "-", "."],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    leaked = [where for where, blob in searched.items() if TOKEN.encode() in blob]
    assert leaked == []
