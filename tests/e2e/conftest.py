"""What the browser tests share: a page of Debian's chromium (platform/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import browser
import pytest


@pytest.fixture
def page() -> Iterator[Any]:
    with browser.opened() as opened:
        yield opened
