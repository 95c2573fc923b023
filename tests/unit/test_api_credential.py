"""The ad API's credential in the extract's client, against servers in this process: it goes
only where AD_API_URL points (a redirect is refused, never followed with the key), a refusal
does not repeat it, and a token or URL that would leak or break a header is a settings error
that names the setting, not the value."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from adpipe.errors import ConfigError, UpstreamError
from adpipe.settings import Settings
from adpipe_extract_backup.extract_backup import ApiClient

START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=1)
TOKEN = "tok-3f9a-secret"  # noqa: S105 - made up for the test


@pytest.fixture
def servers() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An API that redirects every request to a second server, and what that second server
    received (each request's headers)."""
    seen: list[dict[str, str]] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{other.server_address[1]}"

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"echo {self.headers.get('X-Api-Key')}".encode()
            if self.path.startswith("/v1/impressions") and "limit=7" in self.path:
                self.send_response(401)  # an API that echoes what it was sent
            else:
                self.send_response(302)
                self.send_header("Location", f"{target}{self.path}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (other, api):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", seen
    finally:
        for server in (other, api):
            server.shutdown()
            server.server_close()


def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(
    servers: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = servers
    client = ApiClient(url, 1000, credential=("header:X-Api-Key", TOKEN))
    with pytest.raises(UpstreamError, match=r"with a redirect \(HTTP 302\)") as refused:
        client.page(START, END, None, 1)
    assert seen == []
    assert TOKEN not in str(refused.value)


def test_a_refusal_does_not_repeat_what_the_api_echoed(
    servers: tuple[str, list[dict[str, str]]],
) -> None:
    url, _ = servers
    client = ApiClient(url, 7, credential=("header:X-Api-Key", TOKEN))
    with pytest.raises(UpstreamError, match=r"refused the credential \(HTTP 401\)") as refused:
        client.page(START, END, None, 1)
    assert TOKEN not in str(refused.value) + refused.value.hint


@pytest.mark.parametrize("token", [f"{TOKEN}\r\nX-Other: 1", f"{TOKEN} x", "tök"])
def test_a_token_no_header_can_carry_is_a_settings_error_naming_the_setting(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AD_API_AUTH", "bearer")
    monkeypatch.setenv("EXTRACT_AD_API_TOKEN", token)
    with pytest.raises(ConfigError, match="EXTRACT_AD_API_TOKEN holds a character") as refused:
        _ = Settings("extract").ad_api_credential
    assert TOKEN not in str(refused.value)


def test_a_pasted_tokens_line_end_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AD_API_AUTH", "bearer")
    monkeypatch.setenv("EXTRACT_AD_API_TOKEN", f"{TOKEN}\n")
    assert Settings("extract").ad_api_credential == ("bearer", TOKEN)


@pytest.mark.parametrize(
    "address", ["https://user:pw@ads.example.com", "https://ads.example.com/#x", "ftp://x"]
)
def test_an_api_url_with_a_credential_or_of_another_kind_is_refused(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AD_API_URL", address)
    with pytest.raises(ConfigError, match="AD_API_URL") as refused:
        _ = Settings("extract").ad_api_url
    assert "pw" not in str(refused.value)
