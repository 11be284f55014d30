"""Anchored memories in the hooks, on a real HookService over the real model and engine (and one
real daemon over HTTP), in a real git repository: what reaches Claude is checked against the
working tree first (changed code flagged on its line, gone or mostly rewritten code left out),
what the learner learns about files is anchored there, and PreToolUse of Read, Edit and Write
brings what is known about the file, once per session."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from clarity.hooks.events import HookEvent
from clarity.hooks.service import HookService
from clarity.hooks.why_not import explain
from clarity.memory import MemoryService
from clarity.models import Memory, MemoryCreate, MemoryType
from clarity.project import project_scope
from clarity.requests import ListRequest

from . import test_hook_budget
from .daemon_util import Daemon
from .test_anchor_surfaces import CART, _git
from .test_hook_budget import context, event

PRICE = """def net(price):
    return price


def gross(price, rate):
    return price * (1 + rate)
"""
TEST_CART = """from src.cart import add_item


def test_add_item():
    assert add_item([1], 2) == [2, 1]
"""


@pytest.fixture
def repo(project: Path) -> Path:
    """A git repository with src/cart.py, src/price.py and tests/test_cart.py committed."""
    (project / "src").mkdir()
    (project / "tests").mkdir()
    (project / "src" / "cart.py").write_text(CART)
    (project / "src" / "price.py").write_text(PRICE)
    (project / "tests" / "test_cart.py").write_text(TEST_CART)
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "cart")
    project_scope(str(project))  # the daemon learns the checkout from a hook's cwd
    return project


served = test_hook_budget.served  # a MemoryService and a HookService on a fresh root


def tool(name: str, repo: Path, session: str, file_path: Path | str) -> HookEvent:
    """PreToolUse of a file tool (Read, Edit, Write) on ``file_path``."""
    return event("PreToolUse.Edit", repo, session, tool_name=name, tool_input={"file_path": str(file_path)})


def line_of(text: str, memory: Memory) -> str:
    lines = [line for line in text.splitlines() if f"id {memory.id[:8]}" in line]
    assert len(lines) == 1, text
    return lines[0]


def test_injected_memories_are_checked_against_the_code_first(
    served: tuple[MemoryService, HookService], repo: Path
) -> None:
    """A note about a function reaches the brief and the prompt; after the function is edited
    and committed it comes with "may be out of date" on its line; after the file is deleted it
    reaches neither, and the why-not lookup says the file is gone."""
    memory, hooks = served
    note = memory.store(
        MemoryCreate(
            content="We decided add_item in src/cart.py appends in place and returns the same list",
            memory_type=MemoryType.decision,
            importance=0.9,
        ),
        project=project_scope(str(repo)),
    ).memory
    assert [(a["path"], a.get("symbol")) for a in note.anchors] == [("src/cart.py", "add_item")]
    asked = "how does add_item treat the list it is given?"

    brief = context(hooks.handle(event("SessionStart", repo, "b1")))
    assert line_of(brief, note).endswith(f"; id {note.id[:8]})")
    assert line_of(context(hooks.handle(event("UserPromptSubmit", repo, "p1", prompt=asked))), note)

    cart = repo / "src" / "cart.py"
    cart.write_text(CART.replace("    cart.append(item)\n", "    cart.append(item)  # in place\n"))
    _git(repo, "commit", "-q", "-am", "comment add_item")
    flagged = rf"; id {note.id[:8]}; may be out of date: src/cart\.py \(add_item\) changed [^;()]+\)$"
    assert re.search(flagged, line_of(context(hooks.handle(event("SessionStart", repo, "b2"))), note))
    prompt_line = line_of(context(hooks.handle(event("UserPromptSubmit", repo, "p2", prompt=asked))), note)
    assert re.search(flagged, prompt_line), prompt_line
    assert "marked may be out of date" in explain(hooks, note, asked, project_scope(str(repo))).reason

    cart.unlink()
    _git(repo, "commit", "-q", "-am", "no cart")
    assert note.id[:8] not in context(hooks.handle(event("SessionStart", repo, "b3")))
    assert note.id[:8] not in context(hooks.handle(event("UserPromptSubmit", repo, "p3", prompt=asked)))
    verdict = explain(hooks, note, asked, project_scope(str(repo)), session_id="p3")
    assert not verdict.chosen and verdict.reason.startswith("The code it is about is gone"), verdict
    assert "src/cart.py" in verdict.reason
    assert memory.get(note.id).id == note.id  # kept for history


def test_a_fix_learned_from_edits_is_anchored_on_the_edited_lines(
    served: tuple[MemoryService, HookService], repo: Path
) -> None:
    """A test fails naming its file and line; two files are edited (one Edit with Claude Code's
    structured patch, one without: its new text is looked for), a third written; the same test
    command passes. The fix names the edited files and is anchored on the lines written, the
    written file and the failing test's line; the error is anchored on that line."""
    memory, hooks = served
    command = "pytest -q tests/test_cart.py"
    hooks.handle(
        event(
            "PostToolUseFailure",
            repo,
            "s",
            tool_input={"command": command},
            error=(
                "Exit code 1\nFAILED tests/test_cart.py::test_add_item - assert [1, 2] == [2, 1]\n"
                "tests/test_cart.py:5: AssertionError"
            ),
        )
    )
    cart = repo / "src" / "cart.py"
    cart.write_text(CART.replace("cart.append(item)", "cart.insert(0, item)"))
    patch = [
        {
            "oldStart": 1,
            "oldLines": 4,
            "newStart": 1,
            "newLines": 4,
            "lines": [
                " def add_item(cart, item):",
                "-    cart.append(item)",
                "+    cart.insert(0, item)",
                "     return cart",
                " ",
            ],
        }
    ]
    edit = {"file_path": str(cart), "old_string": "cart.append(item)", "new_string": "cart.insert(0, item)"}
    hooks.handle(
        event("PostToolUse.Edit", repo, "s", tool_input=edit, tool_response={"structuredPatch": patch})
    )
    price = repo / "src" / "price.py"
    price.write_text(PRICE.replace("    return price\n", "    return round(price, 2)\n", 1))
    edit = {
        "file_path": str(price),
        "old_string": "    return price\n",
        "new_string": "    return round(price, 2)\n",
    }
    hooks.handle(event("PostToolUse.Edit", repo, "s", tool_input=edit, tool_response=None))
    written = repo / "src" / "order.py"
    written.write_text("ORDER = []\n")
    hooks.handle(
        event(
            "PostToolUse.Write", repo, "s", tool_input={"file_path": str(written), "content": "ORDER = []\n"}
        )
    )
    outside = repo.parent / f"elsewhere-{uuid.uuid4().hex[:6]}.py"
    outside.write_text("x = 1\n")
    hooks.handle(
        event("PostToolUse.Write", repo, "s", tool_input={"file_path": str(outside), "content": "x"})
    )
    hooks.handle(event("PostToolUse", repo, "s", tool_input={"command": command}))
    assert hooks.learner.drain(60)

    scope = project_scope(str(repo))
    learned = memory.list(ListRequest(limit=50, scope="project"), project=scope).memories
    fixes = [m for m in learned if m.memory_type == MemoryType.fix]
    assert len(fixes) == 1, learned
    fix = fixes[0]
    assert "Fixed by editing src/cart.py, src/price.py, src/order.py;" in fix.content, fix.content
    placed = [(a["path"], a.get("start"), a.get("end")) for a in fix.anchors]
    assert placed == [
        ("src/cart.py", 2, 2),
        ("src/price.py", 2, 2),
        ("src/order.py", None, None),
        ("tests/test_cart.py", 5, 5),
    ], placed
    errors = [m for m in learned if m.memory_type == MemoryType.error]
    assert [[(a["path"], a.get("start")) for a in m.anchors] for m in errors] == [[("tests/test_cart.py", 5)]]
    commands = [m for m in learned if m.memory_type == MemoryType.command]
    assert commands and all(not m.anchors for m in commands)  # how it is tested is no claim about a file

    # the fix comes back before the next edit of the file, and is flagged once that line changes
    read = context(hooks.handle(tool("Read", repo, "s2", cart)))
    assert f"id {fix.id[:8]}" in read
    cart.write_text(CART.replace("cart.append(item)", "cart.insert(0, item)  # newest first"))
    flagged = context(hooks.handle(tool("Edit", repo, "s3", cart)))
    assert f"id {fix.id[:8]}" not in flagged  # its one anchored line changed: most of what it was about


