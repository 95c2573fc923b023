"""The health service's metrics, as Prometheus scrapes them: after a load, the run's rows are
its SUMMARY's; the bucket's and the table's bytes are there; without the token, nothing."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from datetime import timedelta

import days
import helpers
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.usefixtures("stack")

START = days.moment("test_health_metrics", hour=5)
END = START + timedelta(hours=1)


def scrape(token: str | None) -> str:
    url = f"http://127.0.0.1:{os.environ['HEALTH_PORT']}/metrics"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return answer.read().decode()


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def test_after_a_load_the_runs_rows_in_the_metrics_are_its_summarys() -> None:
    window = ("--start", START.isoformat(), "--end", END.isoformat())
    assert helpers.docker_run("adpipe/extract_backup:dev", *window).returncode == 0
    summary = helpers.summary(helpers.docker_run("adpipe/load:dev", *window))
    assert summary["exit_code"] == 0, summary["stderr"]
    found = {
        s.labels["outcome"]: s.value
        for s in samples(scrape(os.environ["HEALTH_TOKEN"]))
        if s.name == "adpipe_load_run_rows"
        and s.labels["load_run_id"] == str(summary["load_run_id"])
    }
    assert found == {
        "received": summary["received"],
        "written": summary["rows_written"],
        "rejected": summary["rejected"],
        "duplicates": summary["duplicates"],
    }, (found, summary)
    assert summary["received"] > 0


def test_the_lag_and_the_bytes_of_each_store_are_there() -> None:
    found = {
        (s.name, s.labels.get("store")): s.value
        for s in samples(scrape(os.environ["HEALTH_TOKEN"]))
    }
    assert found[("adpipe_stored_bytes", "table")] > 0
    assert found[("adpipe_stored_bytes", "backup")] > 0
    assert ("adpipe_stored_bytes", "archive") in found
    assert found[("adpipe_last_loaded_hour_lag_seconds", None)] >= 0
    assert found[("adpipe_last_load_finished_timestamp_seconds", None)] > 0


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_without_the_token_the_metrics_are_refused(token: str | None) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(token)
    assert refused.value.code == 401
