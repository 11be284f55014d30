"""What the memory tools hand a model, through the `mcp` SDK's client against a real daemon.

Memories are imported with the provenance each door leaves (a failing command learned by the
hooks, a fix, a "remember that ..." prompt, a CLAUDE.md import, a store by hand) and an age;
then the compact text of ``retrieve_memory`` and ``list_memories`` must carry each memory's
content, kind, age in words, source and short id, and nothing else of the record; ``detail``
must give the whole record; ``memory_stats`` no absolute path; the input schemas their limits.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from clarity.describe import SHORT_ID_CHARS
from clarity.mcp.results import age, entry, origin
from clarity.mcp.stats import shown_path, without_paths
from clarity.memory.ids import MIN_PREFIX
from clarity.models import (
    MAX_CONTENT_CHARS,
    MAX_PAGE,
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    Memory,
)
from clarity.requests import ListRequest, RetrieveRequest

from .daemon_util import Daemon
from .test_mcp import http_client

NOW = datetime.now(UTC)
# An absolute path in a value or a message (not "…/name", what is left of one outside the home).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/…-])/[\w.-]")


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _scope(daemon: Daemon, directory: Path) -> str:
    probe = daemon.api(
        "POST", "/memories", str(directory), json={"content": f"probe {uuid.uuid4().hex}"}
    ).json()
    daemon.api("DELETE", f"/memories/{probe['id']}")
    return str(probe["memory"]["scope"])


def _record(scope: str, content: str, kind: str, source: str, metadata: dict[str, Any], days: float) -> dict:
    moment = (NOW - timedelta(days=days)).isoformat()
    return {
        "id": str(uuid.uuid4()),
        "content": content,
        "memory_type": kind,
        "scope": scope,
        "source": source,
        "metadata": metadata,
        "created_at": moment,
        "updated_at": moment,
        "content_hash": "recomputed on import",
    }


@pytest.fixture
def seeded(shared_daemon: Daemon, project: Path) -> dict[str, dict[str, Any]]:
    """Four memories in the project's scope, by name, as each door leaves them."""
    scope = _scope(shared_daemon, project)
    # A letter and a digit: an identifier, so a search for it alone finds all four, however far
    # its cosine is from theirs (clarity.relevance).
    marker = f"k9{uuid.uuid4().hex[:6]}"
    records = {
        "error": _record(
            scope,
            f"Unit tests of {marker} need a running Postgres",
            "error",
            "hook",
            {"hook_event": "PostToolUseFailure", "tool_name": "Bash", "command": "pnpm test"},
            3.2,
        ),
        "asked": _record(
            scope, f"{marker} deploys with make ship", "fact", "hook", {"hook_event": "UserPromptSubmit"}, 0.3
        ),
        "imported": _record(
            scope,
            f"Run {marker} lint before pushing",
            "command",
            "import",
            {"path": "/home/someone/src/shop/CLAUDE.md", "imported_from": "claude-code"},
            45,
        ),
        "stored": _record(scope, f"{marker} prefers tabs", "preference", "manual", {}, 15),
    }
    answer = shared_daemon.api("POST", "/import", json={"memories": list(records.values())})
    assert answer.status_code == 200, answer.text
    return records


EXPECTED = {
    "error": "- [error] {content} (3 days ago; learned from a failing `pnpm test`; id {short})",
    "asked": "- [fact] {content} (7 hours ago; the user asked to remember this; id {short})",
    "imported": "- [command] {content} (1 month ago; imported from CLAUDE.md; id {short})",
    "stored": "- [preference] {content} (2 weeks ago; stored explicitly; id {short})",
}


