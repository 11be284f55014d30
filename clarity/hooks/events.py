"""The JSON Claude Code sends to hooks, and the JSON it accepts back.

Only the four common fields are required; everything else varies by event and by Claude Code
version, so it is optional and unknown fields are kept rather than rejected.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The events Clarity hooks, kept once in the command-hook client: that file must stay
# standard-library only (it never imports clarity), so the list is defined there and read here.
from clarity.hooks.command_client import EVENTS as EVENTS

# Events whose reply may carry additionalContext for the model. Stop must never: Claude Code
# feeds it back as a new turn and keeps going.
CONTEXT_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse")


# What ``HookEvent.for_learning`` keeps: the tool input the learner and the exclusion rules read,
# and the ids a learned memory's provenance names.
_LEARNED_INPUT = frozenset({"command", "file_path", "notebook_path", "path"})
_PROVENANCE = frozenset({"tool_use_id", "prompt_id"})


class HookEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Ids key what a session was given (hooks.session_budget, kept across restarts): bounded,
    # and free of NUL, which separates a session from its subagents there.
    session_id: str = Field(max_length=200)
    transcript_path: str = Field("", max_length=4096)
    cwd: str = Field(max_length=4096)
    hook_event_name: str = Field(max_length=64)
    prompt: str | None = None
    tool_name: str | None = Field(None, max_length=200)
    tool_input: dict[str, Any] | None = None
    tool_response: Any = None
    error: str | None = None
    source: str | None = None
    agent_id: str | None = Field(None, max_length=200)

    @field_validator("session_id", "agent_id")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    @property
    def command(self) -> str | None:
        if self.tool_name == "Bash" and self.tool_input:
            value = self.tool_input.get("command")
            return value if isinstance(value, str) and value.strip() else None
        return None

    def for_learning(self) -> HookEvent:
        """A copy with only what the learner and its checks read, for its queue.

        A tool's output (``tool_response``, up to the request limit per event) and unknown
        fields are dropped, so waiting events hold their commands and errors only; the learner
        redacts those in full before it cuts anything.
        """
        tool_input = {
            k: v for k, v in (self.tool_input or {}).items() if k in _LEARNED_INPUT and isinstance(v, str)
        }
        values: dict[str, Any] = {
            "session_id": self.session_id,
            "cwd": self.cwd,
            "hook_event_name": self.hook_event_name,
            "tool_name": self.tool_name,
            "tool_input": tool_input or None,
            "error": self.error,
            "agent_id": self.agent_id,
        }
        for key, value in (self.model_extra or {}).items():
            if key in _PROVENANCE and isinstance(value, str):
                values[key] = value
        return HookEvent.model_construct(**values)

    @property
    def file_path(self) -> str | None:
        if self.tool_input:
            value = self.tool_input.get("file_path") or self.tool_input.get("notebook_path")
            return value if isinstance(value, str) else None
        return None


def reply(event: str, context: str | None = None, **fields: Any) -> dict[str, Any]:
    """Claude Code's hook output: hookSpecificOutput with the same event name, or nothing."""
    specific: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if context and event in CONTEXT_EVENTS:
        specific["additionalContext"] = context
    if not specific:
        return {}
    return {"hookSpecificOutput": {"hookEventName": event, **specific}}
