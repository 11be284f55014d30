"""Unlabelled secrets: long random-looking tokens with no name or provider prefix to go by.

One ``bytes.find`` scan locates every run of 20+ token characters; each is checked for provider
tokens inside it, then judged on character classes, entropy and shape (see the high-entropy
judgment call in :mod:`clarity.redact`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
from collections import Counter
from typing import Final

from clarity.redact.names import _classes, _marker
from clarity.redact.providers import _ANY_PROVIDER, _DISCORD, _bounded, _provider

_HEXISH = re.compile(r"(?:0x)?[0-9a-fA-F-]+")
_HASH_ALGO = r"(?i)(?:sha\d{1,3}|md5|blake2[bs]?|b3|xxh\d*)"
_HASH_BEFORE = re.compile(_HASH_ALGO + r"[-:=]?$")  # sha256:<digest>
_HASH_START = re.compile(_HASH_ALGO + r"-")  # SRI / npm integrity: sha512-<base64>
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MIN_ENTROPY: Final = 4.0
_SEPARATORS = re.compile(r"[/_+-]+")
_MAX_CHARS_PER_PIECE: Final = 3.2


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _random_share(body: str) -> float:
    """Share of ``body`` in separator-delimited segments that look random.

    Identifiers, paths and model ids (``Qwen/Qwen3-Next-80B-A3B-Instruct``) split into long
    word-like pieces (``Instruct``), random text into 1-3 character bits; judging each
    segment on its own keeps one random-looking piece (``A3B``) from tipping the whole.
    """
    random_chars = 0
    for seg in _SEPARATORS.split(body):
        if (
            len(seg) >= 6
            and len(seg) / len(_PIECES.findall(seg)) <= _MAX_CHARS_PER_PIECE
            and any(c.isupper() for c in seg)
            and any(c.islower() for c in seg)
        ):
            random_chars += len(seg)
    return random_chars / len(body)


def _is_base64_prose(value: str) -> bool:
    """Base64 of ordinary sentences is data, not a credential."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        decoded = raw.decode("ascii")
    except (binascii.Error, ValueError):
        return False
    letters = sum(c.isalpha() or c == " " for c in decoded)
    return decoded.count(" ") >= 2 and letters >= 0.85 * len(decoded)


def _looks_random(value: str, before: str) -> bool:
    """Decide whether an unlabelled 32+ char token is a credential (see module docstring)."""
    body = value.rstrip("=")
    if (
        len(body) < 32
        or _classes(body) < 3
        or _HEXISH.fullmatch(body)
        or _HASH_BEFORE.search(before)
        or _HASH_START.match(body)
    ):
        return False
    return _random_share(body) >= 0.5 and _entropy(body) >= _MIN_ENTROPY and not _is_base64_prose(value)


_PUBLIC_BLOB = re.compile(r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|;base64,)[ \t]*$")
_TOKEN_CHARS: Final = string.ascii_letters + string.digits + "+/_-"
# Maps token characters to "a" and everything else to " ", so ``bytes.find`` can locate runs
# of 20+ token characters at memchr speed instead of the regex engine trying every letter.
_RUN_MAP: Final = bytes(ord("a") if chr(b) in _TOKEN_CHARS else ord(" ") for b in range(256))
_LONG_RUN: Final = b"a" * 20


def _judge_token(text: str, start: int, end: int) -> str | None:
    """Replacement for the long token ``text[start:end]``, or None to keep it.

    Provider tokens inside it are redacted; otherwise the whole token if it looks random.
    """
    token = text[start:end]
    classes = _classes(token)
    if classes < 2:  # snake_case and lower-case paths: no provider token or secret is that plain
        return None
    if _ANY_PROVIDER.search(token) is not None:
        replaced = _ANY_PROVIDER.sub(_provider, token)
        if replaced != token:
            return replaced
    # Cheap rejections first: most long tokens are identifiers, paths, hex digests. The char
    # before rules out dotted names, URLs, templates and escapes.
    if len(token) < 32 or classes < 3 or (start and text[start - 1] in ".@%$\\&?#"):
        return None
    before = text[max(0, start - 24) : start]
    word = before[max(before.rfind(" "), before.rfind("\n"), before.rfind('"')) + 1 :]
    if "://" in word or _PUBLIC_BLOB.search(before):  # URL path, SSH public key, data: URI
        return None
    return _marker("secret") if _looks_random(token, before[-8:]) else None


def _long_tokens(text: str) -> str:
    """Apply :func:`_judge_token` to every run of 20+ token characters."""
    # "replace" turns each non-ASCII character into one "?", keeping positions aligned.
    mapped = text.encode("ascii", "replace").translate(_RUN_MAP)
    out: list[str] = []
    last = 0
    start = mapped.find(_LONG_RUN)
    while start >= 0:
        end = mapped.find(b" ", start)
        end = len(text) if end < 0 else end
        end += len(text[end : end + 2]) - len(text[end : end + 2].lstrip("="))  # base64 padding
        bot = _DISCORD.match(text, start) if text[end : end + 1] == "." and text[start] in "MNO" else None
        if bot is not None and _bounded(bot):
            out += (text[last:start], _marker("token"))
            last = end = bot.end()
            start = mapped.find(_LONG_RUN, end)
            continue
        new = _judge_token(text, start, end)
        if new is not None:
            out += (text[last:start], new)
            last = end
        start = mapped.find(_LONG_RUN, end)
    return "".join((*out, text[last:])) if out else text
