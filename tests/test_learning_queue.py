"""The learner through the real daemon's hook routes: a bounded queue under a flood, and the
commands and requests it used to drop or mangle silently.

- A flood of 1 MB tool events must not grow the daemon without bound: the learning queue keeps
  at most ``hooks.learning_queue`` events (and ``hooks.learning_queue_bytes`` of their text),
  drops the oldest, counts them in /readyz, and still learns the newest.
- A failure whose program name is longer than a tag may be, or that chains more programs than
  a memory may have tags, is learned (names cut, first programs kept) and found again.
- "remember that" with nothing after it stores nothing, and says so.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .daemon_util import Daemon, free_port

QUEUE_EVENTS = 4
MB = 1_048_576


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, with a small learning queue and no model (lexical only: the
    learner's path is the same, and it starts and stores quickly)."""
    root = tmp_path_factory.mktemp("queue-root")
    env = {
        "CLARITY_EMBEDDING__MODEL": str(root / "no-model"),
        "CLARITY_HOOKS__LEARNING_QUEUE": str(QUEUE_EVENTS),
        "CLARITY_HOOKS__LEARNING_QUEUE_BYTES": str(4 * MB),
    }
    daemon = Daemon(root, free_port(), env=env)
    with daemon.running():
        yield daemon


def hook(daemon: Daemon, event: str, project: Path, **fields: Any) -> dict[str, Any]:
    """One hook call, in a session of the project's own (a session keeps its first project)."""
    body = {"session_id": f"s-{project.name}", "cwd": str(project), "hook_event_name": event, **fields}
    response = httpx.post(f"{daemon.url}/hooks/{event}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def readiness(daemon: Daemon) -> dict[str, Any]:
    return dict(httpx.get(f"{daemon.url}/readyz", timeout=30).json())


def learned(daemon: Daemon, project: Path, kind: str) -> list[dict[str, Any]]:
    params = {"scope": "project", "limit": 100, "memory_types": kind}
    return list(daemon.api("GET", "/memories", str(project), params=params).json()["memories"])


def wait_for(
    daemon: Daemon, project: Path, kind: str, text: str = "", timeout: float = 60
) -> list[dict[str, Any]]:
    """The memories of a kind once one holds ``text`` (an event is queued after its reply)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = learned(daemon, project, kind)
        if any(text in m["content"] for m in found):
            return found
        time.sleep(0.05)
    return learned(daemon, project, kind)


def learned_failure_tags(daemon: Daemon, project: Path, command: str, error: str) -> list[str]:
    """The tags of the one error memory a failed Bash ``command`` is learned as."""
    hook(
        daemon, "PostToolUseFailure", project, tool_name="Bash", tool_input={"command": command}, error=error
    )
    errors = wait_for(daemon, project, "error")
    assert len(errors) == 1, "the failure was dropped"
    return list(errors[0]["tags"])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_long_program_name_is_learned_and_found_again(daemon: Daemon, project: Path) -> None:
    program = "./scripts/" + "run-the-nightly-integration-suite-against-staging" * 2 + ".sh"
    command = f"{program} --shard 3"
    tags = learned_failure_tags(daemon, project, command, "Exit code 1\nerror: staging database unreachable")
    assert len(tags) == 1 and tags[0].startswith("cmd:…") and len(tags[0]) <= 64, tags
    assert "suite-against-staging.sh~" in tags[0], tags  # a path keeps its end, plus a hash
    context = hook(daemon, "PreToolUse", project, tool_name="Bash", tool_input={"command": command})
    assert "staging database unreachable" in json.dumps(context), "not found again by its program"


def test_a_chain_of_forty_programs_is_learned_with_its_first_programs(daemon: Daemon, project: Path) -> None:
    command = " && ".join(f"step{i:02d} --go" for i in range(40))
    tags = learned_failure_tags(daemon, project, command, "Exit code 3\nerror: step07 failed")
    assert tags == [f"cmd:step{i:02d}" for i in range(31)], tags
    context = hook(daemon, "PreToolUse", project, tool_name="Bash", tool_input={"command": "step05 --again"})
    assert "step07 failed" in json.dumps(context)


@pytest.mark.parametrize("prompt", ["remember that    ", "Remember that", "note:", "please remember that."])
def test_an_empty_remember_request_stores_nothing_and_says_so(
    daemon: Daemon, project: Path, prompt: str
) -> None:
    reply = hook(daemon, "UserPromptSubmit", project, prompt=prompt)
    said = reply["hookSpecificOutput"]["additionalContext"]
    assert said.startswith("Clarity stored nothing"), said
    listed = daemon.api("GET", "/memories", str(project), params={"scope": "all", "limit": 500}).json()
    assert not [m for m in listed["memories"] if m["content"].strip().lower() in ("that", "that.", ":")]
    assert not learned(daemon, project, "fact") and not learned(daemon, project, "preference")


def test_a_flood_of_large_events_is_bounded_drops_the_oldest_and_learns_the_newest(
    daemon: Daemon, project: Path
) -> None:
    """The way defect 8 was found: 1 MB PostToolUse events posted as fast as possible (here with
    1 MB commands and errors as well, which the learner needs time for, so the queue fills)."""
    assert daemon.process is not None
    pid = daemon.process.pid
    filler = "x" * (MB - 4096)  # each body just under server.max_request_bytes
    half = filler[: MB // 2 - 4096]
    big_output = {"stdout": filler, "stderr": "", "interrupted": False}
    events = [
        ("PostToolUse", {"tool_input": {"command": "echo ok"}, "tool_response": big_output}),
        (
            "PostToolUseFailure",
            {"tool_input": {"command": f"./build.sh {half}"}, "error": half},
        ),
    ]
    bodies = [
        json.dumps(
            {
                "session_id": f"flood-{i}",
                "cwd": str(project),
                "hook_event_name": name,
                "tool_name": "Bash",
                **fields,
            }
        ).encode()
        for i, (name, fields) in enumerate(events)
    ]
    hook(daemon, "PostToolUse", project, tool_name="Bash", tool_input={"command": "make warm"})
    wait_for(daemon, project, "command")
    before = rss_bytes(pid)
    dropped_before = readiness(daemon)["learning_dropped"]
    peak = before
    answers: list[int] = []

    def flood(worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            for i in range(40):
                name = events[(worker + i) % 2][0]
                body = bodies[(worker + i) % 2]
                response = client.post(
                    f"{daemon.url}/hooks/{name}", content=body, headers={"Content-Type": "application/json"}
                )
                answers.append(response.status_code)

    workers = [threading.Thread(target=flood, args=(w,)) for w in range(3)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        peak = max(peak, rss_bytes(pid))
        time.sleep(0.05)
    for worker in workers:
        worker.join()
    ready = readiness(daemon)
    peak = max(peak, rss_bytes(pid))

    newest = f"./newest-{uuid.uuid4().hex[:8]}.sh"
    hook(
        daemon,
        "PostToolUseFailure",
        project,
        tool_name="Bash",
        tool_input={"command": newest},
        error="error: x",
    )
    errors = wait_for(daemon, project, "error", newest, timeout=120)
    dropped = readiness(daemon)["learning_dropped"] - dropped_before
    growth = (peak - before) / MB
    print(
        f"\nposted {len(answers)} events of ~1 MB; dropped {dropped} oldest-first; backlog at the end of the flood "
        f"{ready['learning_backlog']}; RSS {before / MB:.0f} MB -> peak {peak / MB:.0f} MB (+{growth:.0f} MB)"
    )
    assert answers == [200] * 120, answers
    assert dropped > 0, "a full queue must drop (and count) events"
    assert ready["learning_backlog"] <= QUEUE_EVENTS + 1  # waiting + the one being learned
    assert growth < 80, f"the daemon grew by {growth:.0f} MB under the flood"  # 127 MB before the fix
    assert any(newest in m["content"] for m in errors), "the newest event must be learned"
    assert httpx.get(f"{daemon.url}/healthz", timeout=10).status_code == 200