def test_pre_tool_use_of_a_file_brings_what_is_known_about_it_once_per_session(
    shared_daemon: Daemon, repo: Path, tmp_path: Path
) -> None:
    """Over the real daemon: Read of an anchored file brings its memory, under a title naming
    the file; the same session is not given it again (not by Edit either), another session is;
    a file with nothing anchored, and a file outside the project with a path that matches one
    inside it, get nothing; once the anchored code is rewritten, nothing."""
    marker = f"k9{uuid.uuid4().hex[:6]}"
    stored = shared_daemon.api(
        "POST",
        "/memories",
        str(repo),
        json={"content": f"{marker}: add_item mutates the cart it is given", "anchors": ["src/cart.py:1-3"]},
    )
    assert stored.status_code == 201, stored.text

    def pre(name: str, session: str, file_path: Path | str) -> str:
        body = tool(name, repo, f"{marker}-{session}", file_path).model_dump(exclude_none=True)
        answer = httpx.post(f"{shared_daemon.url}/hooks/PreToolUse", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json().get("hookSpecificOutput", {}).get("additionalContext", ""))

    cart = repo / "src" / "cart.py"
    given = pre("Read", "r1", cart)
    assert re.match(rf"Clarity: what is known about src/cart\.py:\n- \[\w+\] {marker}: ", given), given
    assert pre("Read", "r1", cart) == "" and pre("Edit", "r1", cart) == ""
    assert marker in pre("Edit", "r2", cart)
    assert marker in pre("Write", "r3", "src/cart.py")  # relative to the cwd
    assert pre("Read", "r4", repo / "src" / "price.py") == ""

    other = tmp_path / "other"
    (other / "src").mkdir(parents=True)
    (other / "src" / "cart.py").write_text(CART)
    assert pre("Read", "r5", other / "src" / "cart.py") == ""
    assert pre("Read", "r5", repo / ".." / "other" / "src" / "cart.py") == ""
    assert marker in pre("Read", "r5", cart)

    rewritten = "def append_all(cart, items):\n    cart.extend(items)\n    return len(cart)"
    cart.write_text(
        CART.replace("def add_item(cart, item):\n    cart.append(item)\n    return cart", rewritten)
    )
    assert pre("Read", "r6", cart) == ""


