"""A note about a function, anchored to it, followed through the real Claude Code CLI in a real git
repository: read from the request bodies the scripted model receives.

The note is stored the way a model stores one (MCP ``store_memory``); its text names the file and
the function, and the service anchors it on that function. Then, one session per state:

- as written, a related prompt brings it, once (a Read of the file in the same session adds
  nothing), and a Read of the file in a session whose prompt did not bring it does, once;
- after the function is edited and committed, it comes back marked "may be out of date";
- re-anchored (``POST /memories/{id}/reanchor``), then ``git mv``-ed and committed, it follows the
  file: injected unmarked, and its stored anchor names the new path;
- after the file is deleted and committed, it does not come back (though it is kept, and a search
  still returns it, marked gone), while an unanchored note on the same subject still does.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from clarity.integrations.claude_code import install

from ..daemon_util import Daemon
from .claude_cli import claude_env, run_claude_p
from .fake_anthropic import FakeAnthropic, all_text, tool_results
from .test_context_budget_e2e import hook_contexts

pytestmark = pytest.mark.e2e

CART = '''"""A shopping cart."""


def add_item(cart, item):
    """Put an item in the cart."""
    if item is None:
        raise ValueError("item is required")
    cart.append(item)
    return cart


def total(cart):
    return sum(entry.price for entry in cart)
'''
EDITED = CART.replace("    cart.append(item)\n", "    cart.insert(0, item)\n")
NOTE = "add_item in src/cart.py appends the item to the end of the cart"
# Unanchored, on the same subject: it shows the prompt hook still answers once the note is gone.
CONTROL = "The checkout page calls add_item once per click of the Add button"
ASK = "How does add_item put an item into the cart?"
OUT_OF_DATE = "may be out of date"


def git(repo: Path, *args: str) -> str:
    """git in ``repo`` with a fixed identity and no user or system configuration."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def session(
    claude_bin: str, project: Path, home: Path, prompt: str, script: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One ``claude -p`` run; every main request the model received, in order."""
    with FakeAnthropic(script) as fake:
        run = run_claude_p(
            prompt, env=claude_env(home, fake.url), cwd=project, binary=claude_bin, timeout=120
        )
        assert run.ok, run.describe() + "\n" + fake.dump()
        assert fake.script_done and not fake.exhausted, fake.dump()
        return fake.main_requests


def carrying(body: dict[str, Any], short: str) -> list[str]:
    """The hooks whose context in this request names the memory ``short``, in order."""
    return [hook for hook, text in hook_contexts(body) if short in text]


def context_of(body: dict[str, Any], short: str) -> str:
    return next(text for _, text in hook_contexts(body) if short in text)


def read(path: Path) -> dict[str, Any]:
    return {"tool": "Read", "input": {"file_path": str(path)}}


@pytest.fixture
def repo(tmp_path: Path, daemon: Daemon) -> Path:
    """A git repository with src/cart.py committed, Claude Code's hooks pointing at the daemon."""
    repo = tmp_path / "shop"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "cart.py").write_text(CART)
    (repo / "README.md").write_text("# Shop\n\nA small shop.\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "src/cart.py", "README.md")
    git(repo, "commit", "-q", "-m", "cart")
    install("project", "command", project=repo, no_mcp=True, base_url=daemon.url)  # untracked
    return repo


def test_a_note_on_a_function_follows_the_code(
    claude_bin: str, daemon: Daemon, repo: Path, tmp_path: Path
) -> None:
    cart = repo / "src" / "cart.py"
    control = daemon.api(
        "POST", "/memories", str(repo), json={"content": CONTROL, "memory_type": "fact", "scope": "project"}
    ).json()["memory"]
    assert not control["anchors"], control  # nothing it names is a file of the project

    # The model stores the note over MCP; the service anchors it on add_item in src/cart.py.
    mcp_home = tmp_path / "mcp-home"
    mcp_home.mkdir()
    server = {"type": "http", "url": f"{daemon.url}/mcp", "headers": {"X-Clarity-Project": str(repo)}}
    (mcp_home / ".claude.json").write_text(json.dumps({"mcpServers": {"clarity": server}}))
    stored = session(
        claude_bin,
        repo,
        mcp_home,
        "Save a note on the cart code for later sessions.",
        [
            {"tool": "ToolSearch", "input": {"query": "select:mcp__clarity__store_memory"}},
            {"tool": "mcp__clarity__store_memory", "input": {"content": NOTE}},
            {"text": "Stored."},
        ],
    )
    said = tool_results(stored[-1])[-1]["text"]
    assert said.startswith("Stored fact ") and "It replaces" not in said, said
    short = said.removeprefix("Stored fact ").split(" ", 1)[0]
    listed = daemon.api("GET", "/memories", str(repo), params={"scope": "project"}).json()["memories"]
    note = next(m for m in listed if m["content"] == NOTE)
    assert note["id"].startswith(short)
    [anchor] = note["anchors"]
    assert (anchor["path"], anchor.get("symbol")) == ("src/cart.py", "add_item"), anchor
    assert (anchor["start"], anchor["end"]) == (4, 9), anchor
    home = tmp_path / "home"

    # 1. As written: the related prompt brings it, once; the Read of its file after adds nothing.
    bodies = session(claude_bin, repo, home, ASK, [read(cart), {"text": "It appends."}])
    assert carrying(bodies[0], short) == ["UserPromptSubmit"], hook_contexts(bodies[0])
    assert carrying(bodies[-1], short) == ["UserPromptSubmit"], hook_contexts(bodies[-1])
    assert OUT_OF_DATE not in all_text(bodies[-1])
    assert control["id"][:8] in context_of(bodies[0], short)  # the unanchored note came with it

    # A session whose prompt did not bring it: a Read of another file brings nothing, the first
    # Read of its file brings it into the next request, a second Read does not repeat it.
    readme = repo / "README.md"
    bodies = session(
        claude_bin,
        repo,
        tmp_path / "home-read",
        "What is the capital of France?",
        [read(readme), read(cart), read(cart), {"text": "Paris."}],
    )
    assert [carrying(body, short) for body in bodies] == [[], [], ["PreToolUse:Read"], ["PreToolUse:Read"]], [
        hook_contexts(body) for body in bodies
    ]
    assert NOTE in context_of(bodies[2], short) and OUT_OF_DATE not in context_of(bodies[2], short)

    # 2. The function is edited (one line of six) and committed: back, marked out of date.
    cart.write_text(EDITED)
    git(repo, "commit", "-q", "-am", "add_item puts new items first")
    bodies = session(claude_bin, repo, home, ASK, [{"text": "It inserts at the front now."}])
    assert carrying(bodies[0], short) == ["UserPromptSubmit"], hook_contexts(bodies[0])
    given = context_of(bodies[0], short)
    assert f"{OUT_OF_DATE}: src/cart.py" in given and "changed" in given, given

    # 3. Re-anchored where the function is now, then the file is renamed and committed: the note
    # follows it, unmarked, and its stored anchor names the new path.
    answer = daemon.api("POST", f"/memories/{note['id']}/reanchor", str(repo))
    assert answer.status_code == 200, answer.text
    git(repo, "mv", "src/cart.py", "src/basket.py")
    git(repo, "commit", "-q", "-m", "cart.py is basket.py")
    bodies = session(claude_bin, repo, home, ASK, [{"text": "It inserts at the front."}])
    assert carrying(bodies[0], short) == ["UserPromptSubmit"], hook_contexts(bodies[0])
    assert OUT_OF_DATE not in all_text(bodies[0]), context_of(bodies[0], short)
    assert NOTE in context_of(bodies[0], short)
    deadline = time.monotonic() + 10  # the moved anchor may be written back after the reply
    while True:
        anchors = daemon.api("GET", f"/memories/{note['id']}").json()["anchors"]
        if [a["path"] for a in anchors] == ["src/basket.py"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(a["path"], a.get("symbol")) for a in anchors] == [("src/basket.py", "add_item")], anchors

    # 4. The file is deleted and committed: the note does not come back, the control still does.
    git(repo, "rm", "-q", "src/basket.py")
    git(repo, "commit", "-q", "-m", "no more basket")
    bodies = session(claude_bin, repo, home, ASK, [{"text": "There is no add_item any more."}])
    contexts = hook_contexts(bodies[0])
    assert not carrying(bodies[0], short) and short not in all_text(bodies[0]), contexts
    assert any(control["id"][:8] in text for hook, text in contexts if hook == "UserPromptSubmit"), contexts
    kept = daemon.api("GET", f"/memories/{note['id']}")
    assert kept.status_code == 200, kept.text  # kept for history
    found = daemon.api("POST", "/search", str(repo), json={"query": ASK, "scope": "project"}).json()
    hit = next(r for r in found["results"] if r["memory"]["id"] == note["id"])
    assert hit["anchors"]["state"] == "gone" and not hit["anchors"]["injectable"], hit["anchors"]
