"""MCP clients that send no X-Clarity-Project header: the project comes from their MCP roots.

The SDK's own streamable-HTTP client against a real daemon, in both protocol eras: handshake
("legacy", where the daemon asks ``roots/list`` once per session) and 2026-07-28 (no session, no
server-to-client requests: the roots come in an ``input_required`` round of the call). A client
that declares roots lands in the project scope of its first root, resolved exactly as the header
would be; one that declares none lands in ``global``, and the result says so in a note. The
stdio shim names its own directory and never asks.
"""

from __future__ import annotations

import json
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
from mcp_types import INVALID_REQUEST, ErrorData, ListRootsResult, Root

from clarity.models import GLOBAL_SCOPE

from .daemon_util import Daemon

ERAS = ["legacy", "2026-07-28"]


class Roots:
    """A client's roots callback that counts how often the server asks."""

    def __init__(self, *directories: Path | str, fail: bool = False) -> None:
        self.uris = [d if isinstance(d, str) else d.as_uri() for d in directories]
        self.fail = fail
        self.asked = 0

    async def __call__(self, _context: Any) -> ListRootsResult | ErrorData:
        self.asked += 1
        if self.fail:
            return ErrorData(code=INVALID_REQUEST, message="roots are not for you")
        return ListRootsResult(roots=[Root(uri=uri, name=f"root {i}") for i, uri in enumerate(self.uris)])


@asynccontextmanager
async def client(
    daemon: Daemon, mode: str, roots: Roots | None = None, header: Path | None = None
) -> AsyncIterator[Client]:
    headers = {"X-Clarity-Project": str(header)} if header else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(
            streamable_http_client(f"{daemon.url}/mcp", http_client=http),
            mode=mode,  # type: ignore[arg-type]
            list_roots_callback=roots,
        ) as connected,
    ):
        yield connected


async def call(session: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    if tool in ("retrieve_memory", "list_memories", "store_memory", "update_memory"):
        arguments.setdefault("detail", True)  # the whole reply as JSON; the default is short text
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)  # what a model reads
    assert text == result.structured_content
    return dict(result.structured_content)


async def forget(session: Client, *memories: dict[str, Any]) -> None:
    """Delete what a test stored in ``global``: every test on the shared daemon sees that scope."""
    for memory in memories:
        await call(session, "delete_memory", memory_id=memory["id"])


def scope_of(daemon: Daemon, directory: Path) -> str:
    """The scope the header names for ``directory``: what its roots must resolve to as well."""
    probe = f"scope probe {uuid.uuid4().hex}"
    stored = daemon.api("POST", "/memories", str(directory), json={"content": probe}).json()
    daemon.api("DELETE", f"/memories/{stored['id']}")
    return str(stored["memory"]["scope"])


