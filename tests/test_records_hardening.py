"""One bad stored record must never break a read, and no write may store one (issue 20, defect 4).

An import with ``access_count`` of 10^30 used to be accepted; the engine kept it as the float
1e30, and from then on every list, search, get, export and hook failed (``int_parsing_size``),
so not even ``clarity export`` could back the store up. Two halves are checked against a real
daemon:

- on the way out, records that fail the stored-record schema (planted below the validation,
  straight into the engine, as an older version or a damaged disk would leave them) are left
  out and reported (``unreadable`` in the answer and in stats, one log line per id), while every
  read, the ``UserPromptSubmit`` hook and the ``clarity export`` CLI go on; asking for one by
  id says which id and which field;
- on the way in, the same import is refused with the field and its limit, and nothing stored
  before is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarity.config import IndexParams
from clarity.embedding import LexicalEncoder
from clarity.memory.records import index_text
from clarity.models import MAX_COUNT, Memory, content_hash
from clarity.store.base import PointData
from clarity.store.edge import EdgeStore

from .daemon_util import Daemon, free_port

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
GOOD = [
    "The zebra crossing outside the office is repainted every spring",
    "Zebra crossing lights on Main Street were fixed by the council",
    "Our zebra crossing survey counted 400 pedestrians an hour",
]
# Field -> the damaged value, as the engine holds it after the old import (10^30 became 1e30).
DAMAGE: dict[str, Any] = {"access_count": 10**30, "occurrences": 10**30, "importance": "high"}


def _record(content: str) -> Memory:
    now = datetime.now(UTC)
    return Memory(
        id=str(uuid.uuid4()),
        content=content,
        memory_type="fact",
        scope="global",
        created_at=now,
        updated_at=now,
        content_hash=content_hash(content),
    )


def _plant(root: Path) -> dict[str, str]:
    """Write damaged records straight into the engine, below every validation (the daemon is
    not running yet, so the store is ours). Stored without a dense vector, they also wait for
    the background backfill, which must get past them. Returns field -> id."""
    store = EdgeStore(root / "qdrant", 384, IndexParams())
    lexical = LexicalEncoder()
    planted = {}
    try:
        for field, value in DAMAGE.items():
            memory = _record(f"zebra crossing record damaged in its {field}")
            payload = {**memory.to_payload(), field: value, "vector_state": "pending"}
            store.upsert([PointData(memory.id, None, lexical.document(index_text(memory)), payload)])
            planted[field] = memory.id
    finally:
        store.close()
    return planted


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict[str, str], list[str]]]:
    root = tmp_path_factory.mktemp("records")
    bad = _plant(root)
    daemon = Daemon(root, free_port()).start()
    try:
        daemon.wait_ready()
        good = []
        for content in GOOD:
            created = daemon.api("POST", "/memories", json={"content": content, "scope": "global"})
            assert created.status_code == 201, created.text
            good.append(created.json()["id"])
        yield daemon, bad, good
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log()[-3000:]


def test_list_leaves_damaged_records_out_and_counts_them(
    planted: tuple[Daemon, dict[str, str], list[str]],
) -> None:
    daemon, bad, good = planted
    listed = daemon.api("GET", "/memories", params={"scope": "all", "limit": 50})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert sorted(m["id"] for m in body["memories"]) == sorted(good)
    assert body["unreadable"] == len(bad)
    assert body["total"] == len(good) + len(bad)  # the engine still holds them: nothing deleted
    shown = _cli(daemon.env(), "list", "--scope", "all")
    assert shown.returncode == 0, shown.stderr
    assert f"{len(bad)} stored memories could not be read" in " ".join(shown.stderr.split())


def test_search_and_the_prompt_hook_carry_on(planted: tuple[Daemon, dict[str, str], list[str]]) -> None:
    daemon, bad, good = planted
    found = daemon.api("POST", "/search", json={"query": "zebra crossing", "scope": "all", "limit": 10})
    assert found.status_code == 200, found.text
    ids = [r["memory"]["id"] for r in found.json()["results"]]
    assert set(ids) == set(good)
    assert found.json()["unreadable"] == len(bad)

    event = json.loads((FIXTURES / "UserPromptSubmit.json").read_text())
    event["prompt"] = "When is the zebra crossing outside the office repainted?"
    hook = httpx.post(f"{daemon.url}/hooks/UserPromptSubmit", json=event, timeout=30)
    assert hook.status_code == 200, hook.text
    context = hook.json()["hookSpecificOutput"]["additionalContext"]
    assert GOOD[0] in context
    assert "damaged" not in context


def test_get_names_the_id_and_the_field(planted: tuple[Daemon, dict[str, str], list[str]]) -> None:
    daemon, bad, good = planted
    assert daemon.api("GET", f"/memories/{good[0]}").status_code == 200
    for field, memory_id in bad.items():
        answer = daemon.api("GET", f"/memories/{memory_id}")
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert memory_id in error and field in error, error
        assert "delete it" in error


def test_export_over_rest_and_cli_reports_and_stays_importable(
    planted: tuple[Daemon, dict[str, str], list[str]], tmp_path: Path
) -> None:
    daemon, bad, good = planted
    page = daemon.api("POST", "/export", json={"scope": "all"})
    assert page.status_code == 200, page.text
    assert sorted(m["id"] for m in page.json()["memories"]) == sorted(good)
    reported = page.json()["unreadable"]
    assert len(reported) == len(bad)
    for field, memory_id in bad.items():
        assert any(line.startswith(memory_id) and field in line for line in reported), reported

    target = tmp_path / "backup.jsonl"
    env = daemon.env()
    exported = _cli(env, "export", str(target))
    assert exported.returncode == 0, exported.stderr
    assert f"exported {len(good)} memories" in exported.stdout
    assert all(memory_id in exported.stderr for memory_id in bad.values()), exported.stderr
    # The header's count matches what was written, so the file restores as complete.
    checked = _cli(env, "import", str(target), "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert f"{len(good)} memories read and checked" in checked.stdout


def test_stats_count_and_the_log_names_each_once(planted: tuple[Daemon, dict[str, str], list[str]]) -> None:
    daemon, bad, _ = planted
    for _ in range(2):  # reads again: still one log line per record
        assert daemon.api("GET", "/memories", params={"scope": "all"}).status_code == 200
    stats = daemon.api("GET", "/stats")
    assert stats.status_code == 200, stats.text
    assert stats.json()["unreadable"] == len(bad)
    log = daemon.log()
    for field, memory_id in bad.items():
        lines = [line for line in log.splitlines() if "left out of reads" in line and memory_id in line]
        assert len(lines) == 1, lines
        assert field in lines[0]


def _import_record(**fields: Any) -> dict[str, Any]:
    memory = _record(f"imported record {uuid.uuid4()}")
    return {**memory.model_dump(mode="json"), **fields}


@pytest.mark.parametrize("field", ["access_count", "occurrences"])
def test_import_of_a_huge_counter_is_refused_naming_the_field(
    planted: tuple[Daemon, dict[str, str], list[str]], field: str
) -> None:
    daemon, _, good = planted
    before = daemon.api("GET", "/memories", params={"scope": "all", "limit": 50}).json()["total"]
    answer = daemon.api(
        "POST", "/import", json={"memories": [_import_record(), _import_record(**{field: 10**30})]}
    )
    assert answer.status_code == 400, answer.text
    assert f"memories.1.{field}" in answer.json()["error"] and str(MAX_COUNT) in answer.json()["error"]
    after = daemon.api("GET", "/memories", params={"scope": "all", "limit": 50}).json()
    assert after["total"] == before  # the batch imported nothing, and nothing was lost
    assert set(good) <= {m["id"] for m in after["memories"]}


DEEP: dict[str, Any] = {"g": 1}
for _key in "fedcba":
    DEEP = {_key: DEEP}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"memories": [1, "x"]}, "memories.0"),
        ({"memories": [_import_record(metadata=DEEP)]}, "deep"),
        ({"memories": [_import_record()], "vectors": [[float("nan")] * 384]}, "NaN"),
        ({"memories": [_import_record(created_at="2999-01-01T00:00:00Z")]}, "created_at"),
        ({"memories": [_import_record(tags=["x" * 65])]}, "tags.0"),
    ],
)
def test_import_of_odd_records_is_refused(
    planted: tuple[Daemon, dict[str, str], list[str]], body: dict[str, Any], named: str
) -> None:
    daemon = planted[0]
    text = json.dumps(body)  # NaN as Python writes it: not JSON, and refused as such
    answer = daemon.api("POST", "/import", content=text, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"], answer.json()


def test_counters_saturate_instead_of_breaking_the_record(
    planted: tuple[Daemon, dict[str, str], list[str]],
) -> None:
    """A record imported at the limit and then stored again stays readable at the limit."""
    daemon = planted[0]
    record = _import_record(occurrences=MAX_COUNT, access_count=MAX_COUNT)
    assert daemon.api("POST", "/import", json={"memories": [record]}).status_code == 200
    again = daemon.api("POST", "/memories", json={"content": record["content"], "scope": "global"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
    got = daemon.api("GET", f"/memories/{record['id']}")
    assert got.status_code == 200, got.text
    assert got.json()["occurrences"] == MAX_COUNT


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "clarity", *args],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


SECRET_SCOPE = "glpat-" + "abcdefghij0123456789"  # a valid scope id that is a GitLab token


def test_a_scope_that_is_a_secret_is_refused_on_every_path(
    planted: tuple[Daemon, dict[str, str], list[str]],
) -> None:
    """Found in review: only a literal ``scope`` in a store request was checked; the project
    header and imports stored such a scope, which stats then showed in the clear."""
    daemon, _, _ = planted
    attempts = [
        daemon.api("POST", "/memories", json={"content": "x1", "scope": SECRET_SCOPE}),
        daemon.api("POST", "/memories", project=SECRET_SCOPE, json={"content": "x2", "scope": "project"}),
        daemon.api("POST", "/memories/batch", project=SECRET_SCOPE, json={"memories": [{"content": "x3"}]}),
        daemon.api("POST", "/import", json={"memories": [_import_record(scope=SECRET_SCOPE)]}),
    ]
    for answer in attempts:
        assert answer.status_code == 400 and "scope: looks like a secret" in answer.text, answer.text
    stats = daemon.api("GET", "/stats", params={"scope": "all"}).text
    assert SECRET_SCOPE not in stats
