"""The "why not" lookup on a real HookService over the real model and engine: each verdict is
the one the prompt hook really reaches for that prompt (checked against the hook's own reply),
and each result of a retrieval says how its score was made."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity.embedding import EmbeddingProvider
from clarity.hooks.events import HookEvent
from clarity.hooks.service import HookService
from clarity.hooks.why_not import explain
from clarity.memory import MemoryService
from clarity.models import GLOBAL_SCOPE, Memory, MemoryCreate
from clarity.project import project_scope
from clarity.requests import RetrieveRequest

from .conftest import make_settings, open_engine

FIXTURES = Path(__file__).parent / "fixtures" / "hook_payloads"
DEPLOY = "Deploys to staging go through `make ship STAGE=staging`; production needs a signed tag"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / ".git").mkdir(parents=True)
    return path


@pytest.fixture
def served(tmp_path: Path, embedder: EmbeddingProvider) -> Iterator[tuple[MemoryService, HookService]]:
    settings = make_settings(tmp_path / "root", hooks={"max_memories": 2})
    memory = MemoryService(settings, open_engine("embedded", tmp_path / "root"), embedder)
    hooks = HookService(settings, memory)
    yield memory, hooks
    hooks.close()
    memory.close()


def _store(memory: MemoryService, repo: Path, content: str, **fields: Any) -> Memory:
    return memory.store(MemoryCreate(content=content, **fields), project=project_scope(str(repo))).memory


def _prompt(hooks: HookService, repo: Path, prompt: str, session: str) -> str:
    data = json.loads((FIXTURES / "UserPromptSubmit.json").read_text())
    data.update(cwd=str(repo), session_id=session, prompt=prompt)
    reply = hooks.handle(HookEvent.model_validate(data))
    return str(reply.get("hookSpecificOutput", {}).get("additionalContext", ""))


def test_verdicts_match_what_the_prompt_hook_does(
    served: tuple[MemoryService, HookService], repo: Path, tmp_path: Path
) -> None:
    memory, hooks = served
    project = project_scope(str(repo))
    deploy = _store(memory, repo, DEPLOY, memory_type="fact")
    prompt = "how do we deploy to staging?"

    chosen = explain(hooks, deploy, prompt, project)
    assert chosen.chosen and chosen.rank == 1, chosen
    assert chosen.why is not None and chosen.similarity is not None and chosen.similarity >= chosen.cut
    assert "deploy" in chosen.shared_words and "staging" in chosen.shared_words
    assert deploy.id[:8] in _prompt(hooks, repo, prompt, "s1")  # the hook agrees

    # The same prompt again in that session: given already.
    again = explain(hooks, deploy, prompt, project, session_id="s1")
    assert not again.chosen and "given it already" in again.reason
    assert _prompt(hooks, repo, prompt, "s1") == ""

    # An unrelated prompt: below the cut, with the similarity and the cut in the words.
    unrelated = explain(hooks, deploy, "what is the capital of France?", project)
    assert not unrelated.chosen and unrelated.similarity is not None
    assert unrelated.similarity < unrelated.cut
    assert f"{unrelated.similarity:.2f}" in unrelated.reason and f"{unrelated.cut:.2f}" in unrelated.reason
    assert deploy.id[:8] not in _prompt(hooks, repo, "what is the capital of France?", "s2")

    # Another project does not read this one's memories.
    other = tmp_path / "other"
    (other / ".git").mkdir(parents=True)
    elsewhere = explain(hooks, deploy, prompt, project_scope(str(other)))
    assert not elsewhere.chosen and deploy.scope in elsewhere.reason and GLOBAL_SCOPE in elsewhere.reason


def test_slots_taken_by_better_matches(served: tuple[MemoryService, HookService], repo: Path) -> None:
    memory, hooks = served
    project = project_scope(str(repo))
    best = [
        _store(memory, repo, "Deploy to staging with `make ship STAGE=staging`", memory_type="command"),
        _store(memory, repo, "Staging deploys need the VPN up before `make ship` runs", memory_type="fix"),
    ]
    third = _store(
        memory, repo, "The staging deploy once failed on a full disk in /var/log", memory_type="note"
    )
    prompt = "how do I deploy to staging with make ship?"
    verdict = explain(hooks, third, prompt, project)
    context = _prompt(hooks, repo, prompt, "s3")
    if verdict.chosen:  # it outranked one of the two: then the hook gave it too
        assert third.id[:8] in context
    else:
        assert "slots" in verdict.reason and verdict.rank == 3, verdict
        assert third.id[:8] not in context and all(m.id[:8] in context for m in best)


def test_retrieval_results_say_how_their_score_was_made(
    served: tuple[MemoryService, HookService], repo: Path
) -> None:
    memory, _ = served
    _store(memory, repo, DEPLOY, memory_type="fact", importance=0.9)
    _store(memory, repo, "Run the unit tests with `pytest -q` from the repository root")
    result = memory.retrieve(
        RetrieveRequest(query="deploy staging make ship", limit=2), project=project_scope(str(repo))
    )
    top = result.results[0]
    assert top.memory.content == DEPLOY and top.why is not None
    why = top.why
    assert why.dense_rank == 1 and why.lexical_rank == 1 and why.lexical is not None
    assert why.score == pytest.approx(top.score, abs=1e-6)
    assert why.relevance_part + why.recency_part + why.importance_part == pytest.approx(why.score, abs=1e-5)
    assert why.importance_part > 0 and 0 < why.relevance <= 1


def test_the_verdict_is_the_hooks_own_over_many_prompts(
    served: tuple[MemoryService, HookService], repo: Path
) -> None:
    """The hook retrieves 2 x max_memories; a deeper retrieval fuses deeper rankings and can
    order the top differently, so the lookup must decide with the hook's own retrieval. Over many
    prompts of look-alike memories, what it calls chosen is exactly what the hook gives."""
    memory, hooks = served
    project = project_scope(str(repo))
    pick = random.Random(7)
    subjects = [
        "the deploy script",
        "the database migration",
        "the login page",
        "the cache layer",
        "the build",
        "the test suite",
        "the docker image",
        "the API gateway",
        "the payment service",
        "the search index",
    ]
    verbs = [
        "fails when",
        "is slow because",
        "needs a restart after",
        "breaks if",
        "was fixed by changing",
        "depends on",
        "logs an error when",
        "times out whenever",
    ]
    objects = [
        "the config file changes",
        "redis is down",
        "the token expires",
        "node is upgraded",
        "the port is taken",
        "postgres runs out of connections",
        "the disk fills up",
        "a migration is pending",
        "the staging env is used",
        "tests run in parallel",
    ]
    memory.store_many(
        [
            MemoryCreate(
                content=f"{pick.choice(subjects)} {pick.choice(verbs)} {pick.choice(objects)}; noted in sprint {i % 17}",
                session_id=f"s{i % 23}",
            )
            for i in range(200)
        ],
        project=project,
    )
    prompts = [
        f"{a} {b}"
        for a in (
            "deploy",
            "database",
            "login",
            "cache",
            "build",
            "tests",
            "docker",
            "gateway",
            "payment",
            "search",
        )
        for b in ("fails", "slow", "restart", "error", "timeout", "config", "port")
    ]
    for number, prompt in enumerate(prompts):
        given = _prompt(hooks, repo, prompt, f"fresh-{number}")
        deeper, _ = hooks.prompt_choice(prompt, project, limit=50)
        for found in deeper.results[:4]:
            verdict = explain(hooks, found.memory, prompt, project)
            assert verdict.chosen == (found.memory.id[:8] in given), (prompt, verdict, given)
