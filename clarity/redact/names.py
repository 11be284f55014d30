"""Which names and values are secrets: the judgment calls every rule shares.

A name (variable, key, flag) says what kind of secret its value is, if any
(:func:`_kind_for_name`); a value may still be a placeholder, a reference or a word rather than
a credential (:func:`_is_placeholder`, :func:`_looks_credential`, :func:`_strong`). The policy
these implement is described in :mod:`clarity.redact`. Also here: the ``[REDACTED:<kind>]``
marker every rule writes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

KINDS: Final = frozenset({"api_key", "aws_key", "token", "private_key", "password", "jwt", "secret"})

_MARK: Final = "[REDACTED:"
_Match = re.Match[str]


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


_DIGIT = re.compile(r"\d")


def _classes(value: str) -> int:
    """How many of upper case, lower case and digits occur in ``value``."""
    return (value.lower() != value) + (value.upper() != value) + (_DIGIT.search(value) is not None)


def _strong(value: str) -> bool:
    """Whether the value of a ``<X>_KEY`` with an unknown X is a secret rather than a name."""
    return (
        len(value) >= 16
        and _DIGIT.search(value) is not None
        and _classes(value) >= 2
        and not value.startswith(("/", "~", "."))
    )
