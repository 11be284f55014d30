"""The rules in the order they run, and the public functions that apply them: :func:`redact`
and :func:`redact_cut` on text, :func:`redact_value` and :func:`redact_record` over JSON-ish
values and pydantic records.

Speed: this runs on every tool result. A regex scan costs far more per character than
``str.find``, so each rule is gated by substring checks and anchored on a literal where
possible; the unconditional work is one scan for long tokens and, when a secret-ish word
occurs at all, one scan for ``<word>...=`` on a lower-cased copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from clarity.redact.assignments import _FLAG, _assignments, _flag
from clarity.redact.contextual import (
    _AUTH_HEADER,
    _AZURE,
    _BEARER,
    _CLI_HINTS,
    _CLI_PASSWORD,
    _CURL_USER,
    _PEM,
    _SAS_SIG,
    _URL_CREDS,
    _WEBHOOK,
    _cli_password,
    _keep_prefix,
    _opaque,
    _prose_rule,
)
from clarity.redact.entropy import _long_tokens
from clarity.redact.names import _WEAK, _is_placeholder, _kind_for_name, _marker, _Match, _strong
from clarity.redact.providers import _DOTTED_SPECS, _provider
from clarity.text import cut

_Rule = Callable[[str], str]


def _gated(pattern: re.Pattern[str], replace: Callable[[_Match], str], *hints: str) -> _Rule:
    """A rule that runs ``pattern`` only if one of the literal ``hints`` occurs in the text."""

    def rule(text: str) -> str:
        return pattern.sub(replace, text) if any(h in text for h in hints) else text

    return rule


_RULES: Final[tuple[_Rule, ...]] = (
    _gated(_PEM, lambda m: _marker("private_key"), "PRIVATE KEY"),
    *(_gated(re.compile("|".join(group)), _provider, *hints) for group, _, hints in _DOTTED_SPECS),
    _gated(_WEBHOOK, _keep_prefix("token"), "hooks.slack.com/", "/api/webhooks/"),
    _gated(_URL_CREDS, _keep_prefix("password", word_start=False), "://"),
    _gated(_AUTH_HEADER, _keep_prefix("token", _opaque), "uthorization", "UTHORIZATION"),
    _gated(_BEARER, _keep_prefix("token", _opaque), "earer"),
    _gated(_CURL_USER, _keep_prefix("password"), "-u"),  # also finds --user
    _gated(_AZURE, _keep_prefix("secret"), "AccountKey=", "SharedAccess"),
    _gated(_SAS_SIG, _keep_prefix("secret", word_start=False), "sig="),
    _gated(_CLI_PASSWORD, _cli_password, *_CLI_HINTS),
    _prose_rule,
    _assignments,
    _gated(_FLAG, _flag, "--"),
    _long_tokens,
)


def redact(text: str) -> str:
    """Return ``text`` with every detected secret replaced by ``[REDACTED:<kind>]``.

    Idempotent: markers are never matched again, so re-redacting stored text is harmless.
    """
    if len(text) < 8:
        return text
    for rule in _RULES:
        text = rule(text)
    return text


_CUT_MARGIN: Final = 16_384  # twice the longest secret considered (an RSA-4096 PEM block is ~3.3 KB)


def redact_cut(text: str, limit: int) -> str:
    """``redact(text)`` cut to at most ``limit`` characters, ending in "…" when cut.

    Redaction comes first, so a cut never leaves half a secret that redaction would no longer
    recognise. For speed on the hooks' critical path (a 1 MB command costs ~40 ms to redact
    whole), a much longer text is redacted up to the cut plus a margin, widened until the
    redacted window still reaches half the margin past the cut (markers shorten what they
    replace): for any secret shorter than that half margin (8 KB), the kept text is the same
    as if the whole text had been redacted.
    """
    window = limit + _CUT_MARGIN
    while True:
        whole = window >= len(text)
        red = redact(text if whole else text[:window])
        if whole or len(red) >= limit + _CUT_MARGIN // 2:
            break
        window *= 2
    return cut(red, limit)


def contains_secret(text: str) -> bool:
    """True when :func:`redact` would change ``text``."""
    return redact(text) != text


def redact_value(value: Any) -> Any:
    """Return a copy of ``value`` with every string inside dicts, lists and tuples redacted.

    Hook payloads are nested JSON, and a key such as ``"password"`` or ``"Authorization"``
    says its value is secret even when the value alone would not look like one.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            kind = _kind_for_name(key, dict_key=True) if isinstance(key, str) else None
            if kind == _WEAK:  # ``"stripe_key"``: only a value that looks like a secret is one
                kind = "secret" if isinstance(item, str) and _strong(item.strip()) else None
            if kind is not None and isinstance(item, str) and not _is_placeholder(item.strip()):
                out[redact(key)] = _marker(kind)
            else:
                out[redact_value(key)] = redact_value(item)
        return out
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_value(item) for item in value)
    return value


_Model = TypeVar("_Model", bound=BaseModel)


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None else cut(text, limit)


def redact_record(
    record: _Model, *, skip: Collection[str] = (), max_chars: Mapping[str, int] | None = None
) -> _Model:
    """A copy of ``record`` with every string it holds redacted, then cut to ``max_chars``.

    One call covers every field a record has or will gain: string fields, lists of strings
    (tags) and JSON fields (metadata keys and values, via :func:`redact_value`); enums, numbers
    and dates are left alone, as are the fields named in ``skip`` (identifiers). The full text
    is always redacted before a field is cut to its limit, so a cut never leaves half a
    secret that redaction could no longer recognise. Unchanged records are returned as is.
    """
    limits = max_chars or {}
    changes: dict[str, Any] = {}
    for name in type(record).model_fields:
        if name in skip:
            continue
        value = getattr(record, name)
        limit = limits.get(name)
        if type(value) is str:  # not enums: they are str subclasses
            new: Any = _cut(redact(value), limit)
        elif isinstance(value, list) and value and all(type(item) is str for item in value):
            new = list(dict.fromkeys(_cut(redact(item), limit) for item in value))
        elif isinstance(value, dict | list):
            new = redact_value(value)
        else:
            continue
        if new != value:
            changes[name] = new
    return record.model_copy(update=changes) if changes else record
