"""Secrets recognised by the text around them: private key blocks, webhook paths, URL
credentials, ``Authorization``/``Bearer`` headers, ``curl -u``, Azure connection strings and SAS
signatures, password options on command lines, and prose ("the staging password is ...").

Each rule keeps the text around the secret (header names, URL parts, the command) and replaces
only the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from clarity.redact.assignments import _VALUE
from clarity.redact.names import (
    _CODE_REF,
    _DIGIT,
    _MARK,
    _is_placeholder,
    _looks_credential,
    _marker,
    _Match,
)
from clarity.redact.providers import _WORD_CHARS, _refined


def _keep_prefix(
    kind: str, check: Callable[[str], bool] | None = None, *, word_start: bool = True
) -> Callable[[_Match], str]:
    """Replace only the ``s`` group, keeping the text around it (header names, URL parts).

    With ``word_start`` the match must begin a word (``Bearer`` but not ``xBearer``).
    """

    def replace(m: _Match) -> str:
        start, value = m.start(), m.group("s")
        if (word_start and start and m.string[start - 1] in _WORD_CHARS) or _is_placeholder(value):
            return m.group()
        if check is not None and not check(value):
            return m.group()
        marker = _marker(_refined(kind, value))
        return m.string[start : m.start("s")] + marker + m.string[m.end("s") : m.end()]

    return replace


def _opaque(value: str) -> bool:
    """Tokens nearly always have a digit or inner mixed case; ``Bearer authentication`` not."""
    inner = value[1:]
    return _DIGIT.search(value) is not None or (inner.lower() != inner and value.upper() != value)


# Body: base64 lines, "Proc-Type:"-style headers, real or JSON-escaped newlines. A block cut
# off before its END line (truncated tool output) still loses its base64 lines.
_PEM = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[A-Za-z0-9+/=\s\\:,-]{16,}?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:(?:\r?\n|\\r?\\n)[A-Za-z0-9+/=]{16,})+)"
)
_WEBHOOK = re.compile(
    r"(?:hooks\.slack\.com/(?:services|workflows|triggers)/|discord(?:app)?\.com/api/webhooks/)"
    r"(?P<s>[A-Za-z0-9/_-]{20,})"
)
_URL_CREDS = re.compile(r"://[^\s:/?#@'\"<>\[\]]*:(?P<s>(?!\[REDACTED:)[^\s/?#@'\"<>]+)@")
_AUTH_HEADER = re.compile(
    r"[Aa](?:uthorization|UTHORIZATION)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?i:(?:basic|bearer|token|digest|bot|apikey|sso-key)[ \t]+)?+"
    r"(?P<s>[^\s\"',;\\]{8,})"
)
_BEARER = re.compile(r"[Bb]earer[ \t]+(?P<s>[A-Za-z0-9._~+/-]{8,}=*)")
_CURL_USER = re.compile(r"-(?:u|-user)[ \t]+[\"']?[^\s:'\"]+:(?P<s>[^\s'\"]+)")
_AZURE = re.compile(r"(?:AccountKey|SharedAccess(?:Key|Signature))=(?P<s>(?!\[REDACTED:)[^;\"'\s]+)")
_SAS_SIG = re.compile(r"[?&]sig=(?P<s>[A-Za-z0-9%+/=]{20,})")


# Options whose argument is always a password, for the programs that have them: ``sshpass -p``,
# the MySQL family's ``-p<password>`` (attached: ``-p`` alone makes it prompt, and the next word
# is the database), ``docker``/``podman``/``helm`` ``login -p``, ``redis-cli -a``. Their value is
# a literal, so even a word (``-pSECRET``) counts; only templates (``$PW``, ``<pw>``) are kept.
_CLI_PASSWORD = re.compile(
    r"(?:sshpass\b[^\n|;&]*?[ \t]-p[ \t]*"
    r"|(?:mysql\w*|mariadb[\w-]*)\b[^\n|;&]*?[ \t](?:-p(?=[^\s\-])|--password=)"
    r"|(?:docker|podman|helm|buildah|skopeo|nerdctl)\b[^\n|;&]*?\blogin\b[^\n|;&]*?[ \t]-p[ \t]+"
    r"|redis-cli\b[^\n|;&]*?[ \t]-a[ \t]+)" + _VALUE
)
_CLI_HINTS: Final = (" -p", " -a ", "--password=")
_TEMPLATE = re.compile(r"[$%<{].*|.*(?:\.\.\.|\*\*\*|…).*")


def _cli_password(m: _Match) -> str:
    group = next(g for g in ("ev", "dv", "sv", "bv") if m.group(g) is not None)
    if m.group(group).startswith(_MARK) or _TEMPLATE.fullmatch(m.group(group)):
        return m.group()
    return m.string[m.start() : m.start(group)] + _marker("password") + m.string[m.end(group) : m.end()]


# "the staging password is Xk9#mQ2$vLp7", "the token for the CI bot was ...": a secret word,
# perhaps "for <something>", then "is"/"was" and a value that looks like a credential.
_PROSE = re.compile(
    r"(?i:(?:pass(?:word|phrase|code)?|passwd|pwd|pw|secret|token|api[ _-]?key|access[ _-]?key)s?"
    r"(?:[ \t]+(?:for|of|on|to|in|at)[ \t]+(?:the[ \t]+)?[\w.@/-]+(?:[ \t]+[\w.@/-]+)?)?"
    r"[ \t]+(?:(?:is|was)(?:[ \t]+now)?|will[ \t]+be|remains)[ \t]*:?[ \t]*)"
    r"(?P<q>[\"'`\u201c\u2018]?)(?P<s>[^\s\"'`\u201d\u2019]{4,})"
)
_PROSE_VERBS: Final = (" is ", " was ", " be ")
_PROSE_WORDS: Final = ("pass", "pw", "secret", "token", "api", "access")
_PROSE_REACH: Final = 64  # how far before the verb the secret word may stand


def _prose_value(m: _Match) -> tuple[int, int] | None:
    """Span of the credential a prose match names, or None when it names none."""
    value = m.group("s").rstrip(".,;:!?)")
    if (
        len(value) < 6
        or "://" in value
        or value.startswith(_MARK)
        or _is_placeholder(value)
        or not _looks_credential(value)
        or _CODE_REF.fullmatch(value)
    ):
        return None
    return m.start("s"), m.start("s") + len(value)


def _prose_starts(text: str) -> list[int]:
    """Word starts of secret words standing shortly before an "is"/"was": the only places the
    prose pattern is tried, so text without them costs a few ``str.find`` calls."""
    starts: set[int] = set()
    for verb in _PROSE_VERBS:
        i = text.find(verb)
        while i >= 0:
            lo = max(0, i - _PROSE_REACH)
            window = text[lo:i].lower()
            for word in _PROSE_WORDS:
                j = window.find(word)
                while j >= 0:
                    if lo + j == 0 or not text[lo + j - 1].isalnum():
                        starts.add(lo + j)
                    j = window.find(word, j + 1)
            i = text.find(verb, i + 1)
    return sorted(starts)


def _prose_rule(text: str) -> str:
    out: list[str] = []
    last = 0
    for start in _prose_starts(text):
        if start < last or (m := _PROSE.match(text, start)) is None:
            continue
        span = _prose_value(m)
        if span is not None:
            out += (text[last : span[0]], _marker("password"))
            last = span[1]
    return "".join((*out, text[last:])) if out else text
