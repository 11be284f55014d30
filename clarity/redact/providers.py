"""The table of provider token formats (``ghp_...``, ``sk-ant-...``, JWTs...) and how a token is
matched against it.

Data first: one row a format, with its kind and an extra check where the prefix alone is not
enough. The long-token scan (:mod:`clarity.redact.entropy`) finds undotted tokens and asks
:func:`_provider` about them; tokens with dots, colons or tildes are searched for by their own
gated rules (see ``_DOTTED_SPECS``). A known format also refines the kind a context suggests
(:func:`_refined`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Final

from clarity.redact.names import _DIGIT, _classes, _marker, _Match

_WORD_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_-")


def _bounded(m: _Match) -> bool:
    """The match is a whole token, not the middle of ``task-sk-learn`` or ``XAKIA...``."""
    s, e = m.start(), m.end()
    return (s == 0 or m.string[s - 1] not in _WORD_CHARS) and (
        e == len(m.string) or m.string[e] not in _WORD_CHARS
    )


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
