"""MCP tools through a real MCP client, over streamable HTTP and over the stdio shim."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from clarity.models import MemoryType

from .daemon_util import Daemon

TOOLS = {"store_memory", "retrieve_memory", "list_memories", "update_memory", "delete_memory", "memory_stats"}


@asynccontextmanager
async def http_client(daemon: Daemon, project: str | None) -> AsyncIterator[Client]:
    headers = {"X-Clarity-Project": project} if project else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client,
    ):
        yield client


@asynccontextmanager
async def stdio_client(daemon: Daemon, cwd: Path) -> AsyncIterator[Client]:
    env = {**daemon.env(), "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "clarity", "mcp"], env=env, cwd=str(cwd)
    )
    async with Client(params) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    return await client.call_tool(tool, arguments)


def run(coro: Any) -> Any:
    return anyio.run(lambda: coro)


async def _exercise(client: Client, marker: str) -> None:
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert tools == TOOLS
    stored = await call(
        client,
        "store_memory",
        content=f"The {marker} service listens on port 7443",
        memory_type="fact",
        tags=["ports"],
        detail=True,
    )
    assert not stored.is_error, stored.content
    memory_id = stored.structured_content["id"]
    found = await call(client, "retrieve_memory", query=f"which port does {marker} use", limit=3)
    best = found.content[0].text.splitlines()[1]
    assert best.startswith(
        f"- [fact] The {marker} service listens on port 7443 (just now; stored explicitly; id "
    )
    assert best.endswith(f"id {memory_id[:8]})") and found.structured_content is None
    detailed = await call(client, "retrieve_memory", query=f"which port does {marker} use", detail=True)
    assert detailed.structured_content["results"][0]["memory"]["id"] == memory_id
    listed = await call(client, "list_memories", scope="project", detail=True)
    assert memory_id in [m["id"] for m in listed.structured_content["memories"]]
    updated = await call(
        client,
        "update_memory",
        memory_id=memory_id,
        content=f"The {marker} service moved to port 9443",
        detail=True,
    )
    assert updated.structured_content["content"].endswith("port 9443")
    stats = await call(client, "memory_stats")
    assert stats.structured_content["total"] >= 1
    deleted = await call(client, "delete_memory", memory_id=memory_id)
    assert deleted.structured_content == {"id": memory_id, "deleted": True}


def test_tools_over_streamable_http(shared_daemon: Daemon, tmp_path: Path) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(tmp_path)) as client:
            await _exercise(client, f"http{uuid.uuid4().hex[:6]}")

    anyio.run(main)


def test_tools_over_stdio_shim(shared_daemon: Daemon, tmp_path: Path) -> None:
    async def main() -> None:
        async with stdio_client(shared_daemon, tmp_path) as client:
            await _exercise(client, f"stdio{uuid.uuid4().hex[:6]}")

    anyio.run(main)


def test_http_and_stdio_clients_share_one_memory(shared_daemon: Daemon, tmp_path: Path) -> None:
    marker = f"shared{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with stdio_client(shared_daemon, tmp_path) as stdio:
            stored = await call(
                stdio, "store_memory", content=f"Release train {marker} leaves on Fridays", detail=True
            )
            assert not stored.is_error
        async with http_client(shared_daemon, str(tmp_path)) as http:
            found = await call(
                http, "retrieve_memory", query=f"when does release train {marker} leave", detail=True
            )
            assert found.structured_content["results"][0]["memory"]["id"] == stored.structured_content["id"]

    anyio.run(main)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("store_memory", {"content": ""}, "content"),
        ("store_memory", {"content": "x" * 20_001}, "at most 20000 characters"),
        ("store_memory", {"content": "ok", "memory_type": "gossip"}, "memory_type"),
        ("store_memory", {"content": "ok", "importance": 7}, "importance"),
        (
            "store_memory",
            {"content": "ok", "metadata": {"deep": {"a": {"b": {"c": {"d": {"e": {}}}}}}}},
            "metadata",
        ),
        ("retrieve_memory", {"query": "x", "limit": 0}, "limit"),
        ("update_memory", {"memory_id": "nope", "importance": 0.2}, "not a memory id"),
        ("update_memory", {"memory_id": str(uuid.uuid4()), "importance": 0.2}, "no memory with id"),
        ("delete_memory", {"memory_id": str(uuid.uuid4())}, "no memory with id"),
    ],
)
def test_invalid_arguments_are_tool_errors_naming_the_field(
    shared_daemon: Daemon, tmp_path: Path, tool: str, arguments: dict, message: str
) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(tmp_path)) as client:
            result = await call(client, tool, **arguments)
            assert result.is_error
            text = " ".join(getattr(block, "text", "") for block in result.content)
            assert message in text, text

    anyio.run(main)


def test_project_scope_follows_the_header(shared_daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    marker = uuid.uuid4().hex[:8]

    async def main() -> None:
        async with http_client(shared_daemon, str(tmp_path / "a")) as a:
            await call(a, "store_memory", content=f"Project A secret sauce {marker}")
        async with http_client(shared_daemon, str(tmp_path / "b")) as b:
            found = await call(b, "retrieve_memory", query=f"secret sauce {marker}", scope="project")
            assert found.content[0].text == "No memories match this query."
        async with http_client(shared_daemon, None) as anonymous:  # no header, no roots
            stored = await call(
                anonymous, "store_memory", content=f"no project known {marker}", scope="project", detail=True
            )
            assert not stored.is_error, stored.content
            assert stored.structured_content["memory"]["scope"] == "global"
            assert "stored in global: this client names no project" in stored.content[0].text
            await call(
                anonymous, "delete_memory", memory_id=stored.structured_content["id"]
            )  # global is shared

    anyio.run(main)


def test_the_tools_offer_exactly_the_memory_types(shared_daemon: Daemon, tmp_path: Path) -> None:
    """One list of memory types: the tools' enum is MemoryType's names, in its order."""
    names = [kind.value for kind in MemoryType]

    async def main() -> None:
        async with http_client(shared_daemon, str(tmp_path)) as client:
            tools = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        assert tools["store_memory"]["properties"]["memory_type"]["enum"] == names
        assert tools["update_memory"]["properties"]["memory_type"]["anyOf"][0]["enum"] == names
        for name in ("retrieve_memory", "list_memories"):
            kinds = tools[name]["properties"]["memory_types"]["anyOf"][0]
            assert kinds["items"]["enum"] == names, name

    anyio.run(main)