def test_compact_hits_carry_content_kind_age_source_and_short_id(
    shared_daemon: Daemon, project: Path, seeded: dict[str, dict[str, Any]]
) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(project)) as client:
            found = await client.call_tool(
                "retrieve_memory",
                {"query": seeded["error"]["content"].split()[3], "scope": "project", "limit": 10},
            )
            listed = await client.call_tool("list_memories", {"scope": "project"})
        for result, head in (
            (found, "4 memories, best match first:"),
            (listed, "Memories 1-4 of 4, newest first:"),
        ):
            assert not result.is_error, result.content
            assert result.structured_content is None  # Claude Code would show the model that instead
            lines = _text(result).splitlines()
            assert lines[0] == head, lines
            for name, record in seeded.items():
                entry = EXPECTED[name].format(content=record["content"], short=record["id"][:SHORT_ID_CHARS])
                assert entry in lines, (entry, lines)
            text = _text(result)
            for record in seeded.values():
                assert record["id"] not in text and record["created_at"][:10] not in text
            assert "content_hash" not in text and "score" not in text and "/home/" not in text
        assert [line.rsplit("id ", 1)[1][:-1] for line in _text(listed).splitlines()[1:]] == [
            seeded[name]["id"][:SHORT_ID_CHARS] for name in ("asked", "error", "stored", "imported")
        ]

    anyio.run(main)


def test_the_short_id_is_one_the_tools_accept(
    shared_daemon: Daemon, project: Path, seeded: dict[str, dict[str, Any]]
) -> None:
    assert SHORT_ID_CHARS == MIN_PREFIX

    async def main() -> None:
        async with http_client(shared_daemon, str(project)) as client:
            found = await client.call_tool("retrieve_memory", {"query": "prefers tabs", "scope": "project"})
            short = re.search(r"prefers tabs \(.*; id (\w+)\)", _text(found))
            assert short is not None, _text(found)
            deleted = await client.call_tool("delete_memory", {"memory_id": short.group(1)})
            assert deleted.structured_content == {"id": seeded["stored"]["id"], "deleted": True}

    anyio.run(main)


def test_detail_gives_the_whole_record(
    shared_daemon: Daemon, project: Path, seeded: dict[str, dict[str, Any]]
) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(project)) as client:
            found = await client.call_tool(
                "retrieve_memory", {"query": "deploys with make ship", "scope": "project", "detail": True}
            )
            listed = await client.call_tool("list_memories", {"scope": "project", "detail": True})
        assert json.loads(_text(found)) == found.structured_content
        assert json.loads(_text(listed)) == listed.structured_content
        stored = shared_daemon.api("GET", f"/memories/{seeded['asked']['id']}").json()
        hits = {hit["memory"]["id"]: hit for hit in found.structured_content["results"]}
        hit = hits[seeded["asked"]["id"]]
        assert set(hit) >= {"memory", "score", "similarity"}
        assert {k: v for k, v in hit["memory"].items() if k not in ("access_count", "last_accessed_at")} == {
            k: v for k, v in stored.items() if k not in ("access_count", "last_accessed_at")
        }
        assert set(hit["memory"]) == set(Memory.model_fields)
        assert {m["id"] for m in listed.structured_content["memories"]} == {r["id"] for r in seeded.values()}

    anyio.run(main)


def test_a_search_that_finds_nothing_says_so_in_one_line(shared_daemon: Daemon, project: Path) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(project)) as client:
            found = await client.call_tool(
                "retrieve_memory", {"query": "anything at all", "scope": "project"}
            )
            listed = await client.call_tool("list_memories", {"scope": "project"})
        assert not found.is_error and _text(found) == "No memories match this query."
        assert not listed.is_error and _text(listed) == "No memories."

    anyio.run(main)


def test_the_compact_text_keeps_the_scope_note(shared_daemon: Daemon) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, None) as anonymous:  # no header, no roots
            found = await anonymous.call_tool("retrieve_memory", {"query": "anything at all"})
            listed = await anonymous.call_tool("list_memories", {})
        for result, what in ((found, "searched"), (listed, "listed")):
            second = _text(result).splitlines()[1]  # after the count, or after "No memories ..."
            assert second.startswith(f"Note: {what} global only: this client names no project"), second

    anyio.run(main)


