"""A memory's anchors on its dashboard page: each place and its state in words, and the
re-anchor form's places read one per line.

The states come from ``MemoryService.anchor_report`` (``clarity.requests.AnchorReport``), the
same check recall runs; this module only says them for a reader ("changed 2 days ago; about 40%
of the anchored lines differ", "gone: file deleted") and names the line of a place it cannot
read, so a typo in the form is answered on the page, never with a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clarity.dashboard.forms import PageError
from clarity.describe import age
from clarity.memory.anchoring import stored_anchors
from clarity.memory.anchors import parse_anchor_spec
from clarity.models import GLOBAL_SCOPE, MAX_ANCHORS, Memory
from clarity.requests import AnchorCheck, AnchorReport

FIELD = "anchors"  # the re-anchor form's textarea
SHORT_COMMIT = 10
_SERVICE_FIELD = re.compile(r"^anchors\[(\d+)\]")  # how the service names the place it refused


@dataclass(frozen=True)
class AnchorRow:
    """One anchor as the page lists it."""

    label: str  # src/cart.ts:12-30, src/cart.ts (addItem)
    state: str  # unchanged, moved, changed, gone; "not checked" when the checkout is not known
    words: str  # "changed 2 days ago; about 40% of the anchored lines differ", "gone: file deleted"
    captured: str  # "captured 3 hours ago at commit 1a2b3c4d5e"
    captured_at: str  # ISO 8601, for the tooltip


def _moment(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _state_words(check: AnchorCheck, now: datetime) -> str:
    if check.state == "changed":
        words = "changed"
        if check.modified_at is not None:
            words += " " + age(datetime.fromtimestamp(check.modified_at, UTC), now)
        if check.change is not None:
            words += f"; about {round(check.change * 100)}% of the anchored lines differ"
        return words + (f" ({check.detail})" if check.detail else "")
    if check.state == "gone":
        return f"gone: {check.detail or 'file deleted'}"
    if check.state == "moved":
        return "moved" + (f": {check.detail}" if check.detail else ", followed")
    return "unchanged"


def _captured(commit: str | None, captured_at: datetime | str, now: datetime) -> str:
    when = f"captured {age(_moment(captured_at), now)}"
    return f"{when} at commit {commit[:SHORT_COMMIT]}" if commit else f"{when} (no commit)"


def anchor_rows(report: AnchorReport, now: datetime) -> list[AnchorRow]:
    return [
        AnchorRow(
            label=check.label,
            state=check.state,
            words=_state_words(check, now),
            captured=_captured(check.commit, check.captured_at, now),
            captured_at=str(check.captured_at),
        )
        for check in report.anchors
    ]


def unchecked_rows(memory: Memory, now: datetime) -> list[AnchorRow]:
    """The anchors as stored, for a page that cannot check them (the checkout is not known)."""
    return [
        AnchorRow(
            label=anchor.label,
            state="not checked",
            words="not checked",
            captured=_captured(anchor.commit, anchor.captured_at, now),
            captured_at=anchor.captured_at.isoformat(),
        )
        for anchor in stored_anchors(memory)
    ]


def anchor_context(
    memory: Memory, report: AnchorReport | None, root: Path | None, now: datetime | None = None
) -> dict[str, Any]:
    """What the page's Anchors section shows. ``status`` picks its words: ``checked``,
    ``unknown_root`` (anchored, but this daemon has not seen the project's checkout),
    ``global`` (a global memory has no project to be anchored in) or ``unanchored``."""
    now = now or datetime.now(UTC)
    if report is not None:
        status, rows = "checked", anchor_rows(report, now)
    elif memory.anchors:
        status, rows = "unknown_root", unchecked_rows(memory, now)
    else:
        status, rows = ("global" if memory.scope == GLOBAL_SCOPE else "unanchored"), []
    return {
        "status": status,
        "rows": rows,
        "state": report.state if report else None,
        "note": report.note if report else "",
        "injectable": report.injectable if report else True,
        "root": str(root) if root else None,
        "confirmed": age(_moment(memory.confirmed_at), now) if memory.confirmed_at else None,
        "confirmed_at": memory.confirmed_at,
        "max": MAX_ANCHORS,
    }


def reanchor_specs(text: str) -> tuple[list[str] | None, list[int]]:
    """The re-anchor form's places, one per line (``path`` or ``path:12-30``), and the line each
    came from; (None, []) for an empty form: each anchor captured again where it is now. A place
    that cannot be read is refused with its line, the way the rest of the dashboard names fields."""
    specs, lines = [], []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if line.strip():
            specs.append(line.strip())
            lines.append(number)
    if len(specs) > MAX_ANCHORS:
        raise PageError(400, f"{FIELD}: {len(specs)} places; at most {MAX_ANCHORS}, one per line")
    for spec, number in zip(specs, lines, strict=True):
        try:
            parse_anchor_spec(spec)
        except ValueError as error:
            raise PageError(400, f"{FIELD}, line {number}: {error}") from None
    return (specs or None), lines


def service_error(message: str, lines: list[int]) -> str:
    """The service names a refused place by its index (``anchors[1]: ...``); the form by its line."""
    found = _SERVICE_FIELD.match(message)
    if found and int(found.group(1)) < len(lines):
        return f"{FIELD}, line {lines[int(found.group(1))]}" + message[found.end() :]
    return message
