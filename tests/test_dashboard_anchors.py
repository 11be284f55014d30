"""A memory's anchors on its dashboard page, over plain HTTP through the whole app (request guard,
CSRF, pages), with the real model, the embedded engine and a real git repository.

The page shows each anchor's state as the working tree is edited (unchanged, changed with its age
and share, gone), "Re-anchor" and "Still true" capture it again, a bad place is refused by its
line, a search marks an out-of-date memory, and a POST from another origin or without the form's
token changes nothing.
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from clarity.embedding import EmbeddingProvider
from clarity.http.app import create_app
from clarity.memory import MemoryService
from clarity.memory.anchors import capture
from clarity.models import MemoryCreate
from clarity.project import project_scope

from . import test_anchors
from .conftest import make_settings, open_engine
from .test_anchors import CART, git

BASE = "http://127.0.0.1:8000"
DAY_NS = 86_400 * 1_000_000_000
NOTE = "add_item in src/cart.py appends the item to the cart and returns the cart"
repo = test_anchors.repo  # the fixture: a repository with src/cart.py committed, an hour old
EDITED = CART.replace("    cart.append(item)\n", "    cart.insert(0, item)\n    cart.sort()\n")


@pytest.fixture
def service(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[MemoryService]:
    settings = make_settings(tmp_path / "store")
    svc = MemoryService(settings, open_engine("embedded", tmp_path / "store"), embedder)
    yield svc
    svc.close()


@pytest.fixture
def client(tmp_path: Path, service: MemoryService) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path / "store"), service)
    try:
        yield TestClient(app, base_url=BASE, follow_redirects=False)
    finally:
        app.state.hooks.close()


def anchored(service: MemoryService, repo: Path) -> str:
    scope = project_scope(str(repo))  # as a hook's cwd would: this process now knows the checkout
    result = service.store(MemoryCreate(content=NOTE, scope=scope, anchors=["src/cart.py:9-12"]))
    assert len(result.memory.anchors) == 1, result.memory.anchors
    return result.memory.id


def places(service: MemoryService, memory_id: str) -> list[tuple[object, ...]]:
    """What a memory is anchored to, as captured (a page view may write back a new size and mtime)."""
    keys = ("path", "start", "end", "symbol", "text_hash", "captured_at")
    return [tuple(a.get(k) for k in keys) for a in service.get(memory_id).anchors]


def page(client: TestClient, memory_id: str, status: int = 200) -> tuple[str, str]:
    """(the Anchors section as text, the form token) of a memory's page."""
    response = client.get(f"/memory/{memory_id}")
    assert response.status_code == status, response.text
    return section(response.text), token(response.text)


def section(body: str) -> str:
    found = re.search(r'<section id="anchors".*?</section>', body, re.S)
    assert found, body
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


