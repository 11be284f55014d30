"""Secret redaction applied to everything before Clarity stores it.

Memories are shared across sessions and people and live far longer than the tool output they
came from, so a token pasted into a terminal must never reach the store. Hooks call this on
every tool result on the user's critical path, so every pattern is precompiled and most rules
are skipped outright by a cheap substring check; a 10 KB string without secrets costs a few
dozen microseconds.

A secret is replaced by ``[REDACTED:<kind>]`` and the text around it is kept (``password=``,
``Bearer ``, ``https://user:``...), so memories stay readable and show what kind of credential
was there. ``kind`` is one of :data:`KINDS`:

- ``api_key``: provider API keys (OpenAI, Anthropic, Stripe, Google, SendGrid, Twilio) and
  values of ``*_API_KEY`` assignments.
- ``aws_key``: AWS access key ids and ``aws_secret_access_key`` values.
- ``token``: GitHub/GitLab/Slack/npm/PyPI/Hugging Face tokens, ``Bearer``/``Authorization``
  credentials, Slack/Discord webhook paths, values of ``*_TOKEN`` assignments.
- ``private_key``: whole PEM/OpenSSH/PGP private key blocks, values of ``*_PRIVATE_KEY``.
- ``password``: passwords in URLs, ``*_PASSWORD`` assignments and ``--password`` flags.
- ``jwt``: JSON Web Tokens.
- ``secret``: other named secrets (``CLIENT_SECRET``, ``AccountKey``...) and unlabelled
  high-entropy strings.

Judgment calls, chosen to keep recall high without mangling ordinary code and logs:

- Assignment values that cannot be secrets survive: placeholders (``<your-password>``,
  ``${API_KEY}``, ``$API_KEY``, ``xxx``, ``***``, ``changeme``, ``example``...), booleans and
  null-ish words, numbers under six digits (ports, lengths, TTLs; ``PASSWORD_MIN_LENGTH=8``),
  and in code, references such as ``settings.api_key``, ``get_token()``, ``password=password``
  or type annotations (``password: str``). ``changeme`` is a public default, not a secret.
- Names are matched by component, so ``MAX_TOKENS``, ``tokenizer``, ``TOKEN_LIMIT``,
  ``PASSWORD_FILE`` and ``secret_name`` are not secrets, while ``PGPASSWORD``, ``apiKey`` and
  ``X-Auth-Token`` are.
- ``-p`` flags (``mysql -pSECRET``, ``docker run -p 80:80``) are left alone: too ambiguous.
- A bare word followed by a colon (``Token: expired``) is prose unless the value looks like a
  credential (digits, symbols, mixed case, or 12+ characters).
- High-entropy strings must be 32+ characters mixing upper case, lower case and digits, and
  not be hex (git SHAs, digests, docker ids, UUIDs, addresses), hash-prefixed (``sha256:``,
  ``sha512-``), part of a URL or path, made of dictionary-like pieces (identifiers), or base64
  of prose. Hex-only secrets are therefore only caught when assigned to a secret-like name.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

__all__ = ["KINDS", "contains_secret", "redact", "redact_value"]

KINDS: Final = frozenset({"api_key", "aws_key", "token", "private_key", "password", "jwt", "secret"})

_MARK: Final = "[REDACTED:"
_Match = re.Match[str]
_Rule = Callable[[str], str]


def _marker(kind: str) -> str:
    return f"{_MARK}{kind}]"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- name classification -------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# A component like these makes the name describe a secret's metadata, or a different kind of
# token altogether (``PASSWORD_MIN_LENGTH``, ``TOKEN_TTL``, ``--password-stdin``, ``pad_token``
# and the other tokenizer tokens that fill ML code).
_QUALIFIERS: Final = _words(
    "len length min max minimum maximum ttl timeout expiry expires expiration expire lifetime age "
    "limit limits count size file path dir directory type url uri endpoint name id ids header "
    "field param prefix suffix env var policy hint label placeholder format pattern regex "
    "strength rotation stdin prompt ask no enabled enable disabled required cmd command helper "
    "manager store provider source ref version arn usage budget counter created updated at "
    "index num number total used remaining mode method kind algorithm alg scheme scope scopes "
    "audience issuer ui to from per by of is has use with "
    "cls pad bos eos unk sep mask image video audio special start end stop text word vision "
    "delimiter break next prev last first eot boi eoi sentinel added input output hidden cache task "
    "public pub"
)
# Components that may follow the secret word without changing what the value is.
_SUFFIXES: Final = _words(
    "prod production dev development staging stage test live local b64 base64 hex raw value base "
    "old new current primary secondary main default enc encrypted plain plaintext"
)
_KEY_KINDS: Final = {
    "api": "api_key", "private": "private_key", "access": "secret", "secret": "secret",
    "account": "secret", "signing": "secret", "encryption": "secret", "master": "secret",
    "shared": "secret", "client": "secret", "auth": "secret",
}  # fmt: skip
_DICT_ONLY: Final = {
    "authorization": "token", "auth": "token", "cookie": "token",
    "credential": "secret", "credentials": "secret",
}  # fmt: skip


@lru_cache(maxsize=4096)
def _kind_for_name(name: str, *, dict_key: bool = False) -> str | None:
    """Secret kind a variable/key/flag name implies, or None.

    Works on components (snake, kebab, camelCase; for dotted names only the attribute, since
    ``token.info`` is not a token) and wants the secret word last, give or take a suffix such
    as ``_PROD``, so ``tokens``, ``tokenizer``, ``token_limit`` and ``token_embedding`` do not
    count. Cached: the same names come back constantly.
    """
    attr = name.rstrip(".").rsplit(".", 1)[-1] or name
    parts = [p for p in _NON_ALNUM.split(_CAMEL.sub("_", attr).lower()) if p]
    if any(p in _QUALIFIERS for p in parts):
        return None
    while parts and (parts[-1] in _SUFFIXES or parts[-1].isdigit()):
        parts.pop()
    if not parts:
        return None
    head, prev = parts[-1], parts[-2] if len(parts) > 1 else ""
    kind: str | None = None
    if head.endswith(("password", "passwd", "passphrase", "passcode")) or (
        prev and head in ("pass", "pwd")
    ):
        kind = "password"
    elif head.endswith("token"):
        kind = "token"
    elif head.endswith("secret"):
        kind = "secret"
    elif head == "key" and prev in _KEY_KINDS:
        kind = _KEY_KINDS[prev]
    elif head.endswith("key") and head[:-3] in _KEY_KINDS:
        kind = _KEY_KINDS[head[:-3]]
    elif head.endswith(("accesskey", "secretkey")):  # secretaccesskey, awssecretkey
        kind = "secret"
    elif dict_key and head in _DICT_ONLY:
        kind = _DICT_ONLY[head]
    if kind == "secret" and "aws" in parts:
        kind = "aws_key"
    return kind


# --- value plausibility --------------------------------------------------------------------

_PLACEHOLDER_WORDS: Final = _words(
    "none null nil undefined true false yes no on off changeme change_me change-me changeit "
    "example placeholder redacted todo tbd fixme dummy required optional empty default hidden "
    "masked removed notset not_set unset value "
    "str string bytes int float number bool boolean any unknown object dict list tuple set "
    "tensor final classvar callable sequence mapping secretstr optional[str] "
    "await new function lambda async yield not typeof require import self this"
)
_PLACEHOLDER = re.compile(
    r"""[*xX.#•_\-=]*                   # xxx, ***, ..., ----
    | [$%].*                            # $VAR, ${VAR}, $(cmd), %VAR%
    | \{.*\} | .*<.*>.* | \(.*\) | \[.*\]  # {{ var }}, <your-key>, (...), [...]
    | \d[\d_.]{0,6}                     # ports, lengths, TTLs, counts, 1_000, 0.5
    | \#[0-9a-fA-F]{3,8}                # CSS colours
    | (?i:your|insert|enter|replace|example|sample|dummy|fake|placeholder)[-_ ].*
    | [A-Za-z_.-]*(?i:pass|pwd|secret|token|key|cred)[A-Za-z_.-]*   # my_token, db-password
    | .*(?:\.\.\.|…|\*\*\*).*              # truncated or masked: sk-..., hf_***
    | [a-z]+(?:_[a-z]+)+                # snake_case names: "send_message"
    """,
    re.X,
)
# Attribute access, calls/indexing, or an identifier naming a secret (``entity_token2``).
_CODE_REF = re.compile(
    r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|.*[(\[{].*"
    r"|[A-Za-z_]\w*(?i:pass|pwd|secret|token|key|cred)\w*"
)
_TYPE_NAME = re.compile(r"(?:[A-Z][a-z]+)+\d*")
_CREDENTIAL_CHAR = re.compile(r"[^A-Za-z_.-]")


def _is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret rather than being one.

    Covers templates, variable references, masks, small numbers and names of secrets
    (``my_token``); a word spelling out a secret's name is a reference, not a secret.
    """
    return (
        len(value) < 4
        or value.startswith(_MARK)
        or value.lower() in _PLACEHOLDER_WORDS
        or _PLACEHOLDER.fullmatch(value) is not None
    )


def _looks_credential(value: str) -> bool:
    """Whether an unquoted value in code or prose could be a credential.

    ``token = params`` or ``Token: expired`` are code and prose; a credential nearly always
    has a digit, a symbol or internal mixed case (``hunter2``, ``Tr0ub4dor&3``).
    """
    value = value.rstrip(".,:!?")
    return _CREDENTIAL_CHAR.search(value) is not None or (
        any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    )


# --- rules ---------------------------------------------------------------------------------


def _sub(pattern: re.Pattern[str], replace: Callable[[_Match], str], hints: tuple[str, ...] = (), *,
         lower: bool = False) -> _Rule:
    """Build a rule that only runs the regex when one of ``hints`` occurs in the text.

    The substring checks run at memchr speed and let most rules skip ordinary text entirely.
    """

    def rule(text: str) -> str:
        if hints:
            hay = text.lower() if lower else text
            if not any(h in hay for h in hints):
                return text
        return pattern.sub(replace, text)

    return rule


def _keep_prefix(kind: str) -> Callable[[_Match], str]:
    """Replace only the ``s`` group, keeping text before it (header names, URL schemes)."""

    def replace(m: _Match) -> str:
        value = m.group("s")
        if _is_placeholder(value):
            return m.group(0)
        return m.string[m.start() : m.start("s")] + _marker(kind) + m.string[m.end("s") : m.end()]

    return replace


# Body: base64 lines, "Proc-Type:"-style headers, real or JSON-escaped newlines. A block cut
# off before its END line (truncated tool output) still loses its base64 lines.
_PEM = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[A-Za-z0-9+/=\s\\:,-]{16,}?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:(?:\r?\n|\\r?\\n)[A-Za-z0-9+/=]{16,})+)"
)

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*")

