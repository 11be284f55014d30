"""What the MCP tools run on: the ``MemoryBackend`` contract and the error a backend refuses with.

Apart from ``server.py`` so that the clients of a backend (the CLI's REST client, the daemon's
in-process backend) can name it without importing the MCP SDK: a CLI command that only makes a
REST call spent about 0.3 s importing the SDK for this one exception class.
"""

from __future__ import annotations

from typing import Protocol

from clarity import requests as api
from clarity.models import MemoryCreate, MemoryPatch


class BackendError(Exception):
    """A request the backend refused; the message is meant for the model to read."""


class MemoryBackend(Protocol):
    # The project a call that names none is for: the stdio shim's working directory, so its tools
    # never need to ask the client; None (the daemon) leaves it to the header or the client's roots.
    default_project: str | None
    # The cosine under which retrieve_memory says "nothing relevant" (``hooks.min_similarity``:
    # the hooks inject nothing below it either), from the settings the backend runs with.
    min_similarity: float

    async def store(self, request: MemoryCreate, project: str | None) -> api.StoreResult: ...

    async def retrieve(self, request: api.RetrieveRequest, project: str | None) -> api.RetrieveResult: ...

    async def list(self, request: api.ListRequest, project: str | None) -> api.ListResult: ...

    async def update(self, memory_id: str, patch: MemoryPatch) -> api.UpdatedMemory: ...

    async def delete(self, memory_id: str) -> api.DeleteResult: ...

    async def stats(self, project: str | None) -> api.Stats: ...
