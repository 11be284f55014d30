"""List filters, sort orders and bulk forget on both real engines."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryType, Source
from clarity.requests import ForgetRequest, ListRequest


def _seed(service: MemoryService) -> dict[str, str]:
    ids = {}
    rows = [
        ("the build uses make release", MemoryType.command, Source.hook, 0.2, "proj-a"),
        ("prefer tabs over spaces in Go files", MemoryType.preference, Source.manual, 0.9, "proj-a"),
        ("imported note about the staging cluster", MemoryType.note, Source.import_, 0.4, "proj-a"),
        ("global habit: write tests first", MemoryType.preference, Source.manual, 0.7, "global"),
        ("other project uses cargo nextest", MemoryType.command, Source.hook, 0.3, "proj-b"),
    ]
    for content, kind, source, importance, scope in rows:
        result = service.store(
            MemoryCreate(content=content, memory_type=kind, source=source, importance=importance, scope=scope)
        )
        ids[content] = result.id
        time.sleep(0.01)  # distinct created_at for the sort checks
    return ids


def _contents(service: MemoryService, **fields: object) -> list[str]:
    page = service.list(ListRequest(**fields), project="proj-a")  # type: ignore[arg-type]
    return [m.content for m in page.memories]


def test_list_filters_by_source_and_importance(service: MemoryService) -> None:
    _seed(service)
    assert _contents(service, scope="project", sources=["hook"]) == ["the build uses make release"]
    assert _contents(service, scope="all", min_importance=0.65) == [
        "global habit: write tests first",
        "prefer tabs over spaces in Go files",
    ]
    assert _contents(service, scope="project", max_importance=0.3) == ["the build uses make release"]


def test_list_sort_orders(service: MemoryService) -> None:
    _seed(service)
    newest = _contents(service, scope="project")
    assert _contents(service, scope="project", sort="oldest") == list(reversed(newest))
    by_importance = _contents(service, scope="all", sort="importance")
    assert by_importance[0] == "prefer tabs over spaces in Go files"
    assert by_importance[-1] == "the build uses make release"


def test_forget_dry_run_counts_and_keeps(service: MemoryService) -> None:
    _seed(service)
    result = service.forget(ForgetRequest(memory_types=["command"], scope="all"), dry_run=True)
    assert (result.matched, result.deleted, result.dry_run) == (2, 0, True)
    assert {m.content for m in result.sample} == {
        "the build uses make release",
        "other project uses cargo nextest",
    }
    assert service.db.count() == 5


def test_forget_deletes_only_the_matching_memories(service: MemoryService) -> None:
    ids = _seed(service)
    result = service.forget(ForgetRequest(scope="project", max_importance=0.5), project="proj-a")
    assert (result.matched, result.deleted) == (2, 2)
    remaining = {m.id for m in service.list(ListRequest(scope="all", limit=50)).memories}
    assert remaining == {
        ids["prefer tabs over spaces in Go files"],
        ids["global habit: write tests first"],
        ids["other project uses cargo nextest"],
    }


def test_forget_by_age(service: MemoryService) -> None:
    _seed(service)
    assert service.forget(ForgetRequest(scope="all", older_than_days=1)).matched == 0
    old = service.store(MemoryCreate(content="an ancient memory", scope="global"))
    service.db.set_payload(old.id, {"created_at": time.time() - 40 * 86400})
    result = service.forget(ForgetRequest(scope="all", older_than_days=30))
    assert (result.matched, result.deleted) == (1, 1)
    assert service.db.count() == 5


def test_forget_needs_a_criterion() -> None:
    with pytest.raises(ValidationError, match="at least one of scope"):
        ForgetRequest()
