"""Server side of Claude Code's hooks: what each event reads, and what it hands to the learner.

Replies sit on the user's critical path, so only reads happen before replying; everything
learned from a tool result goes to the learner's bounded queue. A payload Clarity cannot use
gets an empty reply, never an error that Claude Code would have to show.

Events whose reply is empty whatever happens (``reply_is_empty``) are answered by the daemon at
once and handed over after the reply (``handle_after_reply``): the learning events are queued
as they are, and the checks that decide whether to learn them (pauses, project rules,
exclusions) run on the learner's thread, in arrival order.

Every memory that reaches Claude passes the check of its anchors first (``context.injectable``):
gone or rewritten code keeps it out, a smaller change is said on its line. PreToolUse of
Read, Edit, Write and MultiEdit brings what is known about that file (``about_file``: the
memories anchored to it), within the same once-per-session rule as every other context.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from clarity.config import Settings, describe_validation_error
from clarity.describe import replaces
from clarity.embedding import ModelNotReady
from clarity.hooks import brief
from clarity.hooks.commands import MAX_PROGRAMS, command_tags, programs_of
from clarity.hooks.context import fit, injectable, note_of
from clarity.hooks.controls import Pauses, excluded_from_learning, project_rules
from clarity.hooks.events import HookEvent, reply
from clarity.hooks.injections import InjectedMemory, InjectionLog
from clarity.hooks.learner import Learner, provenance
from clarity.hooks.places import project_file, tool_file
from clarity.hooks.session_budget import FILE_NAME as BUDGET_FILE
from clarity.hooks.session_budget import SessionBudget, session_key
from clarity.hooks.spool import PendingEvents
from clarity.memory import MemoryService
from clarity.models import GLOBAL_SCOPE, MAX_QUERY_CHARS, Memory, MemoryCreate, MemoryType, Source
from clarity.project import known_project_scope, project_root, project_scope
from clarity.redact import redact_cut
from clarity.relevance import identifiers, is_relevant
from clarity.requests import RetrieveRequest, RetrieveResult, ScoredMemory
from clarity.store.space import InsufficientStorage
from clarity.text import one_line

log = logging.getLogger(__name__)

# handle() only queues these for the learner (after the pause and exclusion checks): its reply is {}.
LEARNING_EVENTS = ("PostToolUse", "PostToolUseFailure", "Stop", "SessionEnd")
FILE_MEMORIES = 3  # what is known about one file: at most this many lines before a Read or an edit

# "remember that ...", "note: ...", "keep in mind ...", "don't forget ..."
_ASK = r"^\s*(?:please\s+)?(?:remember|note|keep in mind|don'?t forget|do not forget)"
_REMEMBER = re.compile(_ASK + r"(?:\s+that)?\s*[:,-]?\s+(?P<what>.+)", re.IGNORECASE | re.DOTALL)
# The same request with nothing after it ("remember that", "note:"): stored as nothing, and said.
_REMEMBER_NOTHING = re.compile(_ASK + r"(?:\s+that\b|\s*[:,-])[\s:,.!-]*$", re.IGNORECASE)
_PREFERENCE = re.compile(
    r"\b(prefer|always|never|don'?t|do not|instead of|rather than|avoid|i like|i want)\b", re.I
)
# "remember for the team that ...": shared with the team (``clarity.team.share`` decides).
_FOR_TEAM = re.compile(
    r"^(?:for|with) (?:the |my |our )?team\b(?:\s+that)?\s*[:,-]?\s+(?P<what>.+)", re.I | re.S
)
_GLOBAL = re.compile(r"\b(in (?:all|every) (?:projects?|repos?(?:itories)?)|globally|everywhere)\b", re.I)


_STOPWORDS = frozenset(
    [
        "about",
        "after",
        "again",
        "also",
        "always",
        "before",
        "being",
        "could",
        "does",
        "doing",
        "from",
        "have",
        "into",
        "just",
        "like",
        "make",
        "more",
        "most",
        "much",
        "need",
        "never",
        "only",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "very",
        "want",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
    ]
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_]{4,}", text.casefold()) if w not in _STOPWORDS}


class HookService:
    def __init__(self, settings: Settings, memory: MemoryService) -> None:
        self.settings = settings.hooks
        self.memory = memory
        self.injections = InjectionLog()  # what the replies below told Claude, for the dashboard
        self.learner = Learner(
            memory,
            max_events=settings.hooks.learning_queue,
            max_bytes=settings.hooks.learning_queue_bytes,
            on_error=self.injections.record_error,
        )
        self.pauses = Pauses(settings.storage.app_data_dir / "controls.json")
        # What each session was given: a memory reaches the model once per session (kept
        # across a restart, see ``clarity.hooks.session_budget``).
        self.budget = SessionBudget(settings.storage.app_data_dir / BUDGET_FILE)
        self._guards = [(re.compile(rule.pattern), rule) for rule in settings.hooks.guards]
        # Events the plugin kept while no daemon answered: learned now, and looked for again
        # before each hook call (take_pending), ahead of the live events that follow them.
        self.pending = PendingEvents(settings.storage.app_data_dir, self.handle_after_reply)
        self.take_pending()

    def take_pending(self) -> None:
        """Queue the events kept while no daemon answered (``clarity.hooks.spool``), if any."""
        try:
            self.pending.take()
        except OSError as exc:  # a hook call must not fail for it: the file stays for next time
            log.warning("kept hook events not read: %s", exc)

    def handle(self, event: HookEvent) -> dict[str, Any]:
        """Apply the user's switches first: a paused project gets nothing, excluded tools and
        paths teach nothing (checked by ``_may_learn`` when the learner takes the event), and
        subagents get no memories unless configured to."""
        name = event.hook_event_name
        if name in LEARNING_EVENTS:
            self._submit(event)
            return {}
        if self.pauses.is_paused(project_scope(event.cwd) if event.cwd else None):
            return {}
        _, rules = project_rules(event.cwd)
        learn = self.settings.learn and rules.learn
        inject = (
            self.settings.inject
            and rules.inject
            and (event.agent_id is None or self.settings.inject_in_subagents)
        )
        if name == "SessionStart":
            return self.session_start(event) if inject else {}
        if name == "UserPromptSubmit":
            return self.prompt_submitted(event, inject=inject, learn=learn)
        if name == "PreToolUse":
            return self.pre_tool(event, inject=inject)
        return {}

    @staticmethod
    def reply_is_empty(event: HookEvent) -> bool:
        """Whether handle(event) returns {} whatever the pauses, rules, guards and store say: the
        learning events, and a PreToolUse with neither a Bash command nor a file that per-file
        recall looks up (pre_tool has nothing to check)."""
        name = event.hook_event_name
        return name in LEARNING_EVENTS or (
            name == "PreToolUse" and event.command is None and tool_file(event) is None
        )

    def handle_after_reply(self, event: HookEvent) -> None:
        """handle() for an event already answered with {} (``reply_is_empty``). Nothing here waits:
        a learning event is queued as it is (a lock, no thread round trip) and its checks (a git
        call for a new project, the exclusion check's shlex over a long command) run on the
        learner's thread; a PreToolUse without a command or a file has nothing to do."""
        if event.hook_event_name in LEARNING_EVENTS:
            self._submit(event)

    def _submit(self, event: HookEvent) -> None:
        """Queue a tool event for the learner, unless a pause already covers it: a pause is
        judged when the event happens, so lifting it later does not teach what ran while it
        held. The project is known here only if recently worked out (no git call on the event
        loop); ``_may_learn`` checks again when the learner takes the event."""
        if event.hook_event_name == "SessionEnd":
            self.budget.end(event.session_id)
        scope = known_project_scope(event.cwd) if event.cwd else None
        if self.pauses.is_paused(scope):
            return
        judged = scope is not None or not event.cwd  # else the project is worked out on the learner
        self.learner.submit(event, functools.partial(self._may_learn, pause_judged=judged))

    def _may_learn(self, event: HookEvent, pause_judged: bool = False) -> bool:
        """Whether to learn from a tool event, decided when the learner takes it: not while its
        project (or everything) was paused when it happened (judged here only when ``_submit``
        could not tell the project), nor when the config or the project's rules say no, nor for
        an excluded tool or path. A pause set after the event does not drop it."""
        if not self.settings.learn:
            return False
        if not pause_judged and self.pauses.is_paused(project_scope(event.cwd) if event.cwd else None):
            return False
        return not excluded_from_learning(
            event.tool_name,
            event.tool_input,
            event.cwd,
            self.settings.exclude_tools,
            self.settings.exclude_paths,
        )

    @property
    def backlog(self) -> int:
        """Events not learned from yet: in the learner's queue or being learned."""
        return self.learner.backlog

    # -- SessionStart -------------------------------------------------------------------------

    def session_start(self, event: HookEvent) -> dict[str, Any]:
        """The brief (``clarity.hooks.brief``), less what this session was already given; after
        ``/clear`` or a compaction (``source`` clear or compact) the context is gone, so the
        session is given everything again."""
        if not self.settings.inject:
            return {}
        key = session_key(event.session_id, event.agent_id)
        if event.source in ("clear", "compact"):
            self.budget.reset(key)
        scope = project_scope(event.cwd)
        found = brief.candidates(self.memory, scope)
        limit = self.settings.context_chars
        text, kept = self.budget.claim(
            key, found, lambda c: c.memory, lambda fresh: brief.compose(fresh, limit), lambda c: c.note
        )
        if not text:
            return {}
        shown = [c.memory for c in kept]
        self.memory.mark_used(shown)
        self._record(event, scope, f"session {event.source or 'start'}", text, shown)
        return reply("SessionStart", text)

    # -- UserPromptSubmit ---------------------------------------------------------------------

    def prompt_submitted(self, event: HookEvent, inject: bool = True, learn: bool = True) -> dict[str, Any]:
        prompt = (event.prompt or "").strip()
        if not prompt:
            return {}
        scope = project_scope(event.cwd)
        if learn and _REMEMBER_NOTHING.match(prompt):
            note = "Clarity stored nothing: say what to remember after the request, e.g. 'remember that ...'."
            self._record(event, scope, prompt, note, [])
            return reply("UserPromptSubmit", note)
        wanted = _REMEMBER.match(prompt)
        if wanted and learn:
            return self._remember(event, scope, wanted.group("what").strip())
        if not inject:
            return {}
        _, chosen = self.prompt_choice(prompt, scope)
        block = self._give(
            event,
            scope,
            prompt,
            "Relevant memories from Clarity (long-term memory of earlier sessions):",
            chosen,
            self.settings.context_chars,
        )
        return reply("UserPromptSubmit", block)

    def prompt_choice(
        self, prompt: str, project: str | None, limit: int | None = None
    ) -> tuple[RetrieveResult, list[ScoredMemory]]:
        """The prompt hook's retrieval (``limit``, default 2 x ``hooks.max_memories``, counting no
        use) and the relevant part of it, best first and not yet cut to the slots or to what the
        session was given: the hook and the dashboard's "why not" lookup both decide with this."""
        result = self.memory.retrieve(
            RetrieveRequest(
                query=prompt[:MAX_QUERY_CHARS], limit=limit or self.settings.max_memories * 2, scope="default"
            ),
            project=project,
            track_use=False,  # only what reaches the reply counts (``_give``)
        )
        names, words, cut = identifiers(prompt), _content_words(prompt), self.settings.min_similarity

        def relevant(found: ScoredMemory) -> bool:
            if found.similarity is not None:
                return is_relevant(found.similarity, found.memory.content, names, cut)
            # No similarity to gate on (the model is not ready, or the memory's vector is still to
            # come): an identifier it names, or two content words it shares with the prompt.
            text = found.memory.content
            return is_relevant(0.0, text, names, cut) or len(words & _content_words(text)) >= 2

        return result, [found for found in result.results if relevant(found)]

    def _remember(self, event: HookEvent, scope: str, what: str) -> dict[str, Any]:
        team = _FOR_TEAM.match(what)
        what = team.group("what").strip() if team else what
        kind = MemoryType.preference if _PREFERENCE.search(what) else MemoryType.fact
        target = GLOBAL_SCOPE if _GLOBAL.search(what) else scope
        try:
            request = MemoryCreate(
                content=what,
                memory_type=kind,
                importance=0.8,
                scope=target,
                source=Source.hook,
                session_id=event.session_id[:200],
                tags=["user-request"],
                metadata=provenance(event),
                shared=team is not None,
            )
            result = self.memory.store(request)
        except (ValidationError, ModelNotReady, InsufficientStorage) as exc:
            # The user asked for this explicitly: say it was not kept rather than stay silent.
            why = "; ".join(describe_validation_error(exc)) if isinstance(exc, ValidationError) else str(exc)
            return reply("UserPromptSubmit", f"Clarity could not store this memory: {why}")
        where = "for every project" if target == GLOBAL_SCOPE else "for this project"
        where += f", {result.team}" if result.team else ""  # shared with the team, or why not
        note = f"Clarity stored this as a {kind.value} {where} (id {result.id}): {one_line(result.memory.content, 300)}"
        for old in result.superseded:  # the older value is left out of every context from now on
            note += "\n" + replaces(old.id, old.reason, old.content)
        # The session has it now: no prompt or tool context of this session repeats it.
        self.budget.given(session_key(event.session_id, event.agent_id), [result.memory])
        self._record(event, scope, event.prompt or what, note, [result.memory])
        return reply("UserPromptSubmit", note)

    # -- PreToolUse ---------------------------------------------------------------------------

    def pre_tool(self, event: HookEvent, inject: bool = True) -> dict[str, Any]:
        command = event.command
        if command is None:
            return self.file_context(event) if inject else {}
        for pattern, rule in self._guards:
            if pattern.search(command):
                return reply(
                    "PreToolUse",
                    permissionDecision=rule.decision,
                    permissionDecisionReason=f"Clarity guard: {rule.reason}",
                )
        if not inject:
            return {}
        programs = programs_of(command, MAX_PROGRAMS)
        if not programs:
            return {}  # only variable assignments: no program has a history
        program = programs[-1]
        # Lexical only: a command is matched by its words, and this path must not pay for the model.
        result = self.memory.retrieve(
            RetrieveRequest(
                query=command[:MAX_QUERY_CHARS],
                limit=3,
                scope="project",
                tags=command_tags(programs),
                memory_types=[MemoryType.fix, MemoryType.error],
                mode="lexical",
            ),
            project=project_scope(event.cwd),
            track_use=False,  # only what reaches the reply counts (``_give``)
        )
        fixes = [r for r in result.results if r.memory.memory_type == MemoryType.fix]
        block = self._give(
            event,
            result.scopes[0] if result.scopes else "",
            f"Bash: {command}",
            f"Clarity: what happened before with `{one_line(redact_cut(program, 60), 60)}` in this project:",
            fixes or result.results,
            min(self.settings.context_chars, 1000),
            most=2,
        )
        return reply("PreToolUse", block)

    def file_context(self, event: HookEvent) -> dict[str, Any]:
        """What is known about the file a Read, Edit, Write or MultiEdit names: the memories
        anchored to it (failures, fixes, decisions, notes), checked; nothing for a file outside
        the project."""
        named = tool_file(event)
        root = project_root(event.cwd) if named and event.cwd else None
        path = project_file(root, named, event.cwd) if root is not None and named else None
        if path is None:
            return {}
        scope = project_scope(event.cwd)
        found = self.memory.about_file(scope, path, limit=FILE_MEMORIES * 2)
        shown = one_line(redact_cut(path, 200), 200)
        block = self._give(
            event,
            scope,
            f"{event.tool_name}: {path}",
            f"Clarity: what is known about {shown}:",
            found,
            min(self.settings.context_chars, 1000),
            most=FILE_MEMORIES,
        )
        return reply("PreToolUse", block)

    # -- what reaches the model ---------------------------------------------------------------

    def _give(
        self,
        event: HookEvent,
        scope: str,
        trigger: str,
        title: str,
        chosen: Sequence[ScoredMemory],
        limit: int,
        most: int | None = None,
    ) -> str | None:
        """The block of ``chosen`` memories this session was not given yet (at most ``most``,
        default ``hooks.max_memories``, within ``limit`` characters), recorded as given, counted
        as used and logged; None when every one was given already. Memories whose anchors keep
        them out (a file gone, the code rewritten) are dropped first; a changed one's line
        says so."""
        most = most or self.settings.max_memories
        text, kept = self.budget.claim(
            session_key(event.session_id, event.agent_id),
            injectable(chosen),
            lambda r: r.memory,
            lambda fresh: fit(title, fresh[:most], limit, lambda r: r.memory, notes=note_of),
            note_of,
        )
        if text:
            self.memory.mark_used([r.memory for r in kept])
            self._record(event, scope, trigger, text, kept)
        return text

    # -- the injection log --------------------------------------------------------------------

    def _record(
        self,
        event: HookEvent,
        scope: str,
        trigger: str,
        context: str | None,
        shown: Sequence[ScoredMemory | Memory],
    ) -> None:
        """Log a reply that carries context, with the memories in its text (``shown``)."""
        if not context:
            return
        injected = [
            InjectedMemory(
                item.memory.id,
                item.memory.memory_type.value,
                item.memory.content,
                item.score,
                item.similarity,
                item.why,
            )
            if isinstance(item, ScoredMemory)
            else InjectedMemory(item.id, item.memory_type.value, item.content)
            for item in shown
        ]
        self.injections.record(
            event.hook_event_name,
            event.session_id,
            scope,
            trigger,  # whole: the log redacts it before cutting it
            context,
            injected,
            tool_name=event.tool_name,
        )

    def close(self) -> None:
        self.learner.close()  # learns what was queued first
        self.budget.save()  # for the next daemon: a running session is not given its memories twice