_WORD_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _bounded(m: _Match) -> bool:
    """The match is a whole token, not the middle of ``task-sk-learn`` or ``XAKIA...``."""
    s, e = m.start(), m.end()
    return (s == 0 or m.string[s - 1] not in _WORD_CHARS) and (
        e == len(m.string) or m.string[e] not in _WORD_CHARS
    )


def _classes(value: str) -> int:
    return any(c.isupper() for c in value) + any(c.islower() for c in value) + any(
        c.isdigit() for c in value
    )


# (hints, pattern, kind, extra check). The hint is a literal the token must contain.
_PROVIDERS: Final[tuple[tuple[tuple[str, ...], str, str, Callable[[str], bool] | None], ...]] = (
    (("sk-ant-",), r"sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{20,}", "api_key", None),
    (("sk-",), r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", "api_key",
     lambda v: _classes(v[3:]) == 3),
    (("_live_", "_test_"), r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", "api_key", None),
    (("whsec_",), r"whsec_[A-Za-z0-9+/=]{24,}", "api_key", None),
    (("AKIA", "ASIA"), r"A(?:KIA|SIA)[A-Z0-9]{16}", "aws_key", None),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"gh[pousr]_[A-Za-z0-9]{30,}", "token", None),
    (("github_pat_",), r"github_pat_[A-Za-z0-9_]{30,}", "token", None),
    (("gl",), r"gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}", "token", None),
    (("xox",), r"xox[abposre]-[A-Za-z0-9-]{10,}", "token", lambda v: any(c.isdigit() for c in v)),
    (("xapp-",), r"xapp-\d-[A-Za-z0-9-]{10,}", "token", None),
    (("AIza",), r"AIza[A-Za-z0-9_-]{35}", "api_key", None),
    (("ya29.",), r"ya29\.[A-Za-z0-9_-]{20,}", "token", None),
    (("SK",), r"SK[0-9a-fA-F]{32}", "api_key", None),
    (("SG.",), r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", "api_key", None),
    (("npm_",), r"npm_[A-Za-z0-9]{36}", "token", None),
    (("pypi-",), r"pypi-AgE[A-Za-z0-9_-]{50,}", "token", None),
    (("hf_",), r"hf_[A-Za-z0-9]{30,}", "token", lambda v: _classes(v[3:]) >= 2),
    (("dop_v1_",), r"dop_v1_[a-f0-9]{64}", "token", None),
    (("shpat_", "shpss_", "shpca_", "shppa_"), r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}", "token", None),
)  # fmt: skip


def _provider_rule(hints: tuple[str, ...], regex: str, kind: str,
                   check: Callable[[str], bool] | None) -> _Rule:
    pattern = re.compile(regex)

    def replace(m: _Match) -> str:
        if not _bounded(m) or (check is not None and not check(m.group(0))):
            return m.group(0)
        return _marker(kind)

    return _sub(pattern, replace, hints)


def _pem(m: _Match) -> str:
    return _marker("private_key")


def _jwt(m: _Match) -> str:
    return _marker("jwt") if _bounded(m) else m.group(0)


_WEBHOOK = re.compile(
    r"(?:https?://)?(?:hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|(?:discord(?:app)?\.com)/api/webhooks/)(?P<s>[A-Za-z0-9/_-]{20,})"
)
_URL_CREDS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"<>\[\]]*:(?P<s>(?!\[REDACTED:)[^\s/?#@'\"<>]+)@"
)
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?:(?:basic|bearer|token|digest|bot|apikey|sso-key)[ \t]+)?+"
    r"(?P<s>[^\s\"',;\\]{8,})"
)
_BEARER = re.compile(r"\b[Bb]earer[ \t]+(?P<s>[A-Za-z0-9._~+/-]{8,}=*)")
_AZURE = re.compile(
    r"\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=(?P<s>(?!\[REDACTED:)[^;\"'\s]+)"
)


