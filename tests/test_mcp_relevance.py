"""A search saying "nothing relevant", and one-line write results, over a real MCP client and daemon.

The daemon runs the bundled model with the default ``hooks.min_similarity``: an unrelated
question must read "nothing relevant" and a related one its memories (the calibrated cut,
checked against real cosines); ``store_memory`` and ``update_memory`` answer in one line, with
the whole record one ``detail`` argument away.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from clarity.config import HooksSettings
from clarity.mcp.results import WEAK_SHOWN, retrieve_text
from clarity.models import Memory
from clarity.relevance import identifiers, is_relevant
from clarity.requests import RetrieveResult, ScoredMemory

from .daemon_util import Daemon, run_clarity
from .test_mcp import http_client

CUT = HooksSettings().min_similarity
PROJECT_FACTS = [
    "We deploy with `make ship`; it tags the release and CI pushes the image to the registry.",
    "The billing service uses PostgreSQL 16; migrations run with `alembic upgrade head`.",
    "Run the unit tests with `pnpm run test:unit`; `pnpm test` has no script.",
    "Prefer small pure functions and type hints everywhere; no default exports in TypeScript.",
]
NOTHING = re.compile(
    rf"Nothing relevant to this query \(closest match: 0\.\d\d similarity, below {CUT:.2f}\)\. "
    "Closest weak matches:"
)


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def _ask(daemon: Daemon, project: Path, tool: str, **arguments: Any) -> Any:
    async with http_client(daemon, str(project)) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    return result


def test_an_unrelated_question_finds_nothing_relevant_and_a_related_one_its_memory(
    shared_daemon: Daemon, project: Path
) -> None:
    async def main() -> None:
        for fact in PROJECT_FACTS:
            await _ask(shared_daemon, project, "store_memory", content=fact)
        for query in ("what is the capital of France", "write a haiku about autumn", "zxqv glorp frobnicate"):
            found = await _ask(shared_daemon, project, "retrieve_memory", query=query, scope="project")
            head, *weak = _text(found).splitlines()
            assert NOTHING.fullmatch(head), (query, _text(found))
            assert len(weak) == WEAK_SHOWN and all(line.startswith("- [fact] ") for line in weak), weak
            detailed = await _ask(
                shared_daemon, project, "retrieve_memory", query=query, scope="project", detail=True
            )
            hits = detailed.structured_content["results"]  # detail still lists the closest
            assert hits and all(hit["similarity"] < CUT for hit in hits), hits
        # Each 0.08 or more above the cut (0.58, 0.74, 0.66 with the bundled model).
        related = (
            ("how do we deploy a release", 0),
            ("why does pnpm test fail", 2),
            ("how do I run billing migrations", 1),
        )
        for query, fact in related:
            found = await _ask(shared_daemon, project, "retrieve_memory", query=query, scope="project")
            lines = _text(found).splitlines()
            assert lines[0].endswith("best match first:"), (query, lines)
            assert lines[1].startswith(f"- [fact] {PROJECT_FACTS[fact]} ("), (query, lines)

    anyio.run(main)


def test_store_and_update_answer_in_one_line(shared_daemon: Daemon, project: Path) -> None:
    marker = f"d0{uuid.uuid4().hex[:6]}"
    content = f"The {marker} docs are built with `make docs`; the site is not committed."

    async def main() -> None:
        created = _text(
            await _ask(shared_daemon, project, "store_memory", content=content, memory_type="command")
        )
        short = re.fullmatch(rf"Stored command (\w{{8}}) for this project: {re.escape(content)}", created)
        assert short is not None, created
        again = _text(
            await _ask(shared_daemon, project, "store_memory", content=content, memory_type="command")
        )
        assert again == f"Already stored as {short.group(1)} (command, just now): {content}"
        close = _text(
            await _ask(
                shared_daemon, project, "store_memory", content=content.rstrip("."), memory_type="command"
            )
        )
        assert (
            close
            == f"Merged into {short.group(1)}, a near duplicate (command, just now, seen 3 times): {content}"
        )
        elsewhere = _text(
            await _ask(shared_daemon, project, "store_memory", content=f"{marker} is global", scope="global")
        )
        assert re.fullmatch(rf"Stored fact \w{{8}} for every project: {marker} is global", elsewhere), (
            elsewhere
        )
        updated = _text(
            await _ask(
                shared_daemon,
                project,
                "update_memory",
                memory_id=short.group(1),
                content=content + " Always.",
            )
        )
        assert updated == f"Updated command {short.group(1)}: {content} Always."
        for text in (created, again, close, updated):
            assert "content_hash" not in text and "{" not in text

    anyio.run(main)


def test_store_and_update_give_the_whole_record_with_detail(shared_daemon: Daemon, project: Path) -> None:
    content = f"The {uuid.uuid4().hex} cache is flushed nightly."

    async def main() -> None:
        stored = await _ask(shared_daemon, project, "store_memory", content=content, detail=True)
        assert json.loads(_text(stored)) == stored.structured_content
        assert stored.structured_content["status"] == "created"
        record = stored.structured_content["memory"]
        assert set(record) == set(Memory.model_fields) and record["content"] == content
        updated = await _ask(
            shared_daemon, project, "update_memory", memory_id=record["id"], importance=0.9, detail=True
        )
        assert json.loads(_text(updated)) == updated.structured_content
        assert (
            updated.structured_content["id"] == record["id"]
            and updated.structured_content["importance"] == 0.9
        )

    anyio.run(main)


def _hit(content: str, similarity: float | None) -> ScoredMemory:
    now = datetime.now(UTC)
    memory = Memory(
        id=str(uuid.uuid4()),
        content=content,
        memory_type="fact",
        scope="global",
        source="manual",
        created_at=now,
        updated_at=now,
        content_hash="h",
    )
    return ScoredMemory(memory=memory, score=0.5, similarity=similarity)


def test_what_the_cut_does_not_judge() -> None:
    """Words-only results (no cosine) are listed; a hit naming an identifier of the query too."""
    weak = RetrieveResult(results=[_hit("unrelated text", 0.1)], mode="hybrid", scopes=None)
    assert retrieve_text(weak, None, "capital of France", 0.4).startswith(
        "Nothing relevant to this query (closest match: 0.10 similarity, below 0.40)."
    )
    words = RetrieveResult(
        results=[_hit("unrelated text", None)], mode="lexical", scopes=None, degraded="model loading"
    )
    assert retrieve_text(words, None, "unrelated", 0.4).startswith("1 memory, best match first:")
    named = RetrieveResult(results=[_hit("ERR_PNPM_NO_SCRIPT in CI", 0.2)], mode="hybrid", scopes=None)
    assert retrieve_text(named, None, "why err_pnpm_no_script?", 0.4).startswith(
        "1 memory, best match first:"
    )


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("fix the failing test in parser.py", {"parser.py"}),
        ("ERR_CONN_RESET on E4711", {"err_conn_reset", "e4711"}),
        ("what is the capital of France", set()),
        # Sentence punctuation, abbreviations and word pairs name nothing: they let an unrelated
        # memory that happens to hold "tests." past the cut.
        ("Please fix the failing tests.", set()),
        ("e.g. the client/server split, and/or U.S. rules", set()),
        ("see (src/parser.py).", {"src/parser.py"}),
        ("run ./scripts/test.sh on node.js v18.2", {"scripts/test.sh", "node.js", "v18.2"}),
    ],
)
def test_identifiers_of_a_query(query: str, names: set[str]) -> None:
    assert identifiers(query) == names
    assert is_relevant(0.0, f"see {' '.join(names)}", names, 0.5) is bool(names)


def test_a_name_is_matched_as_a_whole_token() -> None:
    assert not is_relevant(
        0.1, "Lunch is at noon; bring snacks for the tests.", identifiers("fix the tests."), 0.5
    )
    assert not is_relevant(0.1, "build failed with E47110", {"e4711"}, 0.5)
    assert is_relevant(0.1, "build failed with E4711, again", {"e4711"}, 0.5)
    assert is_relevant(0.1, "the bug is in src/parser.py:12", {"parser.py"}, 0.5)


def test_clarity_search_says_when_nothing_fits(shared_daemon: Daemon, project: Path) -> None:
    """`clarity search` judges by the same rule: the closest rows are shown, then one line."""
    scope = f"cli-relevance-{uuid.uuid4().hex[:8]}"
    for fact in PROJECT_FACTS:
        assert (
            shared_daemon.api("POST", "/memories", json={"content": fact, "scope": scope}).status_code == 201
        )
    env = {**shared_daemon.env(), "COLUMNS": "250"}  # no wrapped rows
    unrelated = run_clarity(env, "search", "what is the capital of France", "--scope", scope, cwd=project)
    assert unrelated.returncode == 0, unrelated.stderr
    assert re.search(
        rf"Nothing relevant: the closest match has similarity 0\.\d\d, below {CUT:.2f}\.", unrelated.stdout
    )
    related = run_clarity(env, "search", "how do we deploy a release", "--scope", scope, cwd=project)
    assert related.returncode == 0 and "make ship" in related.stdout, related.stdout
    assert "Nothing relevant" not in related.stdout