def token(body: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', body)
    assert found
    return found.group(1)


def edit(path: Path, text: str, days_ago: float = 0) -> None:
    path.write_text(text)
    if days_ago:
        mtime = time.time_ns() - int(days_ago * DAY_NS)
        os.utime(path, ns=(mtime, mtime))


def test_page_follows_the_code_and_both_actions_capture_it_again(
    client: TestClient, service: MemoryService, repo: Path
) -> None:
    memory_id = anchored(service, repo)
    commit = git(repo, "rev-parse", "HEAD")

    shown, csrf = page(client, memory_id)
    assert "src/cart.py:9-12 unchanged" in shown, shown
    assert f"captured just now at commit {commit[:10]}" in shown, shown
    assert f"Checked against the working tree at {repo.resolve()}" in shown, shown
    assert "Confirmed still true" not in shown

    # The function is rewritten (two days ago, by its mtime): changed, with the age and the share.
    edit(repo / "src" / "cart.py", EDITED, days_ago=2.01)
    shown, csrf = page(client, memory_id)
    assert "may be out of date: src/cart.py:9-12 changed 2 days ago" in shown, shown
    assert re.search(r"src/cart\.py:9-12 changed 2 days ago; about \d+% of the anchored lines differ", shown)

    # A search marks it; the plain list does not check (a check per row on every refresh).
    listed = client.get("/", params={"q": "add_item appends the item to the cart"}).text
    row = re.search(rf'<tr data-id="{memory_id}">.*?</tr>', listed, re.S)
    assert row and "may be out of date" in row.group(0), listed
    assert "may be out of date" not in client.get("/").text

    # Re-anchor (nothing typed): captured again where it is, as it is now.
    done = client.post(f"/memory/{memory_id}/reanchor", data={"csrf_token": csrf, "anchors": ""})
    assert done.status_code == 303 and done.headers["location"] == f"/memory/{memory_id}?anchored=1#anchors"
    body = client.get(done.headers["location"]).text
    assert "Re-anchored" in body and "src/cart.py:9-12 unchanged" in section(body), section(body)
    assert service.get(memory_id).confirmed_at is None

    # Changed again, then "Still true": unchanged, and the confirmation shown with its age.
    edit(repo / "src" / "cart.py", EDITED.replace("cart.sort()", "cart.reverse()"), days_ago=3)
    assert "changed 3 days ago" in page(client, memory_id)[0]
    done = client.post(f"/memory/{memory_id}/confirm", data={"csrf_token": csrf})
    assert done.status_code == 303
    shown = section(client.get(done.headers["location"]).text)
    assert "src/cart.py:9-12 unchanged" in shown and "Confirmed still true just now" in shown, shown
    assert service.get(memory_id).confirmed_at is not None

    # New places typed by the user, one per line.
    (repo / "src" / "util.py").write_text("def one():\n    return 1\n")
    done = client.post(
        f"/memory/{memory_id}/reanchor",
        data={"csrf_token": csrf, "anchors": "src/cart.py:3-5\r\n\r\nsrc/util.py"},
    )
    assert done.status_code == 303, done.text
    shown = page(client, memory_id)[0]
    assert "src/cart.py:3-5 unchanged" in shown and "src/util.py unchanged" in shown, shown
    assert [a["path"] for a in service.get(memory_id).anchors] == ["src/cart.py", "src/util.py"]

    # The file is deleted: gone, and kept out of Claude's context.
    (repo / "src" / "util.py").unlink()
    shown = page(client, memory_id)[0]
    assert "src/util.py gone: file deleted" in shown, shown
    assert "kept out of Claude's context until re-anchored or confirmed" in shown, shown


def test_a_bad_place_is_named_by_its_line_and_changes_nothing(
    client: TestClient, service: MemoryService, repo: Path
) -> None:
    memory_id = anchored(service, repo)
    before = places(service, memory_id)
    csrf = page(client, memory_id)[1]
    cases = {
        "src/cart.py:30-12": "anchors, line 1: anchor lines: 30-12 ends before it starts",
        "src/cart.py\nsrc/cart.py:4-x": "anchors, line 2: anchor lines: '4-x' is not a line",
        "src/cart.py:9-12\n\nsrc/nope.py": "anchors, line 3: ",  # from the service: no such file
        "src/cart.py:500-510": "anchors, line 1: anchor lines: 500-510 is past the end of src/cart.py",
        "\n".join(f"src/f{i}.py" for i in range(6)): "anchors: 6 places; at most 5, one per line",
    }
    for typed, message in cases.items():
        answer = client.post(f"/memory/{memory_id}/reanchor", data={"csrf_token": csrf, "anchors": typed})
        assert answer.status_code == 400, (typed, answer.status_code)
        error = re.search(r'id="anchor-error">(.*?)</p>', answer.text, re.S)
        assert error and html.unescape(error.group(1)).startswith(message), (typed, answer.text[-3000:])
        assert html.escape(typed.split("\n")[0]) in answer.text  # what was typed is kept in the form
    assert places(service, memory_id) == before


def test_post_from_another_origin_or_without_the_token_is_refused(
    client: TestClient, service: MemoryService, repo: Path
) -> None:
    memory_id = anchored(service, repo)
    before = places(service, memory_id)
    csrf = page(client, memory_id)[1]
    edit(repo / "src" / "cart.py", EDITED)
    for action in ("confirm", "reanchor"):
        url = f"/memory/{memory_id}/{action}"
        foreign = client.post(url, data={"csrf_token": csrf}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403, foreign.text
        assert client.post(url, data={}).status_code == 403  # the cookie alone is not enough
        assert client.post(url, data={"csrf_token": "0" * 64}).status_code == 403
        assert client.get(url).status_code in (404, 405)  # a link cannot do it
    assert places(service, memory_id) == before and service.get(memory_id).confirmed_at is None
    assert "changed" in page(client, memory_id)[0]


def test_unknown_checkout_and_unanchored_memories_say_so(
    client: TestClient, service: MemoryService, repo: Path
) -> None:
    found = capture(repo, "src/cart.py", (9, 12))
    assert found is not None
    ghost = service.store(
        MemoryCreate(content="a note from another machine's checkout", scope="ghost-0123456789ab"),
        anchors=[found.to_payload()],
    ).memory
    shown, _ = page(client, ghost.id)
    assert "checkout not known to this daemon" in shown, shown
    assert "src/cart.py:9-12 not checked" in shown and "captured just now" in shown, shown
    body = client.get(f"/memory/{ghost.id}").text
    assert 'id="reanchor-form"' not in body and 'id="still-true"' not in body

    plain = service.store(MemoryCreate(content="tabs, not spaces, in Makefiles", scope="global")).memory
    shown, _ = page(client, plain.id)
    assert "a global memory is about no one project's code" in shown, shown

    scope = project_scope(str(repo))
    loose = service.store(MemoryCreate(content="the team prefers small pull requests", scope=scope)).memory
    shown, csrf = page(client, loose.id)
    assert "Not anchored to any file." in shown, shown
    done = client.post(f"/memory/{loose.id}/reanchor", data={"csrf_token": csrf, "anchors": "src/cart.py"})
    assert done.status_code == 303
    assert "src/cart.py unchanged" in page(client, loose.id)[0]
