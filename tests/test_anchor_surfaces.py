"""Anchored memories through every door a caller uses: the MCP tools (a real MCP client over
streamable HTTP and over the stdio shim), the REST API and the CLI, against a real daemon and a
real git repository whose checkout the daemon learns from the X-Clarity-Project directory.

A memory stored with anchors names them in the one-line answer; a search after the anchored code
is edited says it may be out of date, after the file is deleted that it was deleted; specs that
cannot be anchored are refused naming ``anchors[i]`` and why; REST re-anchors and confirms; an
export and an import keep the anchors and the confirmation.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from clarity.models import MAX_ANCHORS

from .daemon_util import Daemon, run_clarity
from .test_mcp import call, http_client, stdio_client

CART = """def add_item(cart, item):
    cart.append(item)
    return cart


def total(cart):
    return sum(item.price for item in cart)


def empty(cart):
    cart.clear()
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(project: Path) -> Path:
    """The ``project`` git repository with src/cart.py committed."""
    (project / "src").mkdir()
    (project / "src" / "cart.py").write_text(CART)
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "cart")
    return project


def _edit_add_item(repo: Path) -> None:
    """Rewrite the anchored lines 1-3 (add_item) and commit, as a session would."""
    cart = repo / "src" / "cart.py"
    cart.write_text(cart.read_text().replace("cart.append(item)\n    return cart", "return [*cart, item]"))
    _git(repo, "commit", "-q", "-am", "add_item returns a new list")


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _marker() -> str:
    return f"k9{uuid.uuid4().hex[:6]}"  # an identifier: a search for it finds the memory by its words


def _hit_line(text: str, marker: str) -> str:
    lines = [line for line in text.splitlines() if marker in line]
    assert len(lines) == 1, text
    return lines[0]


# -- MCP --------------------------------------------------------------------------------------


def test_store_with_anchors_names_them_and_retrieve_tells_when_the_code_changed_or_went(
    shared_daemon: Daemon, repo: Path
) -> None:
    marker = _marker()

    async def main() -> None:
        async with http_client(shared_daemon, str(repo)) as client:
            stored = await call(
                client,
                "store_memory",
                content=f"{marker}: add_item appends in place and returns the same list",
                anchors=["src/cart.py:1-3"],
            )
            assert not stored.is_error, _text(stored)
            answer = _text(stored)
            assert (
                answer.startswith("Stored fact ")
                and "for this project, anchored to src/cart.py:1-3: " in answer
            )
            short = answer.split()[2]

            found = await call(client, "retrieve_memory", query=marker, scope="project")
            line = _hit_line(_text(found), marker)
            assert line.endswith(f"(just now; stored explicitly; id {short})"), line  # unchanged: no note

            _edit_add_item(repo)
            found = await call(client, "retrieve_memory", query=marker, scope="project")
            line = _hit_line(_text(found), marker)
            assert "; stored explicitly; may be out of date: src/cart.py:1-3 changed just now; id " in line

            (repo / "src" / "cart.py").unlink()
            _git(repo, "commit", "-q", "-am", "no more cart")
            found = await call(client, "retrieve_memory", query=marker, scope="project")
            line = _hit_line(_text(found), marker)  # still returned, marked
            assert line.endswith(f"; stored explicitly; src/cart.py:1-3 was deleted; id {short})"), line

            detailed = await call(client, "retrieve_memory", query=marker, scope="project", detail=True)
            report = detailed.structured_content["results"][0]["anchors"]
            assert report["state"] == "gone" and report["injectable"] is False
            assert report["note"] == "src/cart.py:1-3 was deleted"
            assert [(a["label"], a["state"]) for a in report["anchors"]] == [("src/cart.py:1-3", "gone")]

    anyio.run(main)


