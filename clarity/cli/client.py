"""Talking to the daemon's REST API: the CLI's client and the stdio shim's MCP backend.

Both sides share one error mapping: whatever the daemon says is wrong reaches the user as the
daemon's own sentence, not as an HTTP status.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from clarity import requests as api
from clarity.config import Settings
from clarity.daemon_lookup import client_url, headers_for
from clarity.exchange import ExportPage, ExportPageRequest, ImportBatch, ImportSummary
from clarity.mcp.backend import BackendError
from clarity.models import Memory, MemoryCreate, MemoryPatch

M = TypeVar("M", bound=BaseModel)


class DaemonUnavailable(BackendError):
    pass


def _decode(response: httpx.Response, model: type[M]) -> M:
    if response.status_code >= 400:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text or f"HTTP {response.status_code}"
        raise BackendError(message)
    return model.model_validate_json(response.content)


def _list_params(request: api.ListRequest) -> dict[str, Any]:
    """Every field that is set, so a filter given to the stdio shim is not dropped on the way."""
    params: dict[str, Any] = {}
    for key, value in request.model_dump(mode="json", exclude_none=True).items():
        params[key] = ",".join(value) if isinstance(value, list) else value
    return params


def _unavailable(url: str, exc: Exception) -> DaemonUnavailable:
    return DaemonUnavailable(f"Clarity daemon not reachable at {url} ({exc}); start it with `clarity serve`")


class DaemonClient:
    """Synchronous client for the CLI."""

    def __init__(self, settings: Settings, project: str | None, timeout: float = 60.0) -> None:
        self.settings = settings
        self.url = client_url(settings)
        self._http = httpx.Client(
            base_url=f"{self.url}/api", headers=headers_for(settings, project), timeout=timeout
        )

    def _send(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        return _decode(response, model)

    def store(self, request: MemoryCreate) -> api.StoreResult:
        return self._send("POST", "/memories", api.StoreResult, json=request.model_dump(mode="json"))

    def retrieve(self, request: api.RetrieveRequest) -> api.RetrieveResult:
        return self._send(
            "POST", "/search", api.RetrieveResult, json=request.model_dump(mode="json", exclude_none=True)
        )

    def list(self, request: api.ListRequest) -> api.ListResult:
        return self._send("GET", "/memories", api.ListResult, params=_list_params(request))

    def get(self, memory_id: str) -> Memory:
        return self._send("GET", f"/memories/{memory_id}", Memory)

    def delete(self, memory_id: str) -> api.DeleteResult:
        return self._send("DELETE", f"/memories/{memory_id}", api.DeleteResult)

    def stats(self, scope: str = "all") -> api.Stats:
        return self._send("GET", "/stats", api.Stats, params={"scope": scope})

    def store_many(self, requests: Sequence[MemoryCreate]) -> Sequence[api.StoreResult]:
        body = {"memories": [r.model_dump(mode="json") for r in requests]}
        return self._send("POST", "/memories/batch", StoreResults, json=body).results

    def forget(self, request: api.ForgetRequest, dry_run: bool) -> api.ForgetResult:
        body = request.model_dump(mode="json", exclude_unset=True)
        return self._send(
            "POST", "/forget", api.ForgetResult, json=body, params={"dry_run": str(dry_run).lower()}
        )

    def export_page(self, request: ExportPageRequest) -> ExportPage:
        return self._send("POST", "/export", ExportPage, json=request.model_dump(mode="json"))

    def import_batch(self, batch: ImportBatch) -> ImportSummary:
        return self._send("POST", "/import", ImportSummary, json=batch.model_dump(mode="json"))

    def backup(self, destination: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Stream the daemon's archive into ``destination`` (via a .partial file); returns its summary."""
        partial = destination.with_name(destination.name + ".partial")
        try:
            with self._http.stream("POST", "/backup", timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    _decode(response, ImportSummary)  # raises with the daemon's message
                with open(partial, "wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        if progress:
                            progress(len(chunk))
                summary = json.loads(response.headers.get("x-clarity-backup", "{}"))
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise _unavailable(self.url, exc) from exc
        os.chmod(partial, 0o600)
        os.replace(partial, destination)
        return dict(summary)

    def close(self) -> None:
        self._http.close()


class StoreResults(BaseModel):
    results: list[api.StoreResult]


class RemoteBackend:
    """MCP backend for ``clarity mcp``: every tool call is forwarded to the daemon."""

    def __init__(self, settings: Settings, project: str | None) -> None:
        self.settings = settings
        self.default_project = project  # its working directory: the tools never ask the client's roots
        self.url = client_url(settings)
        self._http = httpx.AsyncClient(base_url=f"{self.url}/api", timeout=60.0)

    async def _send(self, method: str, path: str, model: type[M], project: str | None, **kwargs: Any) -> M:
        headers = headers_for(self.settings, project or self.default_project)
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        return _decode(response, model)

    async def store(self, request: MemoryCreate, project: str | None) -> api.StoreResult:
        return await self._send(
            "POST", "/memories", api.StoreResult, project, json=request.model_dump(mode="json")
        )

    async def retrieve(self, request: api.RetrieveRequest, project: str | None) -> api.RetrieveResult:
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._send("POST", "/search", api.RetrieveResult, project, json=body)

    async def list(self, request: api.ListRequest, project: str | None) -> api.ListResult:
        return await self._send("GET", "/memories", api.ListResult, project, params=_list_params(request))

    async def update(self, memory_id: str, patch: MemoryPatch) -> Memory:
        body = patch.model_dump(mode="json", exclude_unset=True)
        return await self._send("PATCH", f"/memories/{memory_id}", Memory, None, json=body)

    async def delete(self, memory_id: str) -> api.DeleteResult:
        return await self._send("DELETE", f"/memories/{memory_id}", api.DeleteResult, None)

    async def stats(self, project: str | None) -> api.Stats:
        return await self._send("GET", "/stats", api.Stats, project, params={"scope": "all"})
