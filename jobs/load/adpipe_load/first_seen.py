"""Which of a window's rows certainly carry an impression_id the window has not shown before.

The load writes those rows straight into ad_impressions. Every other row may repeat an
earlier one, and goes to the stage, where PostgreSQL keeps the first of each id exactly
(`load_impressions.FIRST_OF_REPEATS`). So a row is written once, and only the few that may
repeat are written twice.

A blocked Bloom filter over the ids answers, a page at a time, in numpy: each id sets
``PROBES`` bits of one 64-bit word. It never forgets an id it was given, so a row it calls
first is first; it may call a new id seen (0.3% of 100,000 random ids, sized for them),
which only sends that row the exact way. The filter is sized from the window's record count
and never exceeds ``MAX_BYTES``, so memory stays bounded: past that, more rows take the
exact way.

No package on PyPI checks and fills a Bloom filter with whole arrays; the ones that exist
take one key per Python call, a million calls for a million rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

BITS_PER_ID = 10
PROBES = 6  # bits set per id, in one word: 6 bits of the second hash pick each
MAX_BYTES = 32 << 20  # 2**28 bits: BITS_PER_ID for up to 27 million ids a window
U = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every bit of the input moves every bit of the result, so ids
    that are not random (time-ordered UUIDs) spread as well as random ones."""
    x = x ^ (x >> U(30))
    x = x * U(0xBF58476D1CE4E5B9)
    x = x ^ (x >> U(27))
    x = x * U(0x94D049BB133111EB)
    return x ^ (x >> U(31))


class SeenIds:
    """The ids given so far, for the rows of one window in their order."""

    def __init__(self, expected: int) -> None:
        words = min(max(expected * BITS_PER_ID // 64, 1), MAX_BYTES // 8)
        self._words = np.zeros(words, dtype=np.uint64)

    def first(self, ids: pa.Array) -> pa.BooleanArray:
        """For each id (16 bytes, in the window's order, following every id given before):
        true when no earlier id, here or before, can be the same. Then remembers them all."""
        halves = np.frombuffer(
            ids.buffers()[1], dtype="<u8", count=2 * len(ids), offset=16 * ids.offset
        ).reshape(-1, 2)
        hashed = _mix(halves[:, 0] ^ _mix(halves[:, 1]))
        word = (hashed % U(len(self._words))).astype(np.intp)
        second = _mix(hashed)
        mask = np.zeros(len(ids), dtype=np.uint64)
        for probe in range(PROBES):
            mask |= U(1) << ((second >> U(6 * probe)) & U(63))
        unseen = (self._words[word] & mask) != mask
        # of ids that hash alike in this page only the first can be new
        _, firsts = np.unique(hashed, return_index=True)
        first = np.zeros(len(ids), dtype=bool)
        first[firsts] = True
        np.bitwise_or.at(self._words, word, mask)
        return pa.array(first & unseen)
