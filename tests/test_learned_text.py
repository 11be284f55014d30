"""What the learner writes, word for word: a fix is not a build command, summaries end cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.hooks.events import HookEvent
from clarity.hooks.learner import SUMMARY_CHARS, cut_at_word, sentence
from clarity.hooks.service import HookService
from clarity.memory import MemoryService
from clarity.models import MemoryType
from clarity.project import project_scope
from clarity.requests import ListRequest

from .conftest import make_settings, open_engine

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    return repo


@pytest.fixture
def served(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[tuple[MemoryService, HookService]]:
    settings = make_settings(tmp_path / "root")
    memory = MemoryService(settings, open_engine("embedded", tmp_path / "root"), embedder)
    hooks = HookService(settings, memory)
    yield memory, hooks
    hooks.close()
    memory.close()


def send(hooks: HookService, name: str, project: Path, session: str, **fields: Any) -> None:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(cwd=str(project), session_id=session, **fields)
    assert hooks.handle(HookEvent.model_validate(data)) == {}


def learned(memory: MemoryService, hooks: HookService, project: Path, kind: MemoryType) -> list[str]:
    assert hooks.learner.drain(30)
    page = memory.list(ListRequest(memory_types=[kind], scope="project"), project=project_scope(str(project)))
    return [m.content for m in page.memories]


def fail(hooks: HookService, project: Path, session: str, command: str, error: str) -> None:
    send(hooks, "PostToolUseFailure", project, session, tool_input={"command": command}, error=error)


def succeed(hooks: HookService, project: Path, session: str, command: str) -> None:
    send(hooks, "PostToolUse", project, session, tool_input={"command": command})


def fail_then_fix(hooks: HookService, project: Path) -> None:
    """The test script fails for a missing config file; a one-off copy and a rerun fix it."""
    fail(hooks, project, "s", "./run-tests.sh", "Exit code 1\nerror: missing config file settings.ini")
    succeed(hooks, project, "s", "cp settings.example.ini settings.ini && ./run-tests.sh")


def test_a_one_off_fix_is_a_fix_not_the_build_command(
    served: tuple[MemoryService, HookService], project: Path
) -> None:
    memory, hooks = served
    fail_then_fix(hooks, project)
    [fix] = learned(memory, hooks, project, MemoryType.fix)
    assert "Fixed by running `cp settings.example.ini settings.ini && ./run-tests.sh`." in fix
    # the project is tested with its test script; the cp ran once, to repair the checkout
    assert learned(memory, hooks, project, MemoryType.command) == [
        "This project is built or tested with `./run-tests.sh`"
    ]
    # a build command run as it is (no failure before it) is recorded whole
    succeed(hooks, project, "s", "npm ci && npm test")
    assert "This project is built or tested with `npm ci && npm test`" in learned(
        memory, hooks, project, MemoryType.command
    )


def test_a_fixed_failure_reads_as_sentences(served: tuple[MemoryService, HookService], project: Path) -> None:
    memory, hooks = served
    fail(hooks, project, "s", "make docs", "Exit code 2\nerror: Sphinx build failed.")
    succeed(hooks, project, "s", "pip install sphinx && make docs")
    [fix] = learned(memory, hooks, project, MemoryType.fix)
    assert fix == (
        "`make docs` failed with: error: Sphinx build failed. "
        "Fixed by running `pip install sphinx && make docs`."
    )


def test_session_summaries_end_in_one_full_stop(
    served: tuple[MemoryService, HookService], project: Path
) -> None:
    memory, hooks = served
    fail_then_fix(hooks, project)
    send(hooks, "Stop", project, "s")
    [summary] = learned(memory, hooks, project, MemoryType.summary)
    assert summary.endswith("./run-tests.sh`.") and not summary.endswith(".."), summary


def test_a_long_summary_is_cut_at_a_word_with_one_ellipsis(
    served: tuple[MemoryService, HookService], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, hooks = served
    for i in range(60):
        name = f"src/module_{i:02d}/" + "deeply_nested_directory/" * 3 + f"file_{i}.py"
        send(hooks, "PostToolUse", project, "s", tool_name="Edit", tool_input={"file_path": name})
    for i in range(5):
        fail(hooks, project, "s", f"pytest tests/test_{i}.py " + "-k case " * 40, "E   AssertionError")
        succeed(hooks, project, "s", f"pytest tests/test_{i}.py --lf " + "-k case " * 40)
    send(hooks, "Stop", project, "s")
    [summary] = learned(memory, hooks, project, MemoryType.summary)
    assert len(summary) <= SUMMARY_CHARS
    assert summary.endswith("…") and not summary.endswith("……")
    assert not summary.endswith((" …", ".…", "….", ";…", ",…")), summary[-40:]
    # cut after a whole word of the uncut text, not inside one
    monkeypatch.setattr("clarity.hooks.learner.SUMMARY_CHARS", 1_000_000)
    whole = hooks.learner.summary_text(hooks.learner.sessions["s"])
    assert whole is not None and whole.startswith(summary[:-1])
    assert whole[len(summary) - 1] in " ,;", whole[len(summary) - 20 : len(summary) + 5]


def test_sentence_and_cut_at_word() -> None:
    assert sentence("Build failed.") == "Build failed."
    assert sentence("Build failed") == "Build failed."
    assert sentence("Build fai…") == "Build fai…"
    assert sentence("done..") == "done."
    assert cut_at_word("alpha beta gamma delta", 14) == "alpha beta…"
    assert cut_at_word("alpha beta; gamma delta", 14) == "alpha beta…"
    assert cut_at_word("short", 14) == "short"