def _token_value(kind: str) -> Callable[[_Match], str]:
    """Like :func:`_keep_prefix` but ignores plain words (``Bearer authentication``).

    Real tokens virtually always contain a digit or internal mixed case.
    """
    keep = _keep_prefix(kind)

    def replace(m: _Match) -> str:
        value = m.group("s")
        mixed = any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
        if not mixed and not any(c.isdigit() for c in value):
            return m.group(0)
        return keep(m)

    return replace


# Assignment values: \"escaped\" (JSON inside JSON), "double", 'single' or bare.
_VALUE = (
    r"(?:\\\"(?P<ev>(?![\s,;)])(?:[^\"\\\r\n]|\\(?!\")[^\r\n])+)"
    r"|\"(?P<dv>(?![\s,;)])(?:[^\"\\\r\n]|\\.)+)"
    r"|'(?P<sv>(?![\s,;)])[^'\r\n]+)"
    r"|(?P<bv>(?![-=])[^\s\"'`,;&)}\]\\]+))"
)
_ASSIGN = re.compile(
    r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*+)\\?[\"']?"
    r"(?P<sep>[ \t]*(?::=|=>|=(?!=)|(?<!:):(?![:/]))[ \t]*)" + _VALUE
)
_FLAG = re.compile(r"(?<![\w-])--(?P<name>[A-Za-z][\w-]*+)(?P<sep>=|[ \t]+)" + _VALUE)
_ASSIGN_HINTS: Final = ("pass", "pwd", "secret", "token", "key")


