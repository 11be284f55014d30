"""`clarity import --from claude-code`: Claude Code's CLAUDE.md files, AGENTS.md and auto memory,
found where Claude Code 2.1.330 keeps them, imported into the right scopes, once.

Every test runs under a temporary HOME (never the real ``~/.claude``), against a real daemon
and the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clarity.integrations.claude_memory import project_key, repository_roots
from clarity.lifecycle.importers import read_markdown
from clarity.project import project_scope

from .daemon_util import Daemon, free_port, run_clarity

USER_MD = "# Style\nI prefer tabs over spaces.\n\n# Tools\nUse uv, never pip directly.\n"
PROJECT_MD = (
    "# Acme API\n\n"
    "## Build\n```bash\n# install the dependencies first\nmake deps\nmake build\n```\n\n"
    "## Tests\nRun pytest -x -q before pushing.\n\n"
    "## Deploy\nDeploys go through the staging cluster in eu-west-3.\n"
)
TOPIC_MD = (
    "---\nname: use-pnpm\ndescription: The user wants pnpm, not npm\nmetadata:\n  type: feedback\n---\n"
    "Install packages with pnpm.\n**Why:** the lockfile is pnpm's.\n"
)
INDEX_MD = "# Memory index\n- [Use pnpm](use-pnpm.md) — package manager choice\n\nThe CI runners are arm64.\n"


def test_project_key_is_claude_codes() -> None:
    """Expected values computed with Claude Code 2.1.330's own function (its binary's JS, run by node)."""
    assert project_key("/home/user/my.project") == "-home-user-my-project"
    assert project_key("/srv/répo_2") == "-srv-r-po-2"
    assert project_key("/tmp/ü😀/x") == "-tmp-----x"  # a non-BMP character is two UTF-16 units
    long = "/" + "very-long-directory-name/" * 12 + "repo"
    assert project_key(long) == long.replace("/", "-")[:200] + "-s8hcrj"


def test_a_worktree_keys_auto_memory_by_its_main_checkout(tmp_path: Path) -> None:
    main = tmp_path / "main"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    git = ["git", "-C", str(main), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run([*git, "worktree", "add", "-q", str(tmp_path / "wt")], check=True)
    (tmp_path / "wt" / "sub").mkdir()
    assert repository_roots(tmp_path / "wt" / "sub") == (tmp_path / "wt", main)
    assert repository_roots(main) == (main, main)
    assert repository_roots(Path("/")) == (None, None)


def test_heading_split_skips_code_fences_and_bare_headings(tmp_path: Path) -> None:
    note = tmp_path / "CLAUDE.md"
    note.write_text(PROJECT_MD, encoding="utf-8")
    parsed = read_markdown(note, "global", "heading")
    headings = [r.metadata.get("heading") for r in parsed.requests]
    assert headings == ["Build", "Tests", "Deploy"]  # not "install the dependencies first", not "Acme API"
    assert "make build" in parsed.requests[0].content


def clarity(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_clarity(env, *args, cwd=cwd)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("claude-import-root"), free_port()).running(ready=True) as running:
        yield running


@pytest.fixture
def machine(tmp_path: Path, daemon: Daemon) -> tuple[dict[str, str], Path, Path]:
    """A HOME with Claude Code memory (user CLAUDE.md, auto memory) and a repository with
    CLAUDE.md, .claude/CLAUDE.md, CLAUDE.local.md and AGENTS.md."""
    home = tmp_path / "home"
    repo = tmp_path / "acme"
    (home / ".claude").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (home / ".claude" / "CLAUDE.md").write_text(USER_MD, encoding="utf-8")
    (repo / "CLAUDE.md").write_text(PROJECT_MD, encoding="utf-8")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "CLAUDE.md").write_text(
        "Commit messages use the imperative mood.\n", encoding="utf-8"
    )
    (repo / "CLAUDE.local.md").write_text("My sandbox is at http://localhost:8081.\n", encoding="utf-8")
    (repo / "AGENTS.md").write_text("# Agents\nKeep pull requests under 400 lines.\n", encoding="utf-8")
    memory = home / ".claude" / "projects" / project_key(str(repo.resolve())) / "memory"
    memory.mkdir(parents=True)
    (memory / "MEMORY.md").write_text(INDEX_MD, encoding="utf-8")
    (memory / "use-pnpm.md").write_text(TOPIC_MD, encoding="utf-8")
    env = {**daemon.env(), "HOME": str(home), "COLUMNS": "250"}
    env.pop("CLAUDE_CONFIG_DIR", None)
    # The daemon's storage is shared by the module's tests: empty it for this one.
    daemon.api("POST", "/forget", json={"scope": "all"})
    return env, repo, home


def _memories(daemon: Daemon) -> list[dict]:
    page = daemon.api("GET", "/memories", params={"scope": "all", "limit": 500}).json()
    return list(page["memories"])


def test_import_brings_every_file_into_its_scope_once(
    daemon: Daemon, machine: tuple[dict[str, str], Path, Path]
) -> None:
    env, repo, home = machine
    scope = project_scope(str(repo))
    (repo / "src").mkdir()

    dry = clarity(env, "import", "--from", "claude-code", "--dry-run", cwd=repo / "src")
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[-1]: line.split() for line in dry.stdout.splitlines() if line.startswith("  ")}
    user_file = str(home / ".claude" / "CLAUDE.md")
    assert lines[user_file][:2] == ["2", "global"]
    assert lines[str(repo / "CLAUDE.md")][:2] == ["3", scope]
    for name, count in [(".claude/CLAUDE.md", "1"), ("CLAUDE.local.md", "1"), ("AGENTS.md", "1")]:
        assert lines[str(repo / name)][:2] == [count, scope], name
    auto = [path for path in lines if "/projects/" in path]
    assert len(auto) == 2 and all(lines[p][1] == scope for p in auto)
    assert "dry run: 10 memories from 7 files" in dry.stdout
    assert _memories(daemon) == []

    first = clarity(env, "import", "--from", "claude-code", "--project", str(repo), cwd=home)
    assert first.returncode == 0, first.stderr
    assert "imported 10 memories from 7 files: 10 new" in first.stdout
    stored = _memories(daemon)
    assert len(stored) == 10 and all(m["source"] == "import" for m in stored)
    by_content = {m["content"].strip(): m for m in stored}
    tabs = by_content["# Style\nI prefer tabs over spaces."]
    assert tabs["scope"] == "global" and tabs["metadata"]["path"] == user_file
    build = next(m for m in stored if m["metadata"].get("heading") == "Build")
    assert build["scope"] == scope and build["metadata"]["path"] == str(repo / "CLAUDE.md")
    pnpm = next(m for m in stored if m["metadata"].get("name") == "use-pnpm")
    assert pnpm["memory_type"] == "preference" and pnpm["content"].startswith("The user wants pnpm")
    assert "auto-memory" in pnpm["tags"] and pnpm["metadata"]["type"] == "feedback"
    assert not any("[Use pnpm](use-pnpm.md)" in m["content"] for m in stored)  # the index line
    assert any("The CI runners are arm64." in m["content"] for m in stored)  # MEMORY.md's own fact

    again = clarity(env, "import", "--from", "claude-code", "--project", str(repo), cwd=home)
    assert again.returncode == 0 and "0 new, 10 already known" in again.stdout, again.stdout
    assert len(_memories(daemon)) == 10

    edited = PROJECT_MD.replace("Run pytest -x -q before pushing.", "Run pytest -n 4 before pushing.")
    (repo / "CLAUDE.md").write_text(edited, encoding="utf-8")
    third = clarity(env, "import", "--from", "claude-code", "--project", str(repo), cwd=home)
    assert "1 new, 9 already known; 1 earlier memory no longer in the file removed" in third.stdout, (
        third.stdout
    )
    contents = [m["content"] for m in _memories(daemon)]
    assert len(contents) == 10 and any("pytest -n 4" in c for c in contents)
    assert not any("pytest -x -q" in c for c in contents)  # the section as it was is replaced, not kept


def test_reimport_removes_only_what_an_import_of_the_file_made(
    daemon: Daemon, machine: tuple[dict[str, str], Path, Path]
) -> None:
    """A section changed or gone from a file: the memory an earlier import made of it goes, and the
    output says so (the dry run too). What the import did not make stays, however close: a
    memory stored by hand naming the file, a Markdown import of a copy of it, and the memories of
    a file that cannot be read this time."""
    env, repo, home = machine
    first = clarity(env, "import", "--from", "claude-code", cwd=repo)
    assert first.returncode == 0 and "10 new" in first.stdout, first.stderr
    by_hand = daemon.api(
        "POST",
        "/memories",
        project=str(repo),
        json={
            "content": "Tests: run pytest -x -q before pushing (noted by hand).",
            "metadata": {"path": str(repo / "CLAUDE.md"), "imported_from": "claude-code"},
        },
    )
    assert by_hand.status_code == 201, by_hand.text
    copy = repo.parent / "notes" / "CLAUDE-copy.md"
    copy.parent.mkdir()
    copy.write_text(PROJECT_MD.replace("eu-west-3", "us-east-1"), encoding="utf-8")
    markdown = clarity(env, "import", str(copy), "--split", "heading", cwd=repo)
    assert markdown.returncode == 0, markdown.stderr
    kept = {m["id"] for m in _memories(daemon)} - {m["id"] for m in _memories(daemon) if _from(m, repo)}
    assert len(kept) == 1 + 3 + 2  # by hand, the copy's three sections, the user CLAUDE.md's two

    gone = PROJECT_MD.replace("Run pytest -x -q before pushing.", "Run pytest -n 4 before pushing.")
    (repo / "CLAUDE.md").write_text(
        gone.split("## Deploy")[0], encoding="utf-8"
    )  # Tests changed, Deploy gone
    (home / ".claude" / "CLAUDE.md").write_bytes(b"# Style\n\xff tabs\n")  # not UTF-8: skipped whole
    before = _memories(daemon)

    dry = clarity(env, "import", "--from", "claude-code", "--dry-run", cwd=repo)
    assert dry.returncode == 0, dry.stderr
    line = next(line for line in dry.stdout.splitlines() if line.rstrip().endswith("would be removed)"))
    assert str(repo / "CLAUDE.md") in line and "(2 earlier no longer in the file would be removed)" in line
    assert "would be imported, 2 earlier memories no longer in the file removed; nothing stored" in dry.stdout
    assert _memories(daemon) == before

    real = clarity(env, "import", "--from", "claude-code", cwd=repo)
    assert real.returncode == 0, real.stderr
    assert "1 new, 6 already known; 2 earlier memories no longer in the file removed" in real.stdout, (
        real.stdout
    )
    assert f"{repo / 'CLAUDE.md'}  (1 new, 2 removed)" in real.stdout
    after = _memories(daemon)
    assert kept <= {m["id"] for m in after}  # nothing the import did not make
    sections = sorted(m["metadata"].get("heading") for m in after if _from(m, repo, "CLAUDE.md"))
    assert sections == ["Build", "Tests"]
    assert any("pytest -n 4" in m["content"] for m in after)
    assert not any("pytest -x -q" in m["content"] for m in after if _from(m, repo, "CLAUDE.md"))
    assert len(after) == len(before) - 1  # 2 removed, 1 new


def _from(memory: dict, repo: Path, name: str = "") -> bool:
    """Made by `import --from claude-code` from a file of ``repo`` (``name``: that file)."""
    path = str(memory["metadata"].get("path", ""))
    ours = memory["source"] == "import" and memory["metadata"].get("imported_from") == "claude-code"
    return ours and path.startswith(str(repo)) and (not name or path == str(repo / name))


def test_doctor_suggests_the_import_until_it_is_done(
    daemon: Daemon, machine: tuple[dict[str, str], Path, Path]
) -> None:
    env, repo, _ = machine

    def memory_check() -> dict[str, str] | None:
        result = clarity(env, "doctor", "--json", cwd=repo)
        assert "Traceback" not in result.stderr, result.stderr
        checks = {c["name"]: c for c in json.loads(result.stdout)}
        return checks.get("claude code memory")

    before = memory_check()
    assert before is not None and before["status"] == "warn"
    assert "7 Claude Code memory files not imported yet" in before["detail"]
    assert "clarity import --from claude-code" in before["fix"]
    done = clarity(env, "import", "--from", "claude-code", cwd=repo)
    assert done.returncode == 0, done.stderr
    after = memory_check()
    assert after is not None and after["status"] == "ok" and "all imported" in after["detail"]
    (repo / "AGENTS.md").write_text("# Agents\nKeep pull requests under 300 lines.\n", encoding="utf-8")
    changed = memory_check()
    assert changed is not None and changed["status"] == "warn" and "1 Claude Code memory" in changed["detail"]


def test_no_claude_code_memory_is_said_plainly(daemon: Daemon, tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    env = {**daemon.env(), "HOME": str(home)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    result = clarity(env, "import", "--from", "claude-code", "--project", str(home), cwd=home)
    assert result.returncode == 0 and "no Claude Code memory found" in result.stdout
    for args, message in [
        (["--from", "claude-code", "--project", str(home / "nope")], "--project: "),
        (["--from", "cursor"], "--from: 'cursor' is not a source"),
        (["notes.md", "--from", "claude-code"], "use --project"),
        (["--project", str(home)], "--project: goes with --from claude-code"),
    ]:
        bad = clarity(env, "import", *args, cwd=home)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, args


def test_auto_memory_directory_setting_is_honoured(
    daemon: Daemon, machine: tuple[dict[str, str], Path, Path]
) -> None:
    env, repo, home = machine
    elsewhere = home / "notes" / "claude"
    elsewhere.mkdir(parents=True)
    (elsewhere / "deploys.md").write_text("Deploys freeze on Fridays.\n", encoding="utf-8")
    settings = {"autoMemoryDirectory": "~/" + os.path.relpath(elsewhere, home)}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    dry = clarity(env, "import", "--from", "claude-code", "--dry-run", cwd=repo)
    assert str(elsewhere / "deploys.md") in dry.stdout, dry.stdout
