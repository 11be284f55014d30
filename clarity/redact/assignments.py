"""Secrets named by what they are assigned to: ``DB_PASSWORD=x``, ``"apiKey": "..."``,
``--password x``.

A secret-ish word is found with ``str.find`` on a lower-cased copy and the name's start by
walking back, far cheaper than letting the regex engine try a name at every word; the name is
then judged by :func:`clarity.redact.names._kind_for_name` and the value by
:func:`_secret_span`. ``_VALUE`` (a quoted or bare value) is shared with the command-line
password rule.
"""

from __future__ import annotations

import re
import string
from typing import Final

from clarity.redact.names import (
    _CODE_REF,
    _TYPE_NAME,
    _WEAK,
    _is_placeholder,
    _kind_for_name,
    _looks_credential,
    _marker,
    _Match,
    _strong,
)
from clarity.redact.providers import _refined

# Assignment values: \"escaped\" (JSON inside JSON), "double", 'single' or bare.
_VALUE = (
    r"(?:\\\"(?P<ev>(?![\s,;]|\)[\s\\'\",;)]|\)$)(?:[^\"\\\r\n]|\\(?!\")[^\r\n])+)"
    r"|\"(?P<dv>(?![\s,;]|\)[\s\\'\",;)]|\)$)(?:[^\"\\\r\n]|\\.)+)"
    r"|'(?P<sv>(?![\s,;]|\)[\s\\'\",;)]|\)$)[^'\r\n]+)"
    r"|(?P<bv>(?![-=])[^\s\"'`,;&)}\]\\]+))"
)
_SEP = r"(?P<sep>[ \t]*(?::=|=>|=(?!=)|(?<!:):(?![:/]))[ \t]*)"
_ASSIGN = re.compile(r"(?P<name>[A-Za-z_][\w.-]*+)\\?[\"']?" + _SEP + _VALUE)
_FLAG = re.compile(r"--(?P<name>[A-Za-z][\w-]*+)(?P<sep>=|[ \t]+)" + _VALUE)
# What may follow a secret word to the end of an assignment's name and its operator. The
# words themselves are found with ``str.find`` on a lower-cased copy and the name's start by
# walking back: far cheaper than letting the regex engine try a name at every word.
_ASSIGN_TAIL = re.compile(r"([a-z0-9_.-]*+)\\?[\"']?[ \t]*(?::=|=>|=(?!=)|:(?![:/]))")
_TAIL_START: Final = frozenset(string.ascii_lowercase + string.digits + "_.-\\\"' \t:=")
_ASSIGN_HINTS: Final = ("pass", "pw", "secret", "token", "key", "auth")
_NAME_CHARS: Final = frozenset(string.ascii_lowercase + string.digits + "_.-")


# A bare value ends at the first ``)``, ``&``, ``;``, ``,``, ``}`` or ``]``, which end it in
# code and shell. A generated secret can hold them (Django's SECRET_KEY alphabet has ``(``,
# ``)`` and ``&``), so a value being redacted runs on to the next space or quote, unless what
# follows is only closing syntax or another ``name=`` pair (``?password=x&user=bob``).
_BARE_MORE = re.compile(r"(?:[^\s\"'`\\&;,]|[&;,](?![\w.-]+=))*")
_CLOSING: Final = ")]},;&"


def _secret_span(m: _Match, *, literal: bool = False) -> tuple[int, int, str] | None:
    """Where the secret value of ``NAME=value``-like text is, and its kind; None to keep it.

    Quoted values are literals and count unless they are placeholders. Unquoted values after
    an upper-case name (``DB_PASSWORD=x``) or in a ``--flag=x`` (``literal``) are config;
    after any other name they are often code or prose, so they must also look like a
    credential and not be followed by more words.
    """
    name = m.group("name")
    kind = _kind_for_name(name)
    if kind is None:
        return None
    group = next(g for g in ("ev", "dv", "sv", "bv") if m.group(g) is not None)
    value, end = m.group(group), m.end(group)
    if group == "bv":
        more = _BARE_MORE.match(m.string, end)
        tail = more.group().rstrip(_CLOSING) if more else ""
        if any(c.isalnum() for c in tail):
            value, end = value + tail, end + len(tail)
    if _is_placeholder(value.strip()):
        return None
    if kind == _WEAK:
        if not _strong(value.strip()):
            return None
        kind = "secret"
    if kind == "password" and name.lower().endswith("pwd") and value.startswith(("/", "~")):
        return None  # the shell's working directory, not ODBC's password
    if group == "bv":
        if _CODE_REF.fullmatch(value):
            return None
        if not literal and any(c.islower() for c in name):
            if not _looks_credential(value):
                return None
            after = m.string[end : end + 8].lstrip(" \t")[:1]
            if ":" in m.group("sep") and (
                (value.isalpha() and after.isalpha())
                or (after and after in "|=")
                or _TYPE_NAME.fullmatch(value)
            ):
                # prose (``token: GitHub Actions``) or annotation (``x: Value | None``); a value
                # with a digit or a symbol is a credential whatever follows it
                return None
    return m.start(group), end, _refined(kind, value)


def _assignment(m: _Match, *, literal: bool = False) -> str:
    """``m`` with its secret value replaced by a marker (the value never reaches past ``m``)."""
    span = _secret_span(m, literal=literal)
    if span is None:
        return m.group()
    start, end, kind = span
    return m.string[m.start() : start] + _marker(kind) + m.string[min(end, m.end()) : m.end()]


def _assignments(text: str) -> str:
    """Apply :func:`_assignment` wherever a secret-ish word is followed by ``=`` or ``:``."""
    # Non-ASCII characters become "?" so that positions in ``low`` match those in ``text``.
    low = (text if text.isascii() else text.encode("ascii", "replace").decode("ascii")).lower()
    hits: dict[int, int] = {}  # position of the secret word -> end of the name
    for word in _ASSIGN_HINTS:
        i = low.find(word)
        while i >= 0:
            j = i + len(word)
            # One character usually settles it (``pass\n``, ``keys()``); the regex is dearer.
            if low[j : j + 1] in _TAIL_START and (tail := _ASSIGN_TAIL.match(low, j)):
                hits[i] = tail.end(1)
            i = low.find(word, j)
    out: list[str] = []
    last = 0
    for hit in sorted(hits):
        if hit < last:
            continue  # inside a value just redacted
        start = hit
        while start > last and low[start - 1] in _NAME_CHARS:
            start -= 1
        if (start and low[start - 1] in _NAME_CHARS) or _kind_for_name(text[start : hits[hit]]) is None:
            continue  # overlaps a redaction just made, or not a secret's name
        m = _ASSIGN.match(text, start)
        span = None if m is None else _secret_span(m)
        if span is not None:
            out += (text[last : span[0]], _marker(span[2]))
            last = span[1]
    return "".join((*out, text[last:])) if out else text


def _flag(m: _Match) -> str:
    """``--password x`` / ``--api-key=x``, when the flag starts a word (not ``x--token``)."""
    before = m.string[m.start() - 1] if m.start() else " "
    if not (before.isspace() or before in "'\"="):
        return m.group()
    return _assignment(m, literal=m.group("sep") == "=")  # ``--password=x``: x is the argument
