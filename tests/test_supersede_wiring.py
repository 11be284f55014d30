"""Facts that supersede, wired into the store: a new value for the same thing marks the older
memory superseded (kept as history, linked both ways), and reads leave it out unless asked;
on both engines, with the real model."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest

from clarity.embedding import create_embedding_provider
from clarity.mcp.results import entry, store_text
from clarity.memory.service import MemoryService
from clarity.models import MAX_PREVIOUS_VERSIONS, MemoryCreate, MemoryPatch, MemoryType, Source
from clarity.requests import ForgetRequest, ListRequest, RetrieveRequest
from clarity.store.base import PAYLOAD_INDEXES, MemoryFilter

from .conftest import make_settings, open_engine
from .daemon_util import Daemon
from .test_mcp import call, http_client

OLD = "The staging database listens on port 6543"
NEW = "The staging database listens on port 6544"


def _store(service: MemoryService, content: str, **fields: object) -> str:
    result = service.store(MemoryCreate(content=content, scope="global", **fields))  # type: ignore[arg-type]
    assert result.status == "created", result
    return result.id


def _listed(service: MemoryService, include: bool = False) -> list[str]:
    page = service.list(ListRequest(scope="global", include_superseded=include))
    return [memory.content for memory in page.memories]


def _found(service: MemoryService, query: str, include: bool = False) -> list[str]:
    result = service.retrieve(RetrieveRequest(query=query, scope="global", include_superseded=include))
    return [hit.memory.content for hit in result.results]


def test_a_new_value_supersedes_the_older_memory_and_links_both(service: MemoryService) -> None:
    old_id = _store(service, OLD)
    result = service.store(MemoryCreate(content=NEW, scope="global"))
    assert result.status == "created"
    assert [(s.id, s.content, s.reason) for s in result.superseded] == [(old_id, OLD, "6543 -> 6544")]
    assert result.memory.supersedes == [old_id] == service.get(result.id).supersedes
    old = service.get(old_id)
    assert old.superseded_by == result.id and old.supersede_reason == "6543 -> 6544"
    assert old.superseded_at is not None and old.superseded_at >= old.created_at
    assert "It replaces" in store_text(result, None) and OLD in store_text(result, None)


def test_reads_leave_superseded_memories_out_unless_asked(service: MemoryService) -> None:
    old_id = _store(service, OLD)
    _store(service, NEW)
    assert _listed(service) == [NEW]
    assert service.list(ListRequest(scope="global")).total == 1
    assert _listed(service, include=True) == [NEW, OLD]
    assert OLD not in _found(service, "which port does the staging database listen on")
    assert OLD in _found(service, "which port does the staging database listen on", include=True)
    # Both engines apply the same filter field, and the field has a payload index on both.
    assert service.db.count(MemoryFilter(exclude_superseded=True)) == 1
    assert service.db.count(MemoryFilter()) == 2
    assert PAYLOAD_INDEXES["superseded_at"] == "float"
    shown = entry(service.get(old_id), service.get(old_id).created_at)
    assert "superseded by" in shown


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (OLD, "The production database listens on port 6544"),  # another subject: a qualifier differs
        ("Run the unit tests with pytest -q", "Run the unit tests with pytest -q and also ruff check"),
        ("The auth-service listens on 8080", "The billing-service listens on 8080"),
    ],
)
def test_a_compatible_or_other_subject_memory_is_not_superseded(
    service: MemoryService, first: str, second: str
) -> None:
    first_id = _store(service, first)
    result = service.store(MemoryCreate(content=second, scope="global"))
    assert result.superseded == [] and result.memory.supersedes == []
    assert service.get(first_id).superseded_by is None
    assert set(_listed(service)) == {first, second}


def test_only_statements_in_the_same_scope_supersede(service: MemoryService) -> None:
    # The same words as an error (what happened) and in another project: the detector alone
    # would say yes to both; the kind and the scope say no.
    error_id = _store(service, OLD, memory_type=MemoryType.error)
    other_scope = service.store(MemoryCreate(content=OLD, scope="other-project")).id
    _store(service, NEW)
    assert service.get(error_id).superseded_by is None  # an error records what happened
    assert service.get(other_scope).superseded_by is None


def test_learned_commands_never_supersede_each_other(service: MemoryService) -> None:
    first = _store(
        service, "Built or tested with `pytest -q`", memory_type=MemoryType.command, source=Source.hook
    )
    _store(service, "Built or tested with `pytest -x`", memory_type=MemoryType.command, source=Source.hook)
    assert service.get(first).superseded_by is None


def test_stating_the_old_value_again_makes_it_current_and_deleting_the_new_one_revives(
    service: MemoryService,
) -> None:
    _store(service, OLD)
    new_id = _store(service, NEW)
    again = service.store(MemoryCreate(content=OLD, scope="global"))
    assert again.status == "created" and [s.id for s in again.superseded] == [new_id]
    assert _listed(service) == [OLD]
    service.delete(again.id)  # the newest value was wrong: the one it replaced is current again
    assert _listed(service) == [NEW]


def test_update_keeps_the_previous_versions(service: MemoryService) -> None:
    memory_id = _store(service, "The release branch is release-1")
    for n in range(2, MAX_PREVIOUS_VERSIONS + 3):
        service.update(memory_id, MemoryPatch(content=f"The release branch is release-{n}"))
    service.update(memory_id, MemoryPatch(importance=0.9))  # no new text: no new version
    memory = service.get(memory_id)
    kept = [version.content for version in memory.previous_versions]
    assert kept == [f"The release branch is release-{n}" for n in range(MAX_PREVIOUS_VERSIONS + 1, 1, -1)]
    assert memory.previous_versions[0].updated_at <= memory.updated_at


def test_previous_versions_are_redacted_like_content(service: MemoryService, tmp_path: Path) -> None:
    memory_id = _store(service, "The deploy token is stored in the vault")
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    service.update(memory_id, MemoryPatch(content=f"The deploy token is {secret}"))
    service.update(memory_id, MemoryPatch(content="The deploy token lives in the vault"))
    versions = service.get(memory_id).previous_versions
    assert versions and all(secret not in v.content for v in versions)


def test_the_dashboard_shows_the_chain_and_the_previous_versions(
    shared_daemon: Daemon, project: Path
) -> None:
    def store(content: str) -> str:
        answer = shared_daemon.api("POST", "/memories", str(project), json={"content": content})
        return str(answer.json()["id"])

    old_id, new_id = store(OLD), store(NEW)
    shared_daemon.api("PATCH", f"/memories/{new_id}", json={"content": NEW + " (TCP)"})
    old_page = httpx.get(f"{shared_daemon.url}/memory/{old_id}", timeout=30).text
    assert f'Superseded by <a href="/memory/{new_id}">{new_id[:8]}</a>' in old_page, old_page
    assert "(6543 -&gt; 6544)" in old_page
    new_page = httpx.get(f"{shared_daemon.url}/memory/{new_id}", timeout=30).text
    assert f'Replaces <a href="/memory/{old_id}">{old_id[:8]}</a>' in new_page
    assert "Previous versions (1)" in new_page and f"<li>{NEW} " in new_page
    # The lists leave the older one out unless asked, and then mark it.
    listed = httpx.get(f"{shared_daemon.url}/", params={"q": "staging database port"}, timeout=30).text
    assert f'data-id="{new_id}"' in listed and f'data-id="{old_id}"' not in listed
    both = httpx.get(
        f"{shared_daemon.url}/", params={"q": "staging database port", "superseded": "1"}, timeout=30
    ).text
    row = both[both.index(f'data-id="{old_id}"') :].split("</tr>")[0]
    assert 'class="anchor-mark superseded-mark"' in row and "(6543 -&gt; 6544)" in row, row
    plain = httpx.get(f"{shared_daemon.url}/", params={"superseded": "1"}, timeout=30).text
    assert f'data-id="{old_id}"' in plain
    shared_daemon.api("DELETE", f"/memories/{new_id}")
    shared_daemon.api("DELETE", f"/memories/{old_id}")


def test_mcp_tools_name_the_replaced_memory_and_list_it_only_when_asked(
    shared_daemon: Daemon, project: Path
) -> None:
    async def exercise() -> tuple[str, str, str, str]:
        async with http_client(shared_daemon, str(project)) as client:
            first = await call(client, "store_memory", content=OLD)
            second = await call(client, "store_memory", content=NEW)
            listed = await call(client, "list_memories", scope="project")
            everything = await call(client, "list_memories", scope="project", include_superseded=True)
            return tuple(result.content[0].text for result in (first, second, listed, everything))  # type: ignore[return-value]

    first, second, listed, everything = anyio.run(exercise)
    old_short = first.removeprefix("Stored fact ").split(" ", 1)[0]
    new_short = second.removeprefix("Stored fact ").split(" ", 1)[0]
    assert second.splitlines()[1] == f"It replaces {old_short} (6543 -> 6544): {OLD}", second
    assert OLD not in listed and NEW in listed, listed
    assert f"superseded by {new_short}" in everything and OLD in everything, everything


def test_forgetting_the_new_value_makes_the_older_one_current_again(service: MemoryService) -> None:
    old_id = _store(service, OLD)
    _store(service, NEW, tags=["wrong-turn"])
    assert _listed(service) == [NEW]
    forgotten = service.forget(ForgetRequest(scope="global", tags=["wrong-turn"]))
    assert forgotten.deleted == 1
    assert _listed(service) == [OLD]  # as a single delete: the value it replaced is current again
    assert service.get(old_id).superseded_by is None


def test_a_memory_stored_while_the_model_loads_supersedes_once_its_vector_comes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    embedder = create_embedding_provider(settings.embedding)  # not started: the model is not loaded
    service = MemoryService(settings, open_engine("embedded", tmp_path), embedder)
    try:
        old_id = _store(service, OLD)
        new_id = _store(service, NEW)
        assert service.get(old_id).superseded_by is None  # no vector yet: no neighbours to compare
        service.start_background()  # waits for the model, then backfills
        embedder.start_loading()
        deadline = time.monotonic() + 120
        while service.db.count(MemoryFilter(pending_vector=True)) and time.monotonic() < deadline:
            time.sleep(0.2)
        old, new = service.get(old_id), service.get(new_id)
        # The older one was backfilled first and found nothing newer; the newer one replaced it.
        assert old.superseded_by == new_id and new.supersedes == [old_id]
        assert _listed(service) == [NEW]
    finally:
        service.close()
