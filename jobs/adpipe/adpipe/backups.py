"""A window's backup versions in the bucket (layout in `adpipe.windows`): which exist, and
which is current; and a backup page's bytes as stored, gzip (`pack`, `unpack`). The extract
writes them, the load and reconcile read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from adpipe.storage import Bucket
from adpipe.windows import manifest_version

# a backup page is written once and read once: ISA-L's level 1 (of 0 to 3), on the bench's
# pages 2.6x faster than zlib's level 1 and 8% smaller
GZIP_LEVEL = 1


@dataclass(frozen=True)
class Version:
    """One complete backup of a window: its manifest's key, number and bytes."""

    key: str
    number: int
    body: bytes


def version_keys(keys: list[str] | set[str]) -> list[tuple[int, str]]:
    """(number, key) of every manifest among ``keys``, oldest first."""
    found = []
    for key in keys:
        number = manifest_version(key)
        if number is not None:
            found.append((number, key))
    return sorted(found)


def latest(bucket: Bucket, prefix: str, keys: list[str] | set[str] | None = None) -> Version | None:
    """The window's current backup (its highest manifest version), or None when it has none.
    ``keys`` are the window's keys when the caller listed them already."""
    found = version_keys(list(bucket.keys(prefix)) if keys is None else keys)
    if not found:
        return None
    number, key = found[-1]
    body = bucket.get(key)
    if body is None:  # listed a moment ago; backups are never deleted
        return None
    return Version(key, number, body)


def pack(body: bytes) -> bytes:
    """A page's bytes as the backup stores them: gzip, by ISA-L, with no timestamp, so the
    same page packs to the same bytes."""
    from isal import igzip  # in the extract's and the load's images only

    return igzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def unpack(packed: bytes) -> bytes | None:
    """A stored page's bytes, or None when they do not decompress (any gzip reads: a page
    stored before ISA-L did the packing too)."""
    from isal import igzip, isal_zlib

    broken = cast(type[Exception], isal_zlib.error)  # its stub declares an instance
    try:
        return igzip.decompress(packed)
    except (OSError, EOFError, broken):
        return None
