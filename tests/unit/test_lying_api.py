"""The extract's client against an API whose headers lie about its bodies (the mock's fault
queue, served in this process): each lie ends in the failure the extract documents, naming
the API and the window, after the retries a transport fault gets; never another exception."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from adpipe.errors import DataError, UpstreamError
from adpipe_extract_backup.extract_backup import ApiClient, ApiLimits, read_page

START = datetime(2026, 7, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
WINDOW = "window [2026-07-01T10:00:00Z, 2026-07-01T11:00:00Z)"


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with helpers.served_api(0, 3000, "lying-api", faults=True) as url:
        yield url


def first_page(api: str) -> tuple[int, str | None]:
    client = ApiClient(api, 1000, ApiLimits(max_attempts=2))
    return read_page(client.page(START, END, None, 1), 1, client.where(START, END))


@pytest.mark.parametrize(
    ("lie", "said"),
    [
        ("encoding:gzip", "content-encoding: gzip, but failed to decode it"),
        ("encoding:deflate", "content-encoding: deflate, but failed to decode it"),
        ("encoding:br", "Content-Encoding not decoded here: 'br'"),
        ("encoding:gzip, x-zip", "Content-Encoding not decoded here: 'x-zip'"),
        ("type:text/html", "sent as 'text/html', not JSON"),
        ("type:text/plain; charset=utf-8", "sent as 'text/plain', not JSON"),
        ("type:application/jsonp", "sent as 'application/jsonp', not JSON"),
        ("length:+1", "IncompleteRead"),
        ("length:+100000", "IncompleteRead"),
    ],
)
def test_a_lie_the_transport_tells_is_retried_then_fails_as_a_service_naming_it(
    api: str, lie: str, said: str
) -> None:
    helpers.faults(api, lie, lie)
    with pytest.raises(UpstreamError) as failed:
        first_page(api)
    message = str(failed.value)
    assert "failed page 1 after 2 attempts" in message and said in message
    assert f"ad API {api}, {WINDOW}" in message


def test_a_lie_told_once_costs_one_retry_and_the_page_is_read(api: str) -> None:
    helpers.faults(api, "encoding:gzip", "type:text/html", "length:+5")
    client = ApiClient(api, 1000, ApiLimits(max_attempts=4))
    assert read_page(client.page(START, END, None, 1), 1)[0] == 1000
    assert client.retries == 3


@pytest.mark.parametrize(
    "label", ["type:application/json; charset=utf-8", "type:application/vnd.ad+json"]
)
def test_json_by_another_name_is_read(api: str, label: str) -> None:
    helpers.faults(api, label)
    assert first_page(api)[0] == 1000


@pytest.mark.parametrize("short", ["length:-1", "length:-100", "length:-100000"])
def test_a_body_longer_than_its_length_is_read_as_far_as_promised_and_judged_as_a_page(
    api: str, short: str
) -> None:
    helpers.faults(api, short)
    with pytest.raises(DataError) as failed:
        first_page(api)
    message = str(failed.value)
    assert message.startswith("page 1 is ") and f"ad API {api}, {WINDOW}" in message
