"""Why a memory was, or was not, given to Claude for a prompt: the dashboard's "why not" lookup.

Users of every memory tool ask why a memory they know exists did not come up. The answer is the
prompt hook's own choice, replayed: the same retrieval (``HookService.prompt_choice``, which the
hook itself calls, so the two cannot drift apart), the same relevance cut and the same number of
slots, with nothing counted as a use and nothing recorded as given. The reasons are checked in the
order the hook applies them (scope, switches, the memory's anchors, rank, relevance, slots, this
session's record) and the first that holds is the answer; the rank, the parts of the score and the
similarity are shown whatever the verdict. Anchors come before the rank: a memory whose file is
gone, or whose code was rewritten, is left out whatever the prompt, and saying so is the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clarity.hooks.context import injectable
from clarity.memory.records import resolve_scopes
from clarity.models import MAX_QUERY_CHARS, Memory
from clarity.relevance import identifiers, is_relevant
from clarity.requests import AnchorReport, RankWhy

if TYPE_CHECKING:
    from clarity.hooks.service import HookService

DEPTH = 50  # how far down the ranking the lookup looks for the memory (prefetch_limit's default)
_WORD = re.compile(r"\w{2,}")


@dataclass(frozen=True)
class WhyNot:
    """The verdict on one memory for one prompt, and what it rests on."""

    chosen: bool  # the prompt hook would give it to Claude now
    reason: str  # the one that decided, in words
    rank: int | None  # 1 = first in the retrieval for this prompt; None: not in the first DEPTH
    considered: int  # how many of the ranking the hook looks at
    similarity: float | None  # cosine of memory and prompt; None while the model is not ready
    cut: float  # hooks.min_similarity
    why: RankWhy | None  # the parts of its score, when it ranked
    shared_words: tuple[str, ...]  # prompt words its lexical text holds


def _similarity(hooks: HookService, memory: Memory, prompt: str) -> float | None:
    """The memory's cosine to the prompt, computed directly (it may be far down the ranking)."""
    service = hooks.memory
    if not service.embedder.ready:
        return None
    found = service.db.get([memory.id], with_vectors=True)
    if not found or found[0].dense is None:
        return None  # still waiting for its vector
    query = np.asarray(service.embedder.embed_query(prompt[:MAX_QUERY_CHARS]), dtype=np.float32)
    return round(float(np.asarray(found[0].dense, dtype=np.float32) @ query), 4)


def _shared_words(hooks: HookService, memory: Memory, prompt: str) -> tuple[str, ...]:
    """The prompt's words that the lexical index matches in the memory, by the index's own
    tokenizer (stemming and stop words included), so "deploys" counts for "deploy"."""
    lexical = hooks.memory.lexical
    held = set(lexical.document(memory.content)[0])
    shared: dict[str, None] = {}
    for word in _WORD.findall(prompt[:MAX_QUERY_CHARS].casefold()):
        indices = lexical.query(word)[0]
        if indices and held.issuperset(indices):
            shared[word] = None
    return tuple(shared)


