"""Anchored memories through ``MemoryService``, on both engines, in a real git repository:
captured on store (from a caller's specs and from the files its text names), re-checked on every
retrieval (unchanged, changed with a note, moved after a rename and written back, gone), found
per file, re-anchored and confirmed; specs that cannot be anchored are refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from clarity.memory.anchor_checks import CannotAnchor
from clarity.memory.service import MemoryService
from clarity.models import MemoryCreate
from clarity.project import project_scope
from clarity.requests import RetrieveRequest

CART = """def add_item(cart, item):
    cart.append(item)
    return cart


def total(cart):
    return sum(cart)
"""
NOTE = "add_item in src/cart.py appends the item to the end of the cart list"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "src").mkdir(parents=True)
    (root / "src" / "cart.py").write_text(CART)
    (root / "README.md").write_text("shop\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "init")
    # An mtime well in the past: a size-and-mtime match is then trusted without a read.
    old = time.time() - 3600
    os.utime(root / "src" / "cart.py", (old, old))
    return root


def _scope(repo: Path) -> str:
    return project_scope(str(repo))  # the daemon learns the checkout's root the same way


def _report(service: MemoryService, scope: str, memory_id: str):
    found = service.retrieve(RetrieveRequest(query="add_item appends to the cart", scope=scope, limit=5))
    hit = next(r for r in found.results if r.memory.id == memory_id)
    return hit.anchors


def test_a_mentioned_file_is_anchored_on_the_named_function(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    stored = service.store(MemoryCreate(content=NOTE, scope=scope))
    anchors = stored.memory.anchors
    assert [(a["path"], a.get("symbol")) for a in anchors] == [("src/cart.py", "add_item")]
    report = _report(service, scope, stored.id)
    assert report is not None and report.state == "unchanged" and report.injectable and report.note == ""


def test_an_edit_is_flagged_a_rename_followed_and_a_deletion_gone(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    stored = service.store(MemoryCreate(content=NOTE, scope=scope))
    cart = repo / "src" / "cart.py"

    cart.write_text(CART.replace("    cart.append(item)\n", "    cart.insert(0, item)\n    cart.sort()\n"))
    report = _report(service, scope, stored.id)
    assert report.state == "changed"
    assert report.note.startswith("may be out of date: src/cart.py (add_item) changed")
    assert report.injectable  # one line of three changed: flagged, still shown

    cart.write_text(CART)
    _git(repo, "mv", "src/cart.py", "src/basket.py")
    _git(repo, "commit", "-qam", "rename")
    report = _report(service, scope, stored.id)
    assert (
        report.state == "moved"
        and report.injectable
        and report.anchors[0].detail == "renamed from src/cart.py"
    )
    deadline = time.monotonic() + 5  # written back by the keeper's background thread
    while service.get(stored.id).anchors[0]["path"] != "src/basket.py":
        assert time.monotonic() < deadline, service.get(stored.id).anchors
        time.sleep(0.05)
    assert [m.memory.id for m in service.about_file(scope, "src/basket.py")] == [stored.id]
    assert service.about_file(scope, "src/cart.py") == []

    (repo / "src" / "basket.py").unlink()
    report = _report(service, scope, stored.id)
    assert report.state == "gone" and not report.injectable
    assert report.note == "symbol add_item removed from src/basket.py" or "deleted" in report.note
    assert service.get(stored.id).content == NOTE  # kept for history


def test_explicit_specs_and_what_is_refused(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    stored = service.store(MemoryCreate(content="the cart helpers", scope=scope, anchors=["src/cart.py:6-7"]))
    assert [(a["path"], a["start"], a["end"]) for a in stored.memory.anchors] == [("src/cart.py", 6, 7)]
    refusals = {
        "nope.py": "anchors[0]: anchor path: 'nope.py' does not exist in the project",
        "src/cart.py:40-41": "past the end of src/cart.py (7 lines)",
        "../outside.py": "anchors[0]",
        "src/cart.py:9-2": "ends before it starts",
    }
    (repo.parent / "outside.py").write_text("x = 1\n")
    for spec, words in refusals.items():
        with pytest.raises(CannotAnchor, match=None) as caught:
            service.store(MemoryCreate(content=f"about {spec}", scope=scope, anchors=[spec]))
        assert words in str(caught.value), (spec, str(caught.value))
    with pytest.raises(CannotAnchor, match="a global memory belongs to no project"):
        service.store(MemoryCreate(content="global one", scope="global", anchors=["src/cart.py"]))
    with pytest.raises(CannotAnchor, match="does not know where project"):
        service.store(MemoryCreate(content="unknown one", scope="elsewhere-0123456789ab", anchors=["a.py"]))
    # Nothing stored by a refusal: only the first memory is there.
    assert service.stats(scope=scope).total == 1


def test_reanchor_and_confirm(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    stored = service.store(MemoryCreate(content=NOTE, scope=scope))
    cart = repo / "src" / "cart.py"
    cart.write_text(CART.replace("cart.append(item)", "cart.insert(0, item)"))
    assert _report(service, scope, stored.id).state == "changed"

    confirmed = service.confirm(stored.id[:8])
    assert confirmed.confirmed_at is not None
    assert _report(service, scope, stored.id).state == "unchanged"

    moved = service.reanchor(stored.id, ["README.md"])
    assert [a["path"] for a in moved.anchors] == ["README.md"]
    assert service.about_file(scope, "src/cart.py") == []
    with pytest.raises(CannotAnchor, match=r"anchors\[0\]"):
        service.reanchor(stored.id, ["missing.py"])
    assert [a["path"] for a in service.get(stored.id).anchors] == ["README.md"]  # a refusal changes nothing

    (repo / "README.md").unlink()
    with pytest.raises(CannotAnchor, match="is gone"):
        service.reanchor(stored.id)


def test_bulk_stores_anchor_what_they_name(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    results = service.store_many(
        [
            MemoryCreate(content="named", scope=scope, anchors=["src/cart.py"]),
            MemoryCreate(content="mentions src/cart.py only", scope=scope),
        ]
    )
    assert [len(r.memory.anchors) for r in results] == [1, 0]


def test_a_restarted_daemon_knows_the_checkouts_it_saw(tmp_path: Path, repo: Path) -> None:
    from clarity import project

    saved = tmp_path / "app-data" / "project-roots.json"
    saved.parent.mkdir()
    project.remember_roots(saved)
    project._cache.clear()
    project._roots.clear()
    scope = _scope(repo)
    assert json.loads(saved.read_text()) == {scope: str(repo.resolve())}

    project._roots.clear()  # a new process: nothing seen yet
    project.remember_roots(saved)
    assert project.known_root(scope) == repo.resolve()

    project._roots.clear()
    saved.write_text("{not json")  # damaged: ignored, learned again from the next hook
    project.remember_roots(saved)
    assert project.known_root(scope) is None


def test_storing_a_known_text_again_with_places_anchors_it(service: MemoryService, repo: Path) -> None:
    scope = _scope(repo)
    first = service.store(MemoryCreate(content="the cart helpers are pure functions", scope=scope))
    assert first.memory.anchors == []
    again = service.store(
        MemoryCreate(content="the cart helpers are pure functions", scope=scope, anchors=["src/cart.py:6-7"])
    )
    assert again.status == "duplicate" and again.id == first.id
    assert [(a["path"], a["start"]) for a in again.memory.anchors] == [("src/cart.py", 6)]
    assert [(a["path"], a["start"]) for a in service.get(first.id).anchors] == [("src/cart.py", 6)]