def test_the_stdio_shim_anchors_from_its_own_directory(shared_daemon: Daemon, repo: Path) -> None:
    marker = _marker()

    async def main() -> None:
        async with stdio_client(shared_daemon, repo) as client:
            stored = await call(
                client,
                "store_memory",
                content=f"{marker}: total sums the prices of the cart's items",
                anchors=["src/cart.py:6-7", "src/cart.py"],
                detail=True,
            )
            assert not stored.is_error, _text(stored)
            anchors = stored.structured_content["memory"]["anchors"]
            assert [(a["path"], a.get("start"), a.get("end")) for a in anchors] == [
                ("src/cart.py", 6, 7),
                ("src/cart.py", None, None),
            ]
            plain = await call(
                client,
                "store_memory",
                content=f"{marker}: empty clears the cart",
                anchors=["src/cart.py:10-11"],
            )
            assert "anchored to src/cart.py:10-11: " in _text(plain), _text(plain)

    anyio.run(main)


@pytest.mark.parametrize(
    ("arguments", "header", "message"),
    [
        (
            {"anchors": ["src/nope.py"]},
            "repo",
            "anchors[0]: anchor path: 'src/nope.py' does not exist in the project",
        ),
        (
            {"anchors": ["src/cart.py", "src/cart.py:40-50"]},
            "repo",
            "anchors[1]: anchor lines: 40-50 is past the end of src/cart.py (11 lines)",
        ),
        (
            {"anchors": ["../outside.txt"]},
            "repo",
            "anchors[0]: anchor path: '../outside.txt' is outside the project",
        ),
        ({"anchors": ["src/cart.py"], "scope": "global"}, "repo", "a global memory belongs to no project"),
        (
            {"anchors": ["src/cart.py"]},
            "unknown-0123456789ab",
            "does not know where project unknown-0123456789ab is",
        ),
        ({"anchors": ["src/cart.py"]}, None, "anchors: this client names no project"),
        (
            {"anchors": ["src/cart.py"] * (MAX_ANCHORS + 1)},
            "repo",
            f"anchors=list: List should have at most {MAX_ANCHORS}",
        ),
        ({"anchors": [""]}, "repo", "anchors.0='': must not be empty"),
        ({"anchors": "src/cart.py"}, "repo", "anchors='src/cart.py': Input should be a valid list"),
    ],
)
def test_specs_that_cannot_be_anchored_are_tool_errors_naming_the_anchor(
    shared_daemon: Daemon, repo: Path, arguments: dict[str, Any], header: str | None, message: str
) -> None:
    (repo.parent / "outside.txt").write_text("not in the project\n")
    project = str(repo) if header == "repo" else header

    async def main() -> None:
        async with http_client(shared_daemon, project) as client:
            result = await call(client, "store_memory", content=f"{_marker()} about the cart", **arguments)
            assert result.is_error, _text(result)
            assert message in _text(result), _text(result)

    anyio.run(main)


def test_the_anchors_argument_states_its_limits(shared_daemon: Daemon, repo: Path) -> None:
    async def main() -> None:
        async with http_client(shared_daemon, str(repo)) as client:
            tools = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        schema = tools["store_memory"]["properties"]["anchors"]
        listed = schema["anyOf"][0]
        assert listed["maxItems"] == MAX_ANCHORS and listed["items"]["maxLength"] > 255
        assert schema["examples"] == [["src/cart.ts:12-30"]]

    anyio.run(main)


# -- REST -------------------------------------------------------------------------------------


def _stored(daemon: Daemon, repo: Path, content: str, anchors: list[str]) -> dict[str, Any]:
    answer = daemon.api("POST", "/memories", str(repo), json={"content": content, "anchors": anchors})
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["memory"])


def _report(daemon: Daemon, repo: Path, marker: str) -> dict[str, Any] | None:
    found = daemon.api("POST", "/search", str(repo), json={"query": marker, "scope": "project"}).json()
    hits = [hit for hit in found["results"] if marker in hit["memory"]["content"]]
    assert len(hits) == 1, found
    return hits[0]["anchors"]


