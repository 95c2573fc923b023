"""first_seen: which rows certainly come first of their impression_id, page after page."""

from __future__ import annotations

import uuid

import pyarrow as pa
from adpipe_load import first_seen
from adpipe_load.first_seen import SeenIds
from hypothesis import given, settings
from hypothesis import strategies as st

IDS = pa.binary(16)


def pages_of(ids: list[bytes], size: int) -> list[pa.Array]:
    """The ids as one array cut into pages, each a slice (an offset into the same buffer)."""
    whole = pa.array(ids, IDS)
    return [whole.slice(start, size) for start in range(0, len(ids), size)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 40), max_size=300),
    st.integers(1, 50),
    st.integers(0, 400),
)
def test_a_row_called_first_is_the_first_of_its_id(picks: list[int], size: int, expected: int):
    """Whatever the filter's size (too small included), the pages and the repeats: never a
    row whose id came before, and every id's first row called first or left to the exact
    way, never lost."""
    pool = [uuid.UUID(int=n * 0x9E3779B97F4A7C15 % 2**128).bytes for n in range(41)]
    ids = [pool[p] for p in picks]
    seen = SeenIds(expected)
    called = [flag for page in pages_of(ids, size) for flag in seen.first(page).to_pylist()]
    assert len(called) == len(ids)
    earlier: set[bytes] = set()
    for uid, first in zip(ids, called, strict=True):
        if first:
            assert uid not in earlier
        earlier.add(uid)


def test_new_ids_are_almost_all_called_first() -> None:
    """Sized for the window, the filter calls about 1% of new ids seen (the exact, slower way)."""
    ids = [uuid.uuid4().bytes for _ in range(200_000)]
    seen = SeenIds(len(ids))
    called = [flag for page in pages_of(ids, 10_000) for flag in seen.first(page).to_pylist()]
    assert sum(called) > 0.98 * len(ids)


def test_time_ordered_ids_spread_as_well_as_random_ones() -> None:
    """UUIDs that differ in a few bits only (a counter in the low bits, a time in the high
    ones) are mixed before they pick their bits."""
    ids = [uuid.UUID(int=(1_700_000_000 << 80) | n).bytes for n in range(100_000)]
    seen = SeenIds(len(ids))
    called = [flag for page in pages_of(ids, 10_000) for flag in seen.first(page).to_pylist()]
    assert sum(called) > 0.98 * len(ids)


def test_a_repeat_on_the_same_page_is_never_first() -> None:
    uid, other = uuid.uuid4().bytes, uuid.uuid4().bytes
    seen = SeenIds(10)
    assert seen.first(pa.array([uid, other, uid, uid], IDS)).to_pylist() == [
        True,
        True,
        False,
        False,
    ]
    assert seen.first(pa.array([other], IDS)).to_pylist() == [False]


def test_the_filter_never_outgrows_its_bound() -> None:
    assert SeenIds(10**12)._words.nbytes == first_seen.MAX_BYTES
    assert SeenIds(0)._words.nbytes == 8
