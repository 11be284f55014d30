"""Talking to the daemon's REST API: the CLI's client and the stdio shim's MCP backend.

Both sides share one error mapping: whatever the daemon says is wrong reaches the user as the
daemon's own sentence, not as an HTTP status.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel

from clarity import requests as api
from clarity.config import SettingsModel
from clarity.daemon_lookup import HTTP_ERRORS, client_url, fetch, headers_for, open_request
from clarity.mcp.backend import BackendError
from clarity.models import Memory, MemoryCreate, MemoryPatch

if TYPE_CHECKING:
    from clarity.exchange import ExportPage, ExportPageRequest, ImportBatch, ImportSummary

M = TypeVar("M", bound=BaseModel)


class DaemonUnavailable(BackendError):
    pass


def _decode(status: int, content: bytes, model: type[M]) -> M:
    if status >= 400:
        try:
            message = json.loads(content).get("error") or content.decode(errors="replace")
        except (ValueError, AttributeError):
            message = content.decode(errors="replace") or f"HTTP {status}"
        raise BackendError(message)
    return model.model_validate_json(content)


def _list_params(request: api.ListRequest) -> dict[str, Any]:
    """Every field that is set, so a filter given to the stdio shim is not dropped on the way."""
    params: dict[str, Any] = {}
    for key, value in request.model_dump(mode="json", exclude_none=True).items():
        params[key] = ",".join(value) if isinstance(value, list) else value
    return params


def _query(params: dict[str, Any]) -> str:
    """A query string as httpx writes one: booleans as true/false."""
    return urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})


def _unavailable(url: str, exc: Exception) -> DaemonUnavailable:
    return DaemonUnavailable(f"Clarity daemon not reachable at {url} ({exc}); start it with `clarity serve`")


class DaemonClient:
    """Synchronous client for the CLI, on the standard library (``clarity.daemon_lookup.fetch``):
    a command makes a few requests, and httpx would cost it 70 ms of start-up."""

    def __init__(self, settings: SettingsModel, project: str | None, timeout: float = 60.0) -> None:
        self.settings = settings
        self.url = client_url(settings)
        self._headers = headers_for(settings, project)
        self._timeout = timeout

    @contextmanager
    def _network(self) -> Iterator[None]:
        """A request that gets no answer is the daemon being unavailable, in one sentence."""
        try:
            yield
        except HTTP_ERRORS as exc:
            raise _unavailable(self.url, exc) from exc

    def _send(
        self,
        method: str,
        path: str,
        model: type[M],
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> M:
        url = f"{self.url}/api{path}" + (f"?{_query(params)}" if params else "")
        headers = dict(self._headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        with self._network():
            status, content = fetch(method, url, body, headers, self._timeout)
        return _decode(status, content, model)

    def store(self, request: MemoryCreate) -> api.StoreResult:
        return self._send("POST", "/memories", api.StoreResult, request.model_dump(mode="json"))

    def retrieve(self, request: api.RetrieveRequest) -> api.RetrieveResult:
        return self._send(
            "POST", "/search", api.RetrieveResult, request.model_dump(mode="json", exclude_none=True)
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
        return self._send("POST", "/memories/batch", StoreResults, body).results

    def forget(self, request: api.ForgetRequest, dry_run: bool) -> api.ForgetResult:
        body = request.model_dump(mode="json", exclude_unset=True)
        return self._send("POST", "/forget", api.ForgetResult, body, params={"dry_run": dry_run})

    def export_page(self, request: ExportPageRequest) -> ExportPage:
        from clarity.exchange import ExportPage

        return self._send("POST", "/export", ExportPage, request.model_dump(mode="json"))

    def import_batch(self, batch: ImportBatch) -> ImportSummary:
        from clarity.exchange import ImportSummary

        return self._send("POST", "/import", ImportSummary, batch.model_dump(mode="json"))

    def backup(self, destination: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Stream the daemon's archive into ``destination`` (via a .partial file); returns its summary.
        A file that cannot be written is the file's error, not the daemon's."""
        from clarity.exchange import ImportSummary

        partial = destination.with_name(destination.name + ".partial")
        with ExitStack() as stack:
            with self._network():
                response = stack.enter_context(
                    open_request("POST", f"{self.url}/api/backup", None, self._headers, timeout=None)
                )
                if response.status >= 400:
                    _decode(
                        response.status, response.read(), ImportSummary
                    )  # raises with the daemon's message
            summary = json.loads(response.headers.get("x-clarity-backup") or "{}")
            try:
                with open(partial, "wb") as handle:
                    while True:
                        with self._network():
                            chunk = response.read(1 << 20)
                        if not chunk:
                            break
                        handle.write(chunk)
                        if progress:
                            progress(len(chunk))
            except DaemonUnavailable:
                partial.unlink(missing_ok=True)
                raise
        os.chmod(partial, 0o600)
        os.replace(partial, destination)
        return dict(summary)

    def close(self) -> None:
        """Nothing held between requests: each has its own connection."""


class StoreResults(BaseModel):
    results: list[api.StoreResult]


class RemoteBackend:
    """MCP backend for ``clarity mcp``: every tool call is forwarded to the daemon. httpx here (a
    long-lived async process, its start paid once), imported only by ``clarity mcp``."""

    def __init__(self, settings: SettingsModel, project: str | None) -> None:
        import httpx

        self.settings = settings
        self.min_similarity = settings.hooks.min_similarity
        self.default_project = project  # its working directory: the tools never ask the client's roots
        self.url = client_url(settings)
        self._http = httpx.AsyncClient(base_url=f"{self.url}/api", timeout=60.0)

    async def _send(self, method: str, path: str, model: type[M], project: str | None, **kwargs: Any) -> M:
        import httpx

        headers = headers_for(self.settings, project or self.default_project)
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        return _decode(response.status_code, response.content, model)

    async def store(self, request: MemoryCreate, project: str | None) -> api.StoreResult:
        return await self._send(
            "POST", "/memories", api.StoreResult, project, json=request.model_dump(mode="json")
        )

    async def retrieve(self, request: api.RetrieveRequest, project: str | None) -> api.RetrieveResult:
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._send("POST", "/search", api.RetrieveResult, project, json=body)

    async def list(self, request: api.ListRequest, project: str | None) -> api.ListResult:
        return await self._send("GET", "/memories", api.ListResult, project, params=_list_params(request))

    async def update(self, memory_id: str, patch: MemoryPatch) -> api.UpdatedMemory:
        body = patch.model_dump(mode="json", exclude_unset=True)
        return await self._send("PATCH", f"/memories/{memory_id}", api.UpdatedMemory, None, json=body)

    async def delete(self, memory_id: str) -> api.DeleteResult:
        return await self._send("DELETE", f"/memories/{memory_id}", api.DeleteResult, None)

    async def stats(self, project: str | None) -> api.Stats:
        return await self._send("GET", "/stats", api.Stats, project, params={"scope": "all"})