def _assignment(m: _Match) -> str:
    """Redact the value of ``NAME=value``-like text when NAME names a secret.

    Quoted values are literals and count unless they are placeholders. Unquoted values after
    an upper-case name (``DB_PASSWORD=x``) are config; after any other name they are often
    code or prose, so they must also look like a credential and not be followed by more words.
    """
    kind = _kind_for_name(m.group("name"))
    if kind is None:
        return m.group(0)
    group = next(g for g in ("ev", "dv", "sv", "bv") if m.group(g) is not None)
    value = m.group(group)
    if _is_placeholder(value.strip()):
        return m.group(0)
    if group == "bv":
        if _CODE_REF.fullmatch(value):
            return m.group(0)
        if any(c.islower() for c in m.group("name")):
            if not _looks_credential(value):
                return m.group(0)
            after = m.string[m.end() : m.end() + 8].lstrip(" \t")[:1]
            if ":" in m.group("sep") and (
                after.isalpha() or (after and after in "|=") or _TYPE_NAME.fullmatch(value)
            ):
                return m.group(0)  # prose (``cls_token: If True``) or annotation (``x: Value | None``)
    return m.string[m.start() : m.start(group)] + _marker(kind) + m.string[m.end(group) : m.end()]


# --- high entropy --------------------------------------------------------------------------

