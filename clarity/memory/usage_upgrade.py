"""Use counts an older Clarity left waiting inside the embedded engine, brought into the sidecar.

Before the sidecar (``usage.py``), counts of memories in indexed segments waited in
``<engine>/touches.jsonl`` for their segment's next build: an append-only log of JSON lines,
``{"id": ..., "set": {"access_count": n, "last_accessed_at": t}}`` or ``"set": null`` for a dropped
entry, later lines winning. A store upgraded between two builds still holds some there. They are
read once at start-up, set in the sidecar (they are whole counts, not increments), and the log is
renamed ``touches.jsonl.adopted`` once they are written: kept, never deleted, and never read
twice. An unreadable line costs only its own counts, as it did before.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from clarity.memory.usage import UsageCounts, Use, valid_use

log = logging.getLogger(__name__)

LEGACY_FILE = "touches.jsonl"
ADOPTED_SUFFIX = ".adopted"


def _read_log(path: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                memory_id, change = str(record["id"]), record["set"]
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append
            if change is None:
                entries.pop(memory_id, None)
            elif isinstance(change, dict):
                entries[memory_id] = {**entries.get(memory_id, {}), **change}
    return entries


def adopt_legacy_touches(usage: UsageCounts, engine_dir: Path) -> int:
    """Set the counts waiting in ``engine_dir``'s old log in the sidecar; how many were adopted."""
    path = engine_dir / LEGACY_FILE
    if not path.is_file():
        return 0
    try:
        entries = _read_log(path)
    except OSError as exc:
        log.warning("use counts waiting in %s not read: %s", path, exc)
        return 0
    uses: dict[str, Use] = {}
    for memory_id, change in entries.items():
        use = valid_use(change.get("access_count"), change.get("last_accessed_at"))
        if use is not None:
            uses[memory_id] = use
    usage.set(uses)
    if not usage.flush():
        return 0  # they wait in memory and are written later; the log stays for the next start
    try:
        path.rename(path.with_name(LEGACY_FILE + ADOPTED_SUFFIX))
    except OSError as exc:
        log.warning("use counts from %s adopted, but the file was not renamed: %s", path, exc)
    log.info("adopted %d use counts an older version left in %s", len(uses), path)
    return len(uses)