def test_memory_stats_names_no_absolute_path(shared_daemon: Daemon, project: Path) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(project)) as client:
            return await client.call_tool("memory_stats", {})

    stats = anyio.run(main)
    assert not stats.is_error, stats.content
    shown = _text(stats) + json.dumps(stats.structured_content)
    assert ABSOLUTE_PATH.search(shown) is None, shown
    assert str(shared_daemon.root) not in shown
    location = stats.structured_content["location"]
    assert location.endswith("/qdrant") and location.startswith(("…/", "~/")), location
    assert stats.structured_content["total"] >= 0


def test_paths_under_home_are_home_relative(tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    assert shown_path(f"{home}/.claude/alunai-clarity/qdrant", home) == "~/.claude/alunai-clarity/qdrant"
    assert shown_path(str(home), home) == "~"
    assert shown_path("/srv/clarity/qdrant", home) == "…/qdrant"
    message = f"could not load embedding model '{home}/models/x': no such file; see /var/log/c.log"
    assert without_paths({"errors": [message], "url": "http://127.0.0.1:6333/collections", "n": 3}, home) == {
        "errors": ["could not load embedding model '~/models/x': no such file; see …/c.log"],
        "url": "http://127.0.0.1:6333/collections",
        "n": 3,
    }


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    """Every limit a property states, in itself or in the arms of its anyOf."""
    keys = ("minimum", "maximum", "minLength", "maxLength", "maxItems")
    found = {key: schema[key] for key in keys if key in schema}
    for arm in schema.get("anyOf", []):
        found.update(_constraints(arm))
    return found


def _tools(shared_daemon: Daemon, project: Path) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with http_client(shared_daemon, str(project)) as client:
            return {tool.name: tool for tool in (await client.list_tools()).tools}

    return anyio.run(main)


def test_input_schemas_carry_the_limits(shared_daemon: Daemon, project: Path) -> None:
    tools = _tools(shared_daemon, project)
    props = {name: tool.input_schema["properties"] for name, tool in tools.items()}
    assert _constraints(props["retrieve_memory"]["query"]) == {"minLength": 1, "maxLength": MAX_QUERY_CHARS}
    assert _constraints(props["retrieve_memory"]["limit"]) == {"minimum": 1, "maximum": MAX_RESULTS}
    assert _constraints(props["retrieve_memory"]["min_score"]) == {"minimum": 0, "maximum": 1}
    assert _constraints(props["list_memories"]["limit"]) == {"minimum": 1, "maximum": MAX_PAGE}
    assert _constraints(props["store_memory"]["content"]) == {"minLength": 1, "maxLength": MAX_CONTENT_CHARS}
    assert _constraints(props["store_memory"]["importance"]) == {"minimum": 0, "maximum": 1}
    assert _constraints(props["update_memory"]["importance"]) == {"minimum": 0, "maximum": 1}
    for tool in ("store_memory", "update_memory", "retrieve_memory", "list_memories"):
        tags = _constraints(props[tool]["tags"])
        assert tags["maxItems"] == MAX_TAGS, tool
        items = next(arm["items"] for arm in props[tool]["tags"]["anyOf"] if arm.get("type") == "array")
        assert _constraints(items) == {"minLength": 1, "maxLength": MAX_TAG_CHARS}, tool
    for tool, argument in (
        ("retrieve_memory", "query"),
        ("store_memory", "content"),
        ("delete_memory", "memory_id"),
    ):
        assert props[tool][argument]["examples"], (tool, argument)
    for tool in ("retrieve_memory", "list_memories", "store_memory", "update_memory"):
        assert props[tool]["detail"] == {
            "default": False,
            "description": props[tool]["detail"]["description"],
            "type": "boolean",
        }
        assert tools[tool].output_schema is None  # structured content only with detail


@pytest.mark.parametrize(
    ("tool", "model"), [("retrieve_memory", RetrieveRequest), ("list_memories", ListRequest)]
)
def test_the_schema_limits_are_the_services(
    shared_daemon: Daemon, project: Path, tool: str, model: type[Any]
) -> None:
    """A tool's argument states the very limits of the request field it fills."""
    served = _tools(shared_daemon, project)[tool].input_schema["properties"]
    fields = model.model_json_schema()["properties"]
    compared = 0
    for name, schema in served.items():
        if name in fields and (limits := _constraints(fields[name])):
            assert _constraints(schema) == limits, name
            compared += 1
    assert compared >= 2


def test_descriptions_have_no_leading_indentation(shared_daemon: Daemon, project: Path) -> None:
    for name, tool in _tools(shared_daemon, project).items():
        assert tool.description and tool.description == tool.description.strip(), name
        for line in tool.description.splitlines():
            assert not line.startswith((" ", "\t")), (name, line)
        assert "title" not in json.dumps(tool.input_schema), name  # pydantic's titles repeat the names


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "just now"),
        (-30, "just now"),
        (59, "just now"),
        (60, "1 minute ago"),
        (150, "2 minutes ago"),
        (3_600, "1 hour ago"),
        (86_399, "23 hours ago"),
        (86_400, "1 day ago"),
        (13 * 86_400, "13 days ago"),
        (14 * 86_400, "2 weeks ago"),
        (45 * 86_400, "1 month ago"),
        (400 * 86_400, "1 year ago"),
        (800 * 86_400, "2 years ago"),
    ],
)
def test_age_in_words(seconds: float, words: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == words


def _memory(kind: str, source: str, metadata: dict[str, Any], content: str = "text") -> Memory:
    return Memory(
        id=str(uuid.uuid4()),
        content=content,
        memory_type=kind,
        scope="global",
        source=source,
        metadata=metadata,
        created_at=NOW,
        updated_at=NOW,
        content_hash="h",
    )


@pytest.mark.parametrize(
    ("memory", "words"),
    [
        (_memory("error", "hook", {"command": "pnpm test"}), "learned from a failing `pnpm test`"),
        (
            _memory("error", "hook", {"command": "pnpm test"}, "`pnpm test` failed: x"),
            "learned from a failing command",
        ),
        (_memory("fix", "hook", {"failed_command": "make"}), "learned from fixing a failing `make`"),
        (_memory("command", "hook", {"command": "make check"}), "learned from running `make check`"),
        (_memory("summary", "hook", {"hook_event": "SessionEnd"}), "learned from a session"),
        (_memory("fact", "hook", {"hook_event": "UserPromptSubmit"}), "the user asked to remember this"),
        (_memory("note", "import", {"path": "notes/build.md"}), "imported from build.md"),
        (_memory("note", "import", {"imported_from": "mcp-memory"}), "imported"),
        (_memory("fact", "manual", {}), "stored explicitly"),
    ],
)
def test_where_a_memory_came_from(memory: Memory, words: str) -> None:
    assert origin(memory) == words


def test_an_entry_keeps_the_lines_of_its_text_and_says_when_it_was_seen_again() -> None:
    memory = _memory("fact", "manual", {}, "Release steps:\n\n1. tag\n2. push  \n").model_copy(
        update={
            "occurrences": 3,
            "created_at": NOW - timedelta(days=20),
            "updated_at": NOW - timedelta(hours=2),
        }
    )
    assert entry(memory, NOW) == (
        f"- [fact] Release steps:\n  1. tag\n  2. push (2 weeks ago, seen 3 times, last 2 hours ago; "
        f"stored explicitly; id {memory.id[:8]})"
    )
    edited = memory.model_copy(update={"occurrences": 1})
    assert "(2 weeks ago, updated 2 hours ago; stored explicitly;" in entry(edited, NOW)
