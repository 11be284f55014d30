"""How many characters the MCP tools hand the model: per hit, per typical result, per tool list.

    .venv/bin/python scripts/bench/mcp_results.py [--out DIR]

A daemon (`clarity serve`, the real model) starts on a temporary storage root, a temporary git
repository is the project, and realistic memories are imported into it through the REST API with
the provenance each door leaves: learned by the hooks (a failing command, its fix, a build
command, a session summary, a "remember that ..." prompt), stored by hand, imported from
CLAUDE.md, each with its own age. Then the `mcp` SDK's client, over streamable HTTP as Claude Code
connects, asks `retrieve_memory` a few questions (limit 5, the default) and `list_memories` and
`memory_stats` once, stores a memory twice (new, then a duplicate), updates it and stores one anchored to a file
(`src/cart.ts:12-30`), and what
Claude Code hands the model of each result is counted (the
structured content as JSON when there is any, else the text blocks): characters per hit and per
result, in the default view and, where the tool offers it, the `detail` view. The tool
definitions the model reads every session (names, descriptions, input schemas) are counted too. The 1-minute load is printed with the figures; these are
character counts, not timings, so load does not move them.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from common import machine, parser, running_daemon, write_results
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

DAY = 86_400.0
QUERIES = [
    "how do I run the tests",
    "how do we deploy",
    "why does pnpm install fail",
    "which database does the billing service use",
    "code style preferences",
]


def project_memories(scope: str) -> list[dict[str, Any]]:
    """Records as each door writes them: text, kind, source, metadata, age in seconds."""
    learned = {"hook_event": "PostToolUseFailure", "tool_name": "Bash", "tool_use_id": "toolu_01ABCDEF"}
    passed = {"hook_event": "PostToolUse", "tool_name": "Bash", "tool_use_id": "toolu_01GHIJKL"}
    ended = {"hook_event": "SessionEnd"}
    prompt = {"hook_event": "UserPromptSubmit", "prompt_id": "prompt-5a1b"}
    rows: list[tuple[str, str, str, dict[str, Any], float, list[str]]] = [
        (
            "`pnpm test` failed: ERR_PNPM_NO_SCRIPT Missing script: test / Command failed with exit code 1",
            "error",
            "hook",
            {**learned, "command": "pnpm test"},
            3 * DAY,
            ["pnpm"],
        ),
        (
            "`pnpm test` failed with: ERR_PNPM_NO_SCRIPT Missing script: test. Fixed by running "
            "`pnpm run test:unit`.",
            "fix",
            "hook",
            {**passed, "failed_command": "pnpm test", "fix_command": "pnpm run test:unit"},
            3 * DAY - 120,
            ["pnpm"],
        ),
        (
            "This project is built or tested with `pnpm run test:unit`",
            "command",
            "hook",
            {**passed, "command": "pnpm run test:unit"},
            2 * DAY,
            ["pnpm", "build-test"],
        ),
        (
            "`pnpm install --frozen-lockfile` failed: ERR_PNPM_OUTDATED_LOCKFILE Cannot install with "
            '"frozen-lockfile" because pnpm-lock.yaml is not up to date with package.json',
            "error",
            "hook",
            {**learned, "command": "pnpm install --frozen-lockfile"},
            9 * DAY,
            ["pnpm"],
        ),
        (
            "We deploy with `make ship`; it tags the release and CI pushes the image to the registry.",
            "fact",
            "hook",
            prompt,
            5 * 3600,
            ["user-request"],
        ),
        (
            "The billing service uses PostgreSQL 16; migrations live in services/billing/migrations "
            "and run with `alembic upgrade head`.",
            "decision",
            "manual",
            {},
            21 * DAY,
            ["billing", "db"],
        ),
        (
            "Prefer small pure functions and type hints everywhere; no default exports in TypeScript.",
            "preference",
            "manual",
            {},
            40 * DAY,
            ["style"],
        ),
        (
            "Run the full test suite with `pnpm run test:all` before merging to main.",
            "command",
            "import",
            {"path": "/home/dev/src/shop/CLAUDE.md", "kind": "project", "imported_from": "claude-code"},
            60 * DAY,
            ["claude-md"],
        ),
        (
            "Session 2026-01-12: edited services/billing/api.py, services/billing/models.py; built/tested "
            "with `pnpm run test:unit`; failed: `pnpm test`; fixes: `pnpm test` failed with: "
            "ERR_PNPM_NO_SCRIPT. Fixed by running `pnpm run test:unit`.",
            "summary",
            "hook",
            ended,
            3 * DAY - 600,
            ["session"],
        ),
        (
            "Deploys to staging need VPN access; production deploys are approved in #releases.",
            "fact",
            "manual",
            {},
            12 * DAY,
            ["deploy"],
        ),
    ]
    now = time.time()
    records = []
    for content, kind, source, metadata, age, tags in rows:
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - age))
        records.append(
            {
                "id": str(uuid.uuid4()),
                "content": content,
                "memory_type": kind,
                "scope": scope,
                "tags": tags,
                "importance": 0.6,
                "source": source,
                "session_id": "9f1c2d3e-session" if source == "hook" else None,
                "created_at": moment,
                "updated_at": moment,
                "metadata": metadata,
                "content_hash": "x",
            }
        )
    return records


def _text(result: Any) -> str:
    """What Claude Code 2.1.330 hands the model: the structured content as JSON when the result
    has any, else its text blocks (tests/e2e/test_mcp_results_e2e.py sees it do so)."""
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _hits(result: Any) -> int:
    """Memories in a result: its records, or the entries of its text (one per ``- [kind]``)."""
    data = result.structured_content
    if data is not None:
        return len(data.get("results", data.get("memories", [])))
    return len(re.findall(r"^- \[", _text(result), flags=re.MULTILINE))


def _stored_id(result: Any) -> str:
    """The id a store answered with: in its record, or the short id its text names."""
    if result.structured_content is not None:
        return str(result.structured_content["id"])
    found = re.search(r"(?:Stored \w+|Already stored as|Merged into) (\w+)", _text(result))
    assert found is not None, _text(result)
    return found.group(1)


async def _writes(client: Client, tools: dict[str, Any]) -> dict[str, Any]:
    """Characters of a store (a new memory, then the same text again) and of an update, per view."""
    figures: dict[str, Any] = {}
    has_detail = "detail" in tools["store_memory"].input_schema["properties"]
    for view, extra in {"default": {}, **({"detail": {"detail": True}} if has_detail else {})}.items():
        content = (
            f"The {view} docs are built with `make docs`; the site goes to build/site and is not committed."
        )
        created = await client.call_tool(
            "store_memory", {"content": content, "memory_type": "command", **extra}
        )
        again = await client.call_tool(
            "store_memory", {"content": content, "memory_type": "command", **extra}
        )
        updated = await client.call_tool(
            "update_memory",
            {"memory_id": _stored_id(created), "content": content + " Run it before a release.", **extra},
        )
        anchored = await client.call_tool(
            "store_memory",
            {
                "content": f"The {view} cart keeps totals in cents in addItem; never use floats for prices.",
                "anchors": ["src/cart.ts:12-30"],
                **extra,
            },
        )
        figures[view] = {
            "store_chars": len(_text(created)),
            "store_again_chars": len(_text(again)),
            "update_chars": len(_text(updated)),
            "store_anchored_chars": len(_text(anchored)),
        }
        figures[f"sample_{view}"] = [_text(created), _text(again), _text(updated), _text(anchored)]
    return figures


async def _measure(url: str, project: Path) -> dict[str, Any]:
    headers = {"X-Clarity-Project": str(project)}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        tools = (await client.list_tools()).tools
        # What the model reads of each tool: its name, description and input schema.
        listing = json.dumps(
            [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools]
        )
        has_detail = (
            "detail" in next(t for t in tools if t.name == "retrieve_memory").input_schema["properties"]
        )
        views = {"default": {}, **({"detail": {"detail": True}} if has_detail else {})}
        figures: dict[str, Any] = {"tool_definition_chars": len(listing), "views": {}}
        for view, extra in views.items():
            sizes, hits = [], []
            for query in QUERIES:
                result = await client.call_tool("retrieve_memory", {"query": query, "limit": 5, **extra})
                sizes.append(len(_text(result)))
                hits.append(_hits(result))
            listed = await client.call_tool("list_memories", {"limit": 5, **extra})
            figures["views"][view] = {
                "retrieve_chars_per_result": round(statistics.fmean(sizes)),
                "retrieve_hits_per_result": round(statistics.fmean(hits), 2),
                "retrieve_chars_per_hit": round(sum(sizes) / max(1, sum(hits))),
                "list_chars_5": len(_text(listed)),
                "list_chars_per_memory": round(len(_text(listed)) / max(1, _hits(listed))),
            }
        figures["writes"] = await _writes(client, {t.name: t for t in tools})
        sample = await client.call_tool("retrieve_memory", {"query": QUERIES[0], "limit": 5})
        nothing = await client.call_tool("retrieve_memory", {"query": "zxqv glorp frobnicate", "limit": 5})
        stats = await client.call_tool("memory_stats", {})
        figures["memory_stats_chars"] = len(_text(stats))
        figures["sample_retrieve"] = _text(sample)
        figures["sample_nothing"] = _text(nothing)
        figures["sample_stats"] = _text(stats)
        return figures


def main() -> None:
    args = parser(__doc__).parse_args()
    with tempfile.TemporaryDirectory(prefix="clarity-mcp-results-") as work:
        root, project = Path(work) / "store", Path(work) / "shop"
        (project / "src").mkdir(parents=True)
        # The file an anchored store names (src/cart.ts:12-30): forty lines of a module.
        (project / "src" / "cart.ts").write_text("".join(f"export const line{i} = {i};\n" for i in range(40)))
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        with running_daemon(root) as url:
            api = f"{url}/api"
            headers = {"X-Clarity-Project": str(project)}
            probe = httpx.post(f"{api}/memories", headers=headers, json={"content": "scope probe"}).json()
            httpx.delete(f"{api}/memories/{probe['id']}")
            records = project_memories(probe["memory"]["scope"])
            imported = httpx.post(f"{api}/import", json={"memories": records}, timeout=120)
            imported.raise_for_status()
            figures = anyio.run(_measure, url, project)
    load = round(os.getloadavg()[0], 2)
    print(f"1-minute load: {load}")
    print(
        f"tool definitions (name, description, input schema): {figures['tool_definition_chars']} characters"
    )
    for view, numbers in figures["views"].items():
        print(f"{view} view: " + ", ".join(f"{key} {value}" for key, value in numbers.items()))
    print(f"memory_stats: {figures['memory_stats_chars']} characters")
    for view, numbers in figures["writes"].items():
        if not view.startswith("sample_"):
            print(f"{view} view, writes: " + ", ".join(f"{key} {value}" for key, value in numbers.items()))
    for view in ("default", "detail"):
        for text in figures["writes"].get(f"sample_{view}", []):
            print(f"--- store/update ({view}):\n{text}")
    for name in ("sample_retrieve", "sample_nothing", "sample_stats"):
        print(f"--- {name}:\n{figures[name]}")
    write_results(args.out, "mcp_results", {"machine": machine(), "load_at_end": load, **figures}, None)


if __name__ == "__main__":
    main()
