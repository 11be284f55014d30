"""Paging through a store oldest first, by creation time: the export, backups and engine-to-engine
copies all walk every memory this way.

Paging on a payload value rather than on engine offsets keeps every page correct while memories
are added or deleted and while the embedded engine reorganises its shards; memories created in
the same instant are told apart by the ids carried in the cursor.
"""

from __future__ import annotations

from clarity.exchange import ExportCursor
from clarity.store.base import Hit, MemoryFilter, VectorStore


def page_oldest(
    store: VectorStore, flt: MemoryFilter, cursor: ExportCursor | None, limit: int
) -> tuple[list[Hit], ExportCursor | None]:
    """The next ``limit`` memories by creation time, and the cursor after them (None at the end).

    Paging on a payload value rather than on engine offsets keeps every page correct while
    memories are added or deleted and while the embedded engine reorganises its shards."""
    cursor = cursor or ExportCursor()
    page_filter = MemoryFilter(
        scopes=flt.scopes, created_from=cursor.after, exclude_ids=[*flt.exclude_ids, *cursor.after_ids]
    )
    hits = store.newest(page_filter, limit=limit, sort="oldest")
    if len(hits) < limit:
        return hits, None
    last = hits[-1].payload.get("created_at")
    tied = [h.id for h in hits if h.payload.get("created_at") == last]
    carried = cursor.after_ids if cursor.after == last else []
    return hits, ExportCursor(after=last, after_ids=[*carried, *tied])
