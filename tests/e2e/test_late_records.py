"""Records the ad API publishes after their window ended (5% of each window here), through
Airflow (one of the test's own, `own_airflow`, with the ``ad_api`` connection pointed at such
an API). With the lookback on, the next run extracts the window again, its new backup version
holds them, its reload adds them (growth is never a shrink) and reconcile balances. With it
off, the README's outcome: the window keeps what the API sent in time and reconcile balances
against that backup; a re-extract names the difference (reconcile fails on the window until
it is loaded), and loading it adds the records."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta

import days
import helpers
import pytest
from helpers import OwnAirflow, docker_run, own_airflow, post_json, summaries

pytestmark = pytest.mark.usefixtures("stack")

PORT = 18122
LATE = 0.05


@pytest.fixture(scope="module")
def late_api() -> Iterator[str]:
    with helpers.served_api(PORT, 600, "late-records", late_share=LATE) as url:
        yield url


@pytest.fixture(scope="module")
def airflow(late_api: str) -> Iterator[OwnAirflow]:
    with own_airflow() as found:
        yield found


def publish(api: str, published: bool) -> None:
    post_json(f"{api}/_late", {"published": published})


def run_env(lookback: int) -> dict[str, str]:
    connection = {"conn_type": "http", "host": "127.0.0.1", "port": PORT}
    return {
        "AIRFLOW_CONN_AD_API": json.dumps(connection),
        "ADPIPE_API_LOOKBACK_WINDOWS": str(lookback),
        "ADPIPE_API_LATENESS_MINUTES": "5",
    }


def run(airflow: OwnAirflow, end: datetime, lookback: int) -> dict[str, dict]:
    """api-load's run for the window ending at ``end``: each task's job SUMMARY, by job and
    the window it read."""
    done = airflow.test("dags", "api-load", end.isoformat(), env=run_env(lookback))
    output = done.stdout + done.stderr
    found = {f"{s['job']} {s['window'][0]}": s for s in summaries(output)}
    assert found and all(s["exit_code"] == 0 for s in found.values()), output[-4000:]
    assert "wait_for_late_records" in output  # the lateness sensor ran first
    return found


def manifest(start: datetime, end: datetime) -> dict:
    """The window's newest backup version."""
    return json.loads(helpers.get(helpers.backup_manifests(start, end)[-1]))


def rows(start: datetime, end: datetime) -> int:
    return helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", (start, end)
    )[0][0]


def reconcile(day: datetime, settle: str = "0") -> dict:
    """The archive image's reconcile of ``day``, its unloaded hours accepted first."""
    helpers.balance_day(day.date(), "test_late_records: a test loads only some hours")
    # a version written a moment ago is named at once (RECONCILE_SETTLE_MINUTES 0, unless
    # ``settle`` says otherwise): the test's loads are done when it reconciles
    found = docker_run(
        "adpipe/archive:dev",
        "reconcile",
        "--from",
        f"{day:%F}",
        "--to",
        f"{day:%F}",
        env={"RECONCILE_SETTLE_MINUTES": settle},
    )
    return helpers.summary(found)


def test_the_lookback_loads_what_the_api_published_late(late_api: str, airflow: OwnAirflow) -> None:
    publish(late_api, False)
    end = days.moment("test_late_records", hour=4)
    start = end - timedelta(hours=1)
    first = run(airflow, end, lookback=1)
    on_time = first[f"load {helpers.rfc3339(start)}"]
    assert on_time["rows_written"] == rows(start, end) > 0
    sent_first = manifest(start, end)

    publish(late_api, True)
    later = run(airflow, end + timedelta(hours=1), lookback=1)
    again = later[f"extract_backup {helpers.rfc3339(start)}"]
    reload = later[f"load {helpers.rfc3339(start)}"]
    assert again["backup_version_written"] is True  # a new version beside the first
    sent_later = manifest(start, end)
    assert sent_later["records"] > sent_first["records"]
    late_records = sent_later["records"] - sent_first["records"]
    assert 0.02 * sent_later["records"] <= late_records <= 0.09 * sent_later["records"]
    # the reload added them: growth, never refused as a shrink
    assert not reload.get("unchanged")
    assert reload["rows_written"] == rows(start, end) > on_time["rows_written"]
    # the window it ran for itself was extracted after its records were all published
    assert later[f"load {helpers.rfc3339(end)}"]["rows_written"] > 0
    verdict = reconcile(start)
    assert verdict["exit_code"] == 0, verdict


def test_without_lookback_a_late_record_waits_for_a_re_extract(
    late_api: str, airflow: OwnAirflow
) -> None:
    publish(late_api, False)
    end = days.moment("test_late_records", n=1, hour=4)
    start = end - timedelta(hours=1)
    run(airflow, end, lookback=0)
    in_time = rows(start, end)
    sent_first = manifest(start, end)

    publish(late_api, True)
    run(airflow, end + timedelta(hours=1), lookback=0)
    # the window keeps what the API sent in time, and reconcile balances against that backup
    assert rows(start, end) == in_time
    assert manifest(start, end) == sent_first
    assert reconcile(start)["exit_code"] == 0

    # a re-extract (by hand here; make backfill ... REPROCESS=completed does both steps) has
    # the late records: reconcile names the window until it is loaded
    again = helpers.summary(
        docker_run(
            "adpipe/extract_backup:dev",
            "--start",
            helpers.rfc3339(start),
            "--end",
            helpers.rfc3339(end),
            # the DAG's pages: only the late records make this version differ
            env={"AD_API_URL": late_api, "EXTRACT_PAGE_SIZE": os.environ["EXTRACT_PAGE_SIZE"]},
        )
    )
    assert again["backup_version_written"] is True, again
    # a version as young as a lookback's re-extract may be loading is not named yet ...
    assert reconcile(start, settle="30")["exit_code"] == 0
    # ... and named once RECONCILE_SETTLE_MINUTES have passed
    named = reconcile(start)
    assert (
        named["exit_code"] == 3
        and "is newer than the version its latest load read" in (named["error"])
    ), named
    loaded = helpers.summary(
        docker_run(
            "adpipe/load:dev", "--start", helpers.rfc3339(start), "--end", helpers.rfc3339(end)
        )
    )
    assert loaded["rows_written"] == rows(start, end) > in_time
    assert reconcile(start)["exit_code"] == 0