_CANDIDATE = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
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
    return (
        _random_share(body) >= 0.5
        and _entropy(body) >= _MIN_ENTROPY
        and not _is_base64_prose(value)
    )


def _high_entropy(m: _Match) -> str:
    text, start = m.string, m.start()
    if start and text[start - 1] in ".@%$\\&?#":
        return m.group(0)  # part of a dotted name, URL, template or escape sequence
    word_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start), text.rfind('"', 0, start))
    if "://" in text[word_start + 1 : start] or not _looks_random(m.group(0), text[max(0, start - 8) : start]):
        return m.group(0)
    return _marker("secret")


_RULES: Final[tuple[_Rule, ...]] = (
    _sub(_PEM, _pem, ("PRIVATE KEY",)),
    _sub(_JWT, _jwt, ("eyJ",)),
    *(_provider_rule(*p) for p in _PROVIDERS),
    _sub(_WEBHOOK, _keep_prefix("token"), ("/services/", "/workflows/", "/triggers/", "/webhooks/")),
    _sub(_URL_CREDS, _keep_prefix("password"), ("@",)),
    _sub(_AUTH_HEADER, _token_value("token"), ("authorization",), lower=True),
    _sub(_BEARER, _token_value("token"), ("earer",)),
    _sub(_AZURE, _keep_prefix("secret"), ("AccountKey=", "SharedAccess")),
    _sub(_ASSIGN, _assignment, _ASSIGN_HINTS, lower=True),
    _sub(_FLAG, _assignment, ("--",)),
    _sub(_CANDIDATE, _high_entropy),
)


# --- public API ----------------------------------------------------------------------------


def redact(text: str) -> str:
    """Return ``text`` with every detected secret replaced by ``[REDACTED:<kind>]``.

    Idempotent: markers are never matched again, so re-redacting stored text is harmless.
    """
    if len(text) < 8:
        return text
    for rule in _RULES:
        text = rule(text)
    return text


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