def explain(
    hooks: HookService, memory: Memory, prompt: str, project: str | None, session_id: str | None = None
) -> WhyNot:
    """Replay the prompt hook for ``prompt`` in ``project`` and say where ``memory`` stood."""
    settings = hooks.settings
    cut = settings.min_similarity
    similarity = _similarity(hooks, memory, prompt)
    shared = _shared_words(hooks, memory, prompt)

    def verdict(
        reason: str, chosen: bool = False, rank: int | None = None, why: RankWhy | None = None
    ) -> WhyNot:
        return WhyNot(chosen, reason, rank, settings.max_memories * 2, similarity, cut, why, shared)

    scopes = resolve_scopes("default", project) or []
    if memory.scope not in scopes:
        where = f"project {project}" if project else "no project"
        return verdict(
            f"It is kept in scope {memory.scope}; a prompt in {where} reads only "
            f"{' and '.join(scopes)} memories."
        )
    if not settings.inject:
        return verdict("Injection is off (hooks.inject is false).")
    if hooks.pauses.is_paused(project):
        return verdict("Clarity is paused for this project.")
    anchors = hooks.memory.anchor_report(memory) if memory.anchors else None
    if anchors is not None and not anchors.injectable:
        return verdict(_left_out(anchors))

    # The verdict comes from the hook's own retrieval (its limit sets how deep the rankings are
    # fused, so a deeper one can order the top differently); a deeper one only finds the rank of
    # a memory the hook did not see.
    result, relevant = hooks.prompt_choice(prompt, project)
    ranked = [r.memory.id for r in result.results]
    chosen_ids = [r.memory.id for r in injectable(relevant)]
    relevant_ids = [r.memory.id for r in relevant]
    position = ranked.index(memory.id) if memory.id in ranked else None
    rank = None if position is None else position + 1
    why = None if position is None else result.results[position].why
    if position is None:
        deeper, _ = hooks.prompt_choice(prompt, project, limit=DEPTH)
        found = [r for r in deeper.results if r.memory.id == memory.id]
        if found:
            rank, why = deeper.results.index(found[0]) + 1, found[0].why
    where = f"It ranks #{rank}, but its" if rank else f"It is not among the {DEPTH} best matches, and its"
    if rank and position is None:
        where = f"A deeper search ranks it #{rank}, but its"
    # Relevance first: below the cut, no rank would have brought it.
    names = identifiers(prompt)
    if (position is not None and memory.id not in relevant_ids) or (
        position is None
        and similarity is not None
        and not is_relevant(similarity, memory.content, names, cut)
    ):
        named = " and it names none of the prompt's identifiers" if names else ""
        shown = (
            "no similarity (the model is not ready)" if similarity is None else f"similarity {similarity:.2f}"
        )
        return verdict(
            f"{where} {shown} is below the relevance cut {cut:.2f} (hooks.min_similarity){named}.",
            rank=rank,
            why=why,
        )
    if position is None:
        if rank is not None:
            return verdict(
                f"It is not among the {settings.max_memories * 2} memories the prompt hook looks at "
                f"(hooks.max_memories x 2); a deeper search ranks it #{rank}.",
                rank=rank,
                why=why,
            )
        words = f"shares {', '.join(shared)} with the prompt" if shared else "shares no indexed word with it"
        return verdict(f"It is not among the {DEPTH} best matches: others matched better; it {words}.")
    if memory.id not in chosen_ids:  # its code changed between the two checks just made
        report = result.results[position].anchors
        return verdict(_left_out(report) if report else "Its anchors keep it out.", rank=rank)
    slot = chosen_ids.index(memory.id)
    if slot >= settings.max_memories:
        return verdict(
            f"It ranks #{rank} and is relevant, but {settings.max_memories} relevant memories ranked "
            "above it fill the prompt's slots (hooks.max_memories).",
            rank=rank,
            why=why,
        )
    if session_id is not None and hooks.budget.was_given(session_id, memory):
        return verdict(
            "It would be chosen, but this session was given it already: a memory reaches Claude once "
            "per session unless it changes.",
            rank=rank,
            why=why,
        )
    flagged = f", marked {anchors.note}" if anchors is not None and anchors.note else ""
    return verdict(
        f"It would be given to Claude for this prompt (#{rank}){flagged}.", chosen=True, rank=rank, why=why
    )


def _left_out(report: AnchorReport) -> str:
    """Why a memory's anchors keep it out of every context, in the check's own words."""
    if report.state == "gone":
        return (
            f"The code it is about is gone ({report.note}): it is kept for history but never given "
            "to Claude. Re-anchor it if it still holds elsewhere."
        )
    return (
        f"The code it is about was rewritten ({report.note}): it is left out of Claude's context "
        "until it is re-anchored or confirmed still true."
    )
