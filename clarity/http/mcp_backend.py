"""The daemon's MCP backend: the MCP tools served at /mcp call the MemoryService in this process.

``clarity.mcp.server`` defines the tools once for two transports; over stdio (``clarity mcp``)
its backend is ``clarity.cli.client.RemoteBackend``, which calls this daemon's REST API. Here the
project a client names (the X-Clarity-Project header, or the stdio shim's working directory) is
resolved by the same rule as REST's (a directory from the client's MCP roots too), and every
call runs in a worker thread.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from clarity import requests as api
from clarity.http.parsing import resolve_project
from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryPatch


class LocalBackend:
    """MCP backend for the daemon: the MemoryService in this process."""

    default_project: str | None = None  # the header or the client's roots name it (clarity.mcp.roots)

    def __init__(self, service: MemoryService) -> None:
        self.service = service
        self.min_similarity = service.settings.hooks.min_similarity

    async def store(self, request: MemoryCreate, project: str | None) -> api.StoreResult:
        return await run_in_threadpool(self.service.store, request, resolve_project(project))

    async def retrieve(self, request: api.RetrieveRequest, project: str | None) -> api.RetrieveResult:
        return await run_in_threadpool(self.service.retrieve, request, resolve_project(project))

    async def list(self, request: api.ListRequest, project: str | None) -> api.ListResult:
        return await run_in_threadpool(self.service.list, request, resolve_project(project))

    async def update(self, memory_id: str, patch: MemoryPatch) -> api.UpdatedMemory:
        return await run_in_threadpool(self.service.update, memory_id, patch)

    async def delete(self, memory_id: str) -> api.DeleteResult:
        return await run_in_threadpool(self.service.delete, memory_id)

    async def stats(self, project: str | None) -> api.Stats:
        return await run_in_threadpool(self.service.stats, resolve_project(project))
