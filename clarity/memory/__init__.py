"""The memory service: the one door REST, MCP, hooks and the dashboard use (``MemoryService``).

- ``service``: the face and the reads (get, retrieve, list, export, forget, stats);
- ``writes``: every write, under one lock (store, import, update, delete, backfill);
- ``scoring``: relevance blended with recency and importance, identifiers, cosine;
- ``records``: how records are made, redacted, scoped and read back.
"""

from clarity.memory.records import MemoryNotFound, ScopeRequired
from clarity.memory.service import MemoryService

__all__ = ["MemoryNotFound", "MemoryService", "ScopeRequired"]