def test_rest_stores_searches_reanchors_and_confirms(shared_daemon: Daemon, repo: Path) -> None:
    marker = _marker()
    memory = _stored(shared_daemon, repo, f"{marker}: add_item mutates the cart", ["src/cart.py:1-3"])
    assert [(a["path"], a["start"], a["end"]) for a in memory["anchors"]] == [("src/cart.py", 1, 3)]
    report = _report(shared_daemon, repo, marker)
    assert report is not None and (report["state"], report["note"]) == ("unchanged", "")

    _edit_add_item(repo)
    report = _report(shared_daemon, repo, marker)
    assert report is not None and report["note"].startswith("may be out of date: src/cart.py:1-3 changed")

    again = shared_daemon.api("POST", f"/memories/{memory['id'][:8]}/reanchor")  # no body: where it is now
    assert again.status_code == 200, again.text
    assert (_report(shared_daemon, repo, marker) or {}).get("state") == "unchanged"

    moved = shared_daemon.api(
        "POST", f"/memories/{memory['id']}/reanchor", json={"anchors": ["src/cart.py:5-6"]}
    )
    assert moved.status_code == 200, moved.text
    assert [(a["start"], a["end"]) for a in moved.json()["anchors"]] == [(5, 6)]

    assert memory["confirmed_at"] is None
    confirmed = shared_daemon.api("POST", f"/memories/{memory['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed_at"] is not None
    assert shared_daemon.api("GET", f"/memories/{memory['id']}").json()["confirmed_at"] is not None


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"content": "x", "anchors": ["src/nope.py"]},
            400,
            "anchors[0]: anchor path: 'src/nope.py' does not",
        ),
        ({"content": "x", "anchors": ["src/cart.py:0-3"]}, 400, "anchors[0]: anchor lines: 0 is below 1"),
        (
            {"content": "x", "anchors": "src/cart.py"},
            400,
            "anchors='src/cart.py': Input should be a valid list",
        ),
        (
            {"content": "x", "anchors": ["src/cart.py"] * (MAX_ANCHORS + 1)},
            400,
            "anchors=list: List should have at most",
        ),
        ({"content": "x", "anchors": [7]}, 400, "anchors.0=7: Input should be a valid string"),
        ({"content": "x", "anchors": ["src/cart.py"], "scope": "global"}, 400, "a global memory belongs"),
    ],
)
def test_rest_store_refuses_bad_anchors_by_name(
    shared_daemon: Daemon, repo: Path, body: dict[str, Any], status: int, message: str
) -> None:
    answer = shared_daemon.api("POST", "/memories", str(repo), json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"], answer.text


def test_rest_reanchor_and_confirm_refusals(shared_daemon: Daemon, repo: Path) -> None:
    memory = _stored(shared_daemon, repo, f"{_marker()}: total is a plain sum", ["src/cart.py:6-7"])
    path = f"/memories/{memory['id']}"
    cases: list[tuple[str, Any, int, str]] = [
        (f"/memories/{uuid.uuid4()}/reanchor", None, 404, "no memory with id"),
        (f"/memories/{uuid.uuid4()}/confirm", None, 404, "no memory with id"),
        ("/memories/not-an-id/confirm", None, 400, "not a memory id"),
        (f"{path}/reanchor", {"anchors": ["src/nope.py"]}, 400, "anchors[0]: anchor path: 'src/nope.py'"),
        (
            f"{path}/reanchor",
            {"anchors": ["a"] * (MAX_ANCHORS + 1)},
            400,
            "anchors=list: List should have at most",
        ),
        (f"{path}/reanchor", {"anchorz": []}, 400, "anchorz"),
        (f"{path}/reanchor", [], 400, "body: expected a JSON object"),
        (f"{path}/confirm", {"anchors": []}, 400, "anchors: unknown key"),
    ]
    for route, body, status, message in cases:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        answer = shared_daemon.api("POST", route, **kwargs)
        assert answer.status_code == status, (route, body, answer.text)
        assert message in answer.json()["error"], (route, body, answer.text)

    (repo / "src" / "cart.py").unlink()
    gone = shared_daemon.api("POST", f"{path}/reanchor")
    assert gone.status_code == 400 and "anchors[0]: src/cart.py:6-7 is gone" in gone.json()["error"], (
        gone.text
    )

    # A memory of a project whose checkout this daemon never saw (imported from another machine).
    elsewhere = {**memory, "id": str(uuid.uuid4()), "scope": "elsewhere-0123456789ab", "content": _marker()}
    imported = shared_daemon.api("POST", "/import", json={"memories": [elsewhere]})
    assert imported.status_code == 200, imported.text
    unknown = shared_daemon.api("POST", f"/memories/{elsewhere['id']}/confirm")
    assert unknown.status_code == 400, unknown.text
    assert "does not know where project elsewhere-0123456789ab is checked out" in unknown.json()["error"]


# -- CLI, export and import -------------------------------------------------------------------


def _clarity(daemon: Daemon, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_clarity({**daemon.env(), "COLUMNS": "250"}, *args, cwd=cwd)


def test_cli_store_anchor_and_search_note(shared_daemon: Daemon, repo: Path) -> None:
    marker = _marker()
    # From src/, a path as the shell sees it there; the answer names it from the project root.
    stored = _clarity(
        shared_daemon, repo / "src", "store", f"{marker}: add_item appends", "--anchor", "cart.py:1-3"
    )
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith("created: ") and "(anchored to src/cart.py:1-3)" in stored.stdout

    refused = _clarity(
        shared_daemon, repo, "store", f"{marker} x", "--anchor", "src/cart.py", "--anchor", "nope.py"
    )
    assert refused.returncode != 0 and "anchors[1]: anchor path: 'nope.py' does not exist" in refused.stderr

    _edit_add_item(repo)
    found = _clarity(shared_daemon, repo, "search", marker, "--scope", "project")
    assert found.returncode == 0, found.stderr
    assert "may be out of date: src/cart.py:1-3 changed just now" in found.stdout, found.stdout


def test_cli_search_and_list_include_superseded(shared_daemon: Daemon, repo: Path) -> None:
    marker = _marker()
    old = f"The {marker} staging database listens on port 6543"
    for text in (old, f"The {marker} staging database listens on port 6544"):
        assert _clarity(shared_daemon, repo, "store", text).returncode == 0
    plain = _clarity(shared_daemon, repo, "search", marker, "--scope", "project")
    assert "6544" in plain.stdout and "6543" not in plain.stdout, plain.stdout
    both = _clarity(shared_daemon, repo, "search", marker, "--scope", "project", "--include-superseded")
    assert "6543" in both.stdout and "superseded by" in both.stdout, both.stdout
    listed = _clarity(shared_daemon, repo, "list", "--scope", "project", "--include-superseded")
    assert old in listed.stdout and "superseded by" in listed.stdout, listed.stdout
    assert old not in _clarity(shared_daemon, repo, "list", "--scope", "project").stdout


def test_export_and_import_keep_anchors_and_confirmation(
    shared_daemon: Daemon, repo: Path, tmp_path: Path
) -> None:
    memory = _stored(shared_daemon, repo, f"{_marker()}: empty clears in place", ["src/cart.py:10-11"])
    assert shared_daemon.api("POST", f"/memories/{memory['id']}/confirm").status_code == 200
    before = shared_daemon.api("GET", f"/memories/{memory['id']}").json()
    assert before["anchors"] and before["confirmed_at"]

    exported = tmp_path / "export.jsonl"
    done = _clarity(shared_daemon, repo, "export", str(exported), "--scope", before["scope"])
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in exported.read_text().splitlines()[1:]]
    record = next(r for r in records if r["id"] == memory["id"])
    assert record["anchors"] == before["anchors"] and record["confirmed_at"] == before["confirmed_at"]
    assert "anchor_paths" not in record  # an engine payload key: an import would refuse it

    assert shared_daemon.api("DELETE", f"/memories/{memory['id']}").status_code == 200
    loaded = _clarity(shared_daemon, repo, "import", str(exported))
    assert loaded.returncode == 0, loaded.stderr
    after = shared_daemon.api("GET", f"/memories/{memory['id']}").json()
    assert (after["anchors"], after["confirmed_at"]) == (before["anchors"], before["confirmed_at"])
    report = _report(shared_daemon, repo, memory["content"].split(":")[0])
    assert report is not None and report["state"] == "unchanged"
