"""The request guard's rules: which requests the daemon refuses before any route sees them.

Pure functions of the method, path and headers; ``clarity.http.middleware.RequestGuard`` applies
them to every route, in this order, and answers a ``Refusal`` as JSON naming the header.

- Who may call (``refuse_caller``): on a loopback bind only loopback Host names are served (DNS
  rebinding); a request whose Origin is not the daemon's own, or that a browser marks as sent by
  another site's page, is refused on every route and for every method.
- What a write may carry (``refuse_body_type``): JSON outside the dashboard, the dashboard's
  form encoding on its pages. The body types a page of another origin can send without a CORS
  preflight (text/plain, multipart, or none at all) are never accepted where JSON is expected.

Which paths are the dashboard's, its login cookie and its CSRF tokens are
``clarity.dashboard.security``. docs/security.md describes the model these rules implement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from clarity.dashboard.security import is_dashboard_path, is_public_path
from clarity.http.loopback import LOOPBACK_HOSTS


def host_allowed(host_header: str | None, bound_host: str) -> bool:
    """On a loopback bind, serve only requests addressed to a loopback name (DNS rebinding)."""
    if _unbracketed(bound_host) not in LOOPBACK_HOSTS:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    return _unbracketed(name) in LOOPBACK_HOSTS


def _unbracketed(name: str) -> str:
    """``[::1]`` -> ``::1``: an IPv6 literal as a Host header writes it, as LOOPBACK_HOSTS holds it."""
    return name[1:-1] if name.startswith("[") and name.endswith("]") and ":" in name else name


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """An Origin, when sent, must be this very host: the daemon's own dashboard. A browser sends it
    on every cross-origin request and every POST; curl, the CLI and Claude Code send none."""
    if origin is None:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


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
