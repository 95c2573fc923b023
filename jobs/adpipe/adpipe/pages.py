"""The ad API's page contract, as the extract and the load both hold it: how deep a page may
nest. The extract refuses a deeper page (exit 3) before it backs anything up, so every page
in a backup parses in the load, whatever its stack depth, without RecursionError."""

from __future__ import annotations

from typing import Any

# Levels of arrays and objects a page may hold, the page itself included. A record is two
# levels down (page, impressions list); anything near this deep is broken data, and parsing
# it stays far inside Python's recursion limit (1,000) from any caller's stack.
MAX_NESTING = 100


def nesting(value: Any) -> int:
    """How many levels of lists and dicts ``value`` holds (0 for a scalar), counted without
    recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
