"""The daemon's guards: which paths the dashboard owns, the login cookie, CSRF tokens, and the
header rules the request guard (``clarity.app.RequestGuard``) applies to every route.

- Token: when the daemon has a bearer token, a browser (which cannot add an Authorization
  header) logs in once at /login; the cookie it gets holds an HMAC of the token, never the token,
  is HttpOnly and SameSite=Strict, and is accepted only on dashboard paths (not /api, /hooks or
  /mcp, so it cannot be used to drive the API from another site).
- CSRF: every form that changes data carries ``csrf_token`` = HMAC(per-process secret, nonce),
  where the nonce sits in an HttpOnly SameSite=Strict cookie; both must be present and agree.
- Who may call (``refuse_caller``): on a loopback bind only loopback Host names are served (DNS
  rebinding); a request whose Origin is not the daemon's own, or that a browser marks as sent by
  another site's page, is refused on every route and for every method.
- What a write may carry (``refuse_body_type``): JSON outside the dashboard, the dashboard's
  form encoding on its pages. The body types a page of another origin can send without a CORS
  preflight (text/plain, multipart, or none at all) are never accepted where JSON is expected.

docs/security.md describes the model these rules implement.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

SESSION_COOKIE = "clarity_session"
CSRF_COOKIE = "clarity_csrf"
CSRF_FIELD = "csrf_token"

# Paths the dashboard serves; everything else (/api, /hooks, /mcp, /readyz) is API and needs the
# bearer header. /healthz is open to all; /login and /static are open so that login can render.
_PAGES = ("/memory/", "/injections", "/overview", "/forget", "/fragments/", "/logout")
PUBLIC_PATHS = ("/login",)
PUBLIC_PREFIXES = ("/static/",)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
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


def host_allowed(host_header: str | None, bound_host: str) -> bool:
    """On a loopback bind, serve only requests addressed to a loopback name (DNS rebinding)."""
    if bound_host not in LOOPBACK_HOSTS:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    return name in LOOPBACK_HOSTS


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """An Origin, when sent, must be this very host: the daemon's own dashboard. A browser sends it
    on every cross-origin request and every POST; curl, the CLI and Claude Code send none."""
    if origin is None:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


# -- the request guard's rules --------------------------------------------------------------------

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"  # what the dashboard's <form>s send
_OTHER_SITES = ("cross-site", "same-site")  # same-site: another port of the same host is another origin
_SHOWN = 100


@dataclass(frozen=True)
class Refusal:
    """Why the guard answers instead of the route: an HTTP status and a message naming the header."""

    status: int
    message: str


def shown(value: str) -> str:
    """A header value quoted for an error message, cut so a huge one does not flood the answer."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def refuse_caller(method: str, path: str, headers: Mapping[str, str], bound_host: str) -> Refusal | None:
    """Host, Origin and Sec-Fetch-Site: is this a request a web page may have sent on its own?"""
    host = headers.get("host")
    if path != "/healthz" and not host_allowed(host, bound_host):
        return Refusal(
            421,
            f"Host: {shown(host) if host else 'missing'} is not a name this daemon answers to; bound to "
            "loopback it serves only 127.0.0.1, localhost and [::1] (any port), so a web page "
            "reaching it under another name (DNS rebinding) is refused",
        )
    origin = headers.get("origin")
    if not origin_allowed(origin, host):
        own = f"http://{host}" if host else "this daemon's address"
        return Refusal(
            403,
            f"Origin: {shown(origin or '')} is not this daemon's own ({own}); requests from web pages "
            "of other origins are refused (clients that are not browsers send no Origin)",
        )
    site = headers.get("sec-fetch-site")
    if site in _OTHER_SITES and not _navigation(method, headers):
        return Refusal(
            403,
            f"Sec-Fetch-Site: {shown(site or '')}: the browser sent this for a page of another site; "
            "only the daemon's own pages may call it from a browser",
        )
    return None


def _navigation(method: str, headers: Mapping[str, str]) -> bool:
    """A link followed from another site: the user sees the answer, the linking page does not."""
    return method in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"


def expected_body_type(path: str) -> str:
    return FORM_TYPE if is_dashboard_path(path) or is_public_path(path) else JSON_TYPE


def refuse_body_type(method: str, path: str, headers: Mapping[str, str]) -> Refusal | None:
    """A write's body must be declared as what the route reads. A write with no body (DELETE, the
    backup's POST) has nothing to declare; a body without a Content-Type is refused, because a
    page's fetch() of a Blob sends exactly that without a preflight."""
    if method not in WRITE_METHODS:
        return None
    declared = headers.get("content-type")
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if declared is None and not has_body:
        return None
    expected = expected_body_type(path)
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type == expected:
        return None
    return Refusal(
        415,
        f"Content-Type: {shown(declared) if declared else 'missing'} is not accepted; "
        f"a {method} to {path[:_SHOWN]} must send {expected}",
    )
