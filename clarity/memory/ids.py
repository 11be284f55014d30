"""A memory's id from what a person typed: a full UUID, or a unique prefix of one.

`clarity list` and the dashboard show the first 8 characters of an id; every door that takes an
id (REST ``/api/memories/{id}``, the CLI, the MCP ``update_memory`` / ``delete_memory`` tools,
the dashboard's URLs) goes through ``MemoryService.resolve_id``, which calls this. A full UUID
costs nothing (no lookup, as before); a prefix is looked up in one scan of the ids alone
(``VectorStore.ids``, no payloads: 26 ms at 10,000 memories on the embedded engine, 2 cores,
where paging through the memories took 240 ms), which is for people typing commands and
never on a hook's path.
"""

from __future__ import annotations

import re

from clarity.memory.records import MemoryNotFound
from clarity.models import parse_memory_id
from clarity.store.base import VectorStore

MIN_PREFIX = 8  # what `clarity list` shows
SHOWN_CANDIDATES = 3
_PREFIX = re.compile(r"[0-9a-f]{%d}[0-9a-f-]*" % MIN_PREFIX)  # noqa: UP031 - a regex quantifier


def resolve_id(store: VectorStore, text: str) -> str:
    """The full id that ``text`` names: a UUID as it is; a prefix of at least ``MIN_PREFIX`` hex
    characters (dashes optional) when exactly one memory's id starts with it. Ambiguous or
    malformed: ValueError naming the problem; no match: ``MemoryNotFound``."""
    typed = str(text).strip().lower()
    hex_digits = typed.replace("-", "")
    if _PREFIX.fullmatch(typed) and len(hex_digits) < 32:
        return _by_prefix(store, typed, hex_digits)
    try:
        return parse_memory_id(text)
    except ValueError:
        raise ValueError(
            f"id: {text!r} is not a memory id (expected a UUID) nor its first {MIN_PREFIX}+ hex "
            "characters, as `clarity list` shows them"
        ) from None


def _by_prefix(store: VectorStore, typed: str, hex_digits: str) -> str:
    found: list[str] = []
    for point_id in store.ids():
        if point_id.replace("-", "").startswith(hex_digits):
            found.append(point_id)
            if len(found) > SHOWN_CANDIDATES:
                break
    if not found:
        raise MemoryNotFound(typed)
    if len(found) > 1:
        found.sort()  # the engine's order is no order: the same candidates read the same way each time
        shown = ", ".join(found[:SHOWN_CANDIDATES]) + (", ..." if len(found) > SHOWN_CANDIDATES else "")
        many = f"more than {SHOWN_CANDIDATES}" if len(found) > SHOWN_CANDIDATES else str(len(found))
        raise ValueError(f"id: {typed!r} is the start of {many} memory ids ({shown}); give more characters")
    return found[0]
