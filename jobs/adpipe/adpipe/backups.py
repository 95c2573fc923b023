"""A window's backup versions in the bucket (layout in `adpipe.windows`): which exist, and
which is current. The extract writes them, the load and reconcile read them."""

from __future__ import annotations

from dataclasses import dataclass

from adpipe.storage import Bucket
from adpipe.windows import manifest_version


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
