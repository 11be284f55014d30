"""Cutting text to a limit, one way for every caller: at most ``limit`` characters, ending in "…"
when something was cut, so a reader (Claude, the dashboard, the terminal) always sees that the
text goes on. Redaction, where needed, happens before the cut (``clarity.redact.redact_cut``):
a cut must never leave half a secret that redaction would no longer recognise.
"""

from __future__ import annotations

ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its first ``limit - 1`` and "…"."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def one_line(text: str, limit: int) -> str:
    """``text`` with every run of whitespace (newlines too) made one space, then cut."""
    return cut(" ".join(text.split()), limit)