@pytest.mark.parametrize("mode", ERAS)
def test_a_client_with_roots_stores_and_retrieves_in_its_root_project(
    shared_daemon: Daemon, project: Path, mode: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    expected = scope_of(shared_daemon, project)
    assert expected != GLOBAL_SCOPE
    roots = Roots("file://build-host/repo", project, Path("/"))  # the first local file:// root

    async def main() -> None:
        async with client(shared_daemon, mode, roots) as session:
            async with anyio.create_task_group() as group:  # concurrent first calls: one question
                for _ in range(3):
                    group.start_soon(call, session, "list_memories")
            stored = await call(session, "store_memory", content=f"Service {marker} builds with make dist")
            assert stored["memory"]["scope"] == expected and "note" not in stored
            found = await call(session, "retrieve_memory", query=f"how does {marker} build")
            assert found["scopes"] == [expected, GLOBAL_SCOPE] and "note" not in found
            assert found["results"][0]["memory"]["id"] == stored["id"]
            listed = await call(session, "list_memories", scope="project")
            assert stored["id"] in [m["id"] for m in listed["memories"]]
            everywhere = await call(session, "retrieve_memory", query=marker, scope="all")
            assert "note" not in everywhere
        # Handshake era: one roots/list for the whole session (the scope "all" call asks none).
        # 2026-07-28 has no session: each call whose scope needs the project carries the roots.
        assert roots.asked == (1 if mode == "legacy" else 6)

    anyio.run(main)
    listed = shared_daemon.api("GET", "/memories", str(project), params={"scope": "project"}).json()
    assert any(marker in m["content"] for m in listed["memories"])


@pytest.mark.parametrize("mode", ERAS)
def test_a_client_without_roots_lands_in_global_and_is_told(shared_daemon: Daemon, mode: str) -> None:
    marker = uuid.uuid4().hex[:8]

    async def main() -> None:
        async with client(shared_daemon, mode) as session:
            stored = await call(session, "store_memory", content=f"Team {marker} prefers tabs over spaces")
            assert stored["memory"]["scope"] == GLOBAL_SCOPE
            assert stored["note"] == (
                "stored in global: this client names no project (no X-Clarity-Project header, no MCP roots)"
            )
            explicit = await call(
                session, "store_memory", content=f"Team {marker} ships on Tuesdays", scope="project"
            )
            assert explicit["memory"]["scope"] == GLOBAL_SCOPE and explicit["note"].startswith(
                "stored in global: "
            )
            found = await call(session, "retrieve_memory", query=f"team {marker} tabs or spaces", limit=10)
            assert found["scopes"] == [GLOBAL_SCOPE]
            assert found["note"].startswith("searched global only: this client names no project")
            assert stored["id"] in [r["memory"]["id"] for r in found["results"]]
            listed = await call(session, "list_memories", scope="project")
            assert listed["note"].startswith("listed global only: ")
            assert stored["id"] in [m["id"] for m in listed["memories"]]
            chosen = await call(session, "store_memory", content=f"Team {marker} uses UTC", scope="global")
            assert "note" not in chosen  # global was asked for: nothing to say
            await forget(session, stored, explicit, chosen)

    anyio.run(main)


def test_a_root_that_is_no_directory_here_is_named_in_the_note(shared_daemon: Daemon, tmp_path: Path) -> None:
    """A client in a container names a path this machine does not have: global, and why."""
    missing = tmp_path / "in-a-container" / "workspace"

    async def main() -> None:
        async with client(shared_daemon, "legacy", Roots(missing)) as session:
            stored = await call(session, "store_memory", content=f"Container note {uuid.uuid4().hex}")
            assert stored["memory"]["scope"] == GLOBAL_SCOPE
            assert stored["note"] == f"stored in global: {missing} is not a directory on this machine"
            found = await call(session, "retrieve_memory", query="container note")
            assert found["note"] == f"searched global only: {missing} is not a directory on this machine"
            await forget(session, stored)

    anyio.run(main)


def test_a_failing_roots_list_is_a_note_not_an_error(shared_daemon: Daemon) -> None:
    roots = Roots(fail=True)

    async def main() -> None:
        async with client(shared_daemon, "legacy", roots) as session:
            for _ in range(2):
                stored = await call(session, "store_memory", content=f"Fallback {uuid.uuid4().hex}")
                assert stored["memory"]["scope"] == GLOBAL_SCOPE
                assert stored["note"].startswith("stored in global: this client's roots/list failed (")
                assert "roots are not for you" in stored["note"]
                await forget(session, stored)
        assert roots.asked == 1  # the failure is the session's answer too

    anyio.run(main)


@pytest.mark.filterwarnings("ignore:The roots capability is deprecated")
def test_roots_list_changed_asks_again(shared_daemon: Daemon, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    scopes = [scope_of(shared_daemon, d) for d in (first, second)]
    roots = Roots(first)

    async def main() -> None:
        async with client(shared_daemon, "legacy", roots) as session:
            found = await call(session, "retrieve_memory", query="anything")
            assert found["scopes"][0] == scopes[0]
            roots.uris = [second.as_uri()]
            await session.send_roots_list_changed()
            for _ in range(100):  # the notification and the next call travel on separate requests
                found = await call(session, "retrieve_memory", query="anything")
                if found["scopes"][0] == scopes[1]:
                    break
                await anyio.sleep(0.05)
            assert found["scopes"][0] == scopes[1]
        assert roots.asked == 2

    anyio.run(main)


def test_the_header_wins_and_roots_are_not_asked(
    shared_daemon: Daemon, project: Path, tmp_path: Path
) -> None:
    roots = Roots(tmp_path)

    async def main() -> None:
        async with client(shared_daemon, "legacy", roots, header=project) as session:
            stored = await call(session, "store_memory", content=f"Header wins {uuid.uuid4().hex}")
            assert stored["memory"]["scope"] == scope_of(shared_daemon, project)
        assert roots.asked == 0

    anyio.run(main)


def test_the_stdio_shim_names_its_directory_and_never_asks(shared_daemon: Daemon, project: Path) -> None:
    roots = Roots(Path("/"))
    env = {**shared_daemon.env(), "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "clarity", "mcp"], env=env, cwd=str(project)
    )

    async def main() -> None:
        async with Client(params, list_roots_callback=roots) as session:
            stored = await call(session, "store_memory", content=f"Shim {uuid.uuid4().hex}")
            assert stored["memory"]["scope"] == scope_of(shared_daemon, project)
            assert "note" not in stored
        assert roots.asked == 0

    anyio.run(main)
