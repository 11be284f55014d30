"""Secret redaction applied to everything before Clarity stores it.

Memories are shared across sessions and people and outlive the tool output they came from, so
a token pasted into a terminal must never reach the store. Hooks call this on every tool
result on the user's critical path, so patterns are precompiled, rules are gated by substring
checks, and long tokens are located with ``bytes.find`` rather than the regex engine: a 10 KB
string without secrets takes a small fraction of a millisecond.

A secret is replaced by ``[REDACTED:<kind>]`` and the text around it is kept (``password=``,
``Bearer ``, ``https://user:``...), so memories stay readable and show what kind of credential
was there. ``kind`` is one of :data:`KINDS`:

- ``api_key``: provider API keys (OpenAI, Anthropic, Stripe, Google, SendGrid, Twilio, Mailgun,
  Heroku, Postman, New Relic, xAI, Groq...) and values of ``*_API_KEY`` assignments.
- ``aws_key``: AWS access key ids and ``aws_secret_access_key`` values.
- ``token``: GitHub/GitLab/Slack/npm/PyPI/Hugging Face/DigitalOcean/Docker Hub/Vault/Doppler/
  Sentry/Grafana/Atlassian/Telegram/Discord bot tokens, ``Bearer``/``Authorization``
  credentials, Slack/Discord webhook paths, values of ``*_TOKEN`` assignments.
- ``private_key``: whole PEM/OpenSSH/PGP private key blocks, age keys, ``*_PRIVATE_KEY`` values.
- ``password``: passwords in URLs and ``curl -u``, ``*_PASSWORD`` and ``pw=`` assignments,
  ``--password``, the password options of ``sshpass -p``, ``mysql -p<pw>``, ``docker login -p``
  and ``redis-cli -a``, and prose ("the staging password is ...").
- ``jwt``: JSON Web Tokens.
- ``secret``: other named secrets (``CLIENT_SECRET``, ``AccountKey``...) and unlabelled
  high-entropy strings.

A recognisable token format wins over its context: ``password = pypi-AgEI...`` is a ``token``.

Judgment calls, chosen to keep recall high without mangling the code and logs Claude reads:

- Values that cannot be secrets survive: placeholders (``<your-password>``, ``${API_KEY}``,
  ``$API_KEY``, ``xxx``, ``***``, ``sk-...``, ``changeme``, ``example``...), booleans and
  null-ish words, values under 4 characters, numbers up to 5 digits (ports, lengths, TTLs:
  ``PASSWORD_MIN_LENGTH=8``), words that merely name a secret (``my_token``) and snake_case
  identifiers. ``changeme`` is a public default, not a secret.
- Names are matched by component and the secret word must come last (give or take ``_PROD``
  and the like), so ``MAX_TOKENS``, ``tokenizer``, ``TOKEN_LIMIT``, ``pad_token``,
  ``PASSWORD_FILE`` and ``secret_name`` are not secrets, while ``PGPASSWORD``, ``apiKey``,
  ``X-Auth-Token`` and ``SECRET_KEY_BASE`` are.
- Unquoted values after an upper-case name (``DB_PASSWORD=x``) are config and redacted. After
  any other name they are often code or prose (``token = params``, ``Token: expired``,
  ``password: str``), so they must look like a credential: a digit, a symbol or inner mixed
  case. ``password=hunter2xyz`` is redacted, ``password: hunter`` is not.
- A ``-p`` flag is a password only for the programs whose ``-p`` takes one (``sshpass``, the
  MySQL family attached as ``-pSECRET``, ``docker login``), and there even a word counts;
  ``docker run -p 80:80``, ``psql -p 5432`` and ``mysql -p db`` (which prompts) are left alone.
- Prose counts when a secret word stands shortly before "is"/"was" and the value looks like a
  credential: "the password is required" is not one.
- ``<X>_KEY`` names a secret for known X (``SECRET_KEY``, ``API_KEY``, ``APP_KEY``); for any
  other X (``STRIPE_KEY``, ``SORT_KEY``) only a value of 16+ characters with a digit does.
  ``PWD=/path`` is the shell's directory, ``Pwd=...`` in a connection string a password.
- An unquoted value runs on past ``)``, ``&``, ``;`` or ``,`` to the next space when more of it
  follows (generated secrets such as Django's ``SECRET_KEY`` contain them), unless what
  follows is another ``name=`` pair.
- Provider prefixes no word contains (``ghp_``, ``github_pat_``, ``AGE-SECRET-KEY-1``...) are
  found even glued to what precedes them; shorter ones (``sk-``, ``AKIA``) must start a token.
- High-entropy strings must be 32+ characters mixing upper case, lower case and digits, and
  not be hex (git SHAs, digests, docker ids, UUIDs, addresses), hash-prefixed (``sha256:``,
  ``sha512-``), part of a URL, an SSH public key or ``data:`` URI, built from word-like pieces
  (identifiers, paths, model ids), or base64 of prose. Hex-only secrets are therefore caught
  only when assigned to a secret-like name.
- ``redact_value`` also redacts the whole string under a key naming a secret (``"password"``,
  ``"Authorization"``, ``"Cookie"``...), placeholders excepted.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import Any, Final, TypeVar

from pydantic import BaseModel

__all__ = ["KINDS", "contains_secret", "redact", "redact_cut", "redact_record", "redact_value"]

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
    "shared": "secret", "client": "secret", "auth": "secret", "app": "secret",
    "application": "secret", "hmac": "secret", "jwt": "secret",
}  # fmt: skip
# ``<X>_KEY`` for any other X (``STRIPE_KEY``, ``MAILGUN_KEY``) is a secret only if its value
# looks like one (see ``_strong``): ``SORT_KEY=name`` is not. These X never make it a secret.
_WEAK: Final = "weak_secret"
_NOT_SECRET_KEYS: Final = _words(
    "sort primary foreign partition cache idempotency lookup group row column routing shard dedup "
    "dedupe unique composite index map dict ssh gpg pgp gnupg translation i18n react list"
)
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
    if (
        head.endswith(("password", "passwd", "passphrase", "passcode"))
        or head in ("pw", "pwd")  # ``pw=...``, ODBC ``PWD=...`` (the shell's ``PWD=/path`` is kept)
        or (prev and head == "pass")
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
    elif head == "key" and prev and prev not in _NOT_SECRET_KEYS:
        kind = _WEAK
    elif head == "auth" and len(parts) == 1:  # .npmrc ``_auth=``, docker ``"auth": "..."``
        kind = "token"
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
    | (?:\$(?:\{[^}]*\}?|\([^)]*\)?|[A-Za-z_]\w*)|%[A-Za-z_]\w*%?)[\w./:@{}$()-]*  # $VAR, ${VAR}, $(cmd), %VAR%
    | \{.*\} | .*<.*>.* | \(.*\) | \[.*\]  # {{ var }}, <your-key>, (...), [...]
    | (?:\d{1,5}|\d{1,3}(?:_\d{3})+)(?:\.\d+)?  # ports, lengths, TTLs, 1_000, 0.5
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
    r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:[(\[{].*)?|[A-Za-z_$][\w$]*[(\[{].*|[\[{].*"
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
        or (len(value) <= 256 and _PLACEHOLDER.fullmatch(value) is not None)  # bounded backtracking
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
#
# Speed: this runs on every tool result. A regex scan costs far more per character than
# ``str.find``, so each rule is gated by substring checks and anchored on a literal where
# possible; the unconditional work is one scan for long tokens and, when a secret-ish word
# occurs at all, one scan for ``<word>...=`` on a lower-cased copy.


def _gated(pattern: re.Pattern[str], replace: Callable[[_Match], str], *hints: str) -> _Rule:
    """A rule that runs ``pattern`` only if one of the literal ``hints`` occurs in the text."""

    def rule(text: str) -> str:
        return pattern.sub(replace, text) if any(h in text for h in hints) else text

    return rule


_WORD_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_-")


def _bounded(m: _Match) -> bool:
    """The match is a whole token, not the middle of ``task-sk-learn`` or ``XAKIA...``."""
    s, e = m.start(), m.end()
    return (s == 0 or m.string[s - 1] not in _WORD_CHARS) and (
        e == len(m.string) or m.string[e] not in _WORD_CHARS
    )


_DIGIT = re.compile(r"\d")


def _classes(value: str) -> int:
    """How many of upper case, lower case and digits occur in ``value``."""
    return (value.lower() != value) + (value.upper() != value) + (_DIGIT.search(value) is not None)


# (pattern, kind, extra check), most specific first: the first full match decides the kind.
# Each starts with a literal so the joined alternation gets the regex engine's first-char
# prefilter.
_PROVIDER_SPECS: Final[tuple[tuple[str, str, Callable[[str], bool] | None], ...]] = (
    (r"sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{20,}", "api_key", None),
    (r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", "api_key", lambda v: _classes(v[3:]) == 3),
    (r"sk_(?:live|test)_[A-Za-z0-9]{16,}", "api_key", None),
    (r"rk_(?:live|test)_[A-Za-z0-9]{16,}", "api_key", None),
    (r"whsec_[A-Za-z0-9+/]{24,}", "api_key", None),
    (r"A(?:KIA|SIA)[A-Z0-9]{16}", "aws_key", None),
    (r"gh[pousr]_[A-Za-z0-9]{30,}", "token", None),
    (r"github_pat_[A-Za-z0-9_]{30,}", "token", None),
    (r"gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}", "token", None),
    (r"xox[abposre]-[A-Za-z0-9-]{10,}", "token", lambda v: _DIGIT.search(v) is not None),
    (r"xapp-\d-[A-Za-z0-9-]{10,}", "token", None),
    (r"AIza[A-Za-z0-9_-]{35}", "api_key", None),
    (r"SK[0-9a-fA-F]{32}", "api_key", None),
    (r"npm_[A-Za-z0-9]{36}", "token", None),
    (r"pypi-AgE[A-Za-z0-9_-]{50,}", "token", None),
    (r"hf_[A-Za-z0-9]{30,}", "token", lambda v: _classes(v[3:]) >= 2),
    (r"xai-[A-Za-z0-9]{70,}", "api_key", None),
    (r"gsk_[A-Za-z0-9]{48,}", "api_key", None),
    (r"pplx-[A-Za-z0-9]{40,}", "api_key", None),
    (r"r8_[A-Za-z0-9]{37}", "api_key", None),
    (r"lin_api_[A-Za-z0-9]{40}", "api_key", None),
    (r"sbp_[a-f0-9]{40}", "token", None),
    (r"dop_v1_[a-f0-9]{64}", "token", None),
    (r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}", "token", None),
    (r"do[opr]_v1_[a-f0-9]{64}", "token", None),  # DigitalOcean
    (r"key-[0-9a-f]{32}", "api_key", None),  # Mailgun
    (r"HRKU-AA[0-9A-Za-z_-]{58}", "api_key", None),  # Heroku
    (r"dckr_pat_[A-Za-z0-9_-]{27,}", "token", None),  # Docker Hub
    (r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", "api_key", None),  # Postman
    (r"NRAK-[A-Z0-9]{27}", "api_key", None),  # New Relic
    (r"sntry[us]_[A-Za-z0-9+/_-]{60,}", "token", None),  # Sentry
    (r"gl(?:c|sa)_[A-Za-z0-9+/_-]{32,}", "token", None),  # Grafana
    (r"ATATT3[A-Za-z0-9_-]{100,}", "token", None),  # Atlassian
    (r"AGE-SECRET-KEY-1[0-9A-Z]{58}", "private_key", None),  # age
    (r"pul-[a-f0-9]{40}", "token", None),  # Pulumi
    (r"dapi[a-f0-9]{32}(?:-\d)?", "token", None),  # Databricks
    (r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}", "token", None),  # Square
    (r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_-]{32,}", "token", None),  # PlanetScale
    (r"ntn_\d{11}[A-Za-z0-9]{35}", "token", None),  # Notion
    (r"rubygems_[a-f0-9]{48}", "token", None),
    (r"fo1_[A-Za-z0-9_-]{40,}", "token", None),  # Fly.io
)  # fmt: skip
# These contain dots, colons or tildes, so the long-token scan never sees them whole: they are
# searched for on their own, gated by literals they contain: (patterns, kind, gating literals).
# Each ``str.find`` of a gate costs about a microsecond on 2 KB, so patterns share gates.
_DOTTED_SPECS: Final[tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...]] = (
    (
        (
            r"ya29\.[A-Za-z0-9_-]{20,}",
            r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            r"sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",  # Mapbox secret token (before JWT)
            r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
            r"hv[sbr]\.[A-Za-z0-9_-]{24,}",  # HashiCorp Vault
            r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",  # Doppler
        ),
        "token",
        ("eyJ", "ya29.", "SG.", "hv", "dp."),
    ),
    ((r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}",), "token", (".atlasv1.",)),  # Terraform Cloud
    ((r"(?<!\d)\d{8,10}:AA[A-Za-z0-9_-]{33}",), "token", (":AA",)),  # Telegram bot
    ((r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}",), "secret", ("Q~",)),  # Azure AD client secret
)  # fmt: skip
_DOTTED_KINDS: Final = {
    r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}": "api_key",
    r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*": "jwt",
}
_DISCORD_SPEC: Final = r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}"
_DISCORD = re.compile(_DISCORD_SPEC)
_PROVIDERS: Final = tuple(
    (re.compile(rx), kind, check)
    for rx, kind, check in (
        *_PROVIDER_SPECS,
        *((rx, _DOTTED_KINDS.get(rx, kind), None) for group, kind, _ in _DOTTED_SPECS for rx in group),
        (_DISCORD_SPEC, "token", None),
    )
)
_ANY_PROVIDER = re.compile("|".join(rx for rx, _, _ in _PROVIDER_SPECS))


def _provider_kind(token: str) -> str | None:
    """Kind of a token with a known provider format, or None."""
    for pattern, kind, check in _PROVIDERS:
        if pattern.fullmatch(token):
            return kind if check is None or check(token) else None
    return None


# Prefixes no word or identifier contains: a token starting with one is a secret even glued to
# what precedes it (``session-ghp_...``). Shorter or word-like ones (``sk-``, ``AKIA``, ``key-``)
# must start a token (``task-sk-learn``, ``XAKIA...``).
_DISTINCT_PREFIXES: Final = (
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "AGE-SECRET-KEY-1", "sk-ant-",
    "sk-proj-", "sk_live_", "rk_live_", "npm_", "pypi-AgE", "xoxb-", "xoxp-", "HRKU-AA", "dckr_pat_",
    "dop_v1_", "shpat_", "sntryu_", "sntrys_", "glsa_", "NRAK-", "PMAK-", "rubygems_", "pscale_",
    "lin_api_", "ATATT3",
)  # fmt: skip


def _provider(m: _Match) -> str:
    token = m.group()
    glued = token.startswith(_DISTINCT_PREFIXES) or m.string.endswith("/bot", 0, m.start())  # Telegram URLs
    kind = _provider_kind(token) if glued or _bounded(m) else None
    return token if kind is None else _marker(kind)


def _refined(kind: str, value: str) -> str:
    """A known token format says more than its context (``password=pypi-...`` is a token)."""
    return _provider_kind(value) or kind


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


def _strong(value: str) -> bool:
    """Whether the value of a ``<X>_KEY`` with an unknown X is a secret rather than a name."""
    return (
        len(value) >= 16
        and _DIGIT.search(value) is not None
        and _classes(value) >= 2
        and not value.startswith(("/", "~", "."))
    )


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


# --- high entropy --------------------------------------------------------------------------

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


# --- passwords on command lines and in prose ------------------------------------------------

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


_SAS_SIG = re.compile(r"[?&]sig=(?P<s>[A-Za-z0-9%+/=]{20,})")

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
    return red if len(red) <= limit else red[: limit - 1] + "…"


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
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


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
