"""The dashboard's own guards: which paths it owns, its login cookie and its CSRF tokens.

- Token: when the daemon has a bearer token, a browser (which cannot add an Authorization
  header) logs in once at /login; the cookie it gets holds an HMAC of the token, never the token,
  is HttpOnly and SameSite=Strict, and is accepted only on dashboard paths (not /api, /hooks or
  /mcp, so it cannot be used to drive the API from another site).
- CSRF: every form that changes data carries ``csrf_token`` = HMAC(per-process secret, nonce),
  where the nonce sits in an HttpOnly SameSite=Strict cookie; both must be present and agree.

The header rules every route is held to (Host, Origin, Sec-Fetch-Site, a write's Content-Type)
are ``clarity.http.guard_rules``, applied by ``clarity.http.middleware.RequestGuard``; they read
the dashboard's paths from here. docs/security.md describes the model these rules implement.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import quote, urlsplit

SESSION_COOKIE = "clarity_session"
CSRF_COOKIE = "clarity_csrf"
CSRF_FIELD = "csrf_token"

# Paths the dashboard serves; everything else (/api, /hooks, /mcp, /readyz) is API and needs the
# bearer header. /healthz is open to all; /login and /static are open so that login can render.
_PAGES = ("/memory/", "/injections", "/overview", "/forget", "/fragments/", "/logout")
PUBLIC_PATHS = ("/login",)
PUBLIC_PREFIXES = ("/static/",)
_NONCE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")

# No inline script, no external anything: even if escaping failed somewhere, a script would not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # not no-referrer: that makes a browser send "Origin: null"
    "Cache-Control": "no-store",
}


def is_dashboard_path(path: str) -> bool:
    return path == "/" or path.startswith(_PAGES)


def is_public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def session_value(token: str) -> str:
    """What the login cookie holds: derived from the token, useless as a bearer token itself."""
    return hmac.new(token.encode(), b"clarity-dashboard-session", hashlib.sha256).hexdigest()


def session_ok(cookie: str | None, token: str) -> bool:
    return cookie is not None and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def token_ok(supplied: str, token: str) -> bool:
    return hmac.compare_digest(supplied.strip().encode(), token.encode())


def cookie_from_header(header: bytes | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


def safe_next(target: str | None) -> str:
    """Only local paths: never an absolute URL or a protocol-relative //host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def login_url(path: str, query: str = "") -> str:
    target = path + (f"?{query}" if query else "")
    return "/login?next=" + quote(safe_next(target), safe="")


class Csrf:
    """Per-process secret; a token is valid only with the nonce cookie it was made for."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def valid_nonce(nonce: str | None) -> bool:
        return bool(nonce and _NONCE.match(nonce))

    def token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def check(self, nonce: str | None, supplied: str | None) -> bool:
        if not nonce or not supplied or not self.valid_nonce(nonce):
            return False
        return hmac.compare_digest(supplied.encode(), self.token(nonce).encode())
