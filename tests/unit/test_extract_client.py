"""The extract's HTTP client against the mock ad API served in this process: every wait it
makes has a bound, and pages outside the contract are refused by a clear rule."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from adpipe.errors import DataError, UpstreamError
from adpipe.settings import Settings
from adpipe_extract_backup.extract_backup import ApiClient, ApiLimits, ApiRetry, read_page

PORT = 18125
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=1)


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with helpers.served_api(PORT, 3000, "client-tests", faults=True) as url:
        yield url


def faults(api: str, *plan: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - the mock in this process
        f"{api}/_faults", method="POST", data=json.dumps({"plan": list(plan)}).encode()
    )
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310


def test_retry_after_is_capped_and_an_unreadable_one_means_backoff() -> None:
    policy = ApiRetry(retry_after_max=Settings().retry_after_max)
    assert policy.parse_retry_after("86400") == 60
    assert policy.parse_retry_after("inf") == 0  # no hint: the backoff applies
    assert policy.parse_retry_after("3") == 3


def test_retry_after_86400_and_inf_cost_the_cap_not_a_day(api: str) -> None:
    faults(api, "429:86400", "429:inf", "cut", "500")
    client = ApiClient(api, 1000, ApiLimits(retry_after_max=1))
    began = time.monotonic()
    body = client.page(START, END, None, 1)
    took = time.monotonic() - began
    assert read_page(body, 1)[0] == 1000
    assert client.retries == 4
    assert took < 15  # 1 s cap + backoffs of 1, 2 and 4 s with jitter


def test_attempts_are_bounded(api: str) -> None:
    faults(api, *["500"] * 5)
    client = ApiClient(api, 1000, ApiLimits(max_attempts=3))
    with pytest.raises(UpstreamError, match="page 1 after 3 attempts"):
        client.page(START, END, None, 1)
    faults(api)


def test_a_page_larger_than_the_limit_is_refused(api: str) -> None:
    client = ApiClient(api, 1000, ApiLimits(max_page_bytes=10_000))
    with pytest.raises(DataError, match="larger than EXTRACT_MAX_PAGE_BYTES"):
        client.page(START, END, None, 1)