def test_hooks_fail_silent_on_a_damaged_anchor(served: tuple[MemoryService, HookService], repo: Path) -> None:
    """An anchor that fails the schema (a bad hash, a path out of the tree) is skipped: the
    memory is still found by its file and injected, without a note, and no hook fails."""
    memory, hooks = served
    scope = project_scope(str(repo))
    note = memory.store(
        MemoryCreate(content="add_item keeps the cart order stable", memory_type=MemoryType.fact),
        project=scope,
        anchors=[],
    ).memory
    damaged = note.model_copy(
        update={
            "anchors": [
                {"path": "src/cart.py", "text_hash": "not-a-hash", "start": 0},
                {"path": "../../etc/passwd", "size": -1},
            ]
        }
    )
    memory.put_memories([damaged])
    cart = repo / "src" / "cart.py"
    read = context(hooks.handle(tool("Read", repo, "d1", cart)))
    assert line_of(read, note).endswith(f"; id {note.id[:8]})")
    prompt = event("UserPromptSubmit", repo, "d2", prompt="does add_item keep the cart order stable?")
    assert line_of(context(hooks.handle(prompt)), note).endswith(f"; id {note.id[:8]})")
    assert context(hooks.handle(event("SessionStart", repo, "d3"))) is not None
    assert explain(hooks, note, "does add_item keep the cart order stable?", scope).chosen


def test_a_memory_given_before_its_code_changed_is_given_again_flagged(
    served: tuple[MemoryService, HookService], repo: Path
) -> None:
    """Once per session, unless it changed: its code changing is a change worth one more line."""
    memory, hooks = served
    note = memory.store(
        MemoryCreate(content="add_item in src/cart.py appends in place and returns the same list"),
        project=project_scope(str(repo)),
    ).memory
    asked = "how does add_item treat the list it is given?"
    first = context(hooks.handle(event("UserPromptSubmit", repo, "s1", prompt=asked)))
    assert "may be out of date" not in line_of(first, note)
    assert note.id[:8] not in context(hooks.handle(event("UserPromptSubmit", repo, "s1", prompt=asked)))

    cart = repo / "src" / "cart.py"
    cart.write_text(CART.replace("    cart.append(item)\n", "    cart.append(item)  # in place\n"))
    again = context(hooks.handle(event("UserPromptSubmit", repo, "s1", prompt=asked)))
    assert "may be out of date: src/cart.py (add_item) changed" in line_of(again, note)
    assert note.id[:8] not in context(hooks.handle(event("UserPromptSubmit", repo, "s1", prompt=asked)))
