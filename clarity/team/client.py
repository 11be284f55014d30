"""The daemon's client of the team server: the three calls of ``protocol.py`` over httpx.

TLS is checked against the system's CAs, or against ``team.ca_file`` for a team server whose
certificate a private CA signed; every request carries this developer's bearer token and gives up
after ``team.timeout_seconds``. Only the sync thread (``sync.py``) calls it, never a hook.

Failures come in three kinds, because the sync thread treats them apart: ``TeamUnreachable`` (no
connection, a timeout, a dropped answer, a 5xx without Retry-After) means try again later with the
same ops, after a backoff; ``TeamBusy``, a kind of it (a 429 or 503 with Retry-After: past
``team.writes_per_minute``, or an op another team-server replica is applying), means the server
answered and asked to wait that long, which the sync thread does and its status line says rather
than "unreachable"; ``TeamRefused`` (any other 4xx: a revoked token, a role that may not write, a
bad op) means the server answered and said no, with its ``error`` text.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from clarity.config_team import TeamSettings
from clarity.team.protocol import (
    PREFIX,
    ChangesResponse,
    DeleteOp,
    OpResult,
    OpsRequest,
    OpsResponse,
    PutOp,
    WhoAmI,
)


class TeamUnreachable(RuntimeError):
    """No usable answer: try again later. ``retry_after``: seconds the server asked to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TeamBusy(TeamUnreachable):
    """A 429 or 503 with Retry-After: the server asked to wait ``retry_after`` seconds. ``results``:
    the ops of the request it answered for before it stopped (applied ones answer duplicate
    again, so they need not be sent again)."""

    def __init__(self, message: str, retry_after: float, results: list[OpResult]) -> None:
        super().__init__(message, retry_after)
        self.results = results


class TeamRefused(RuntimeError):
    """The server answered with a refusal (4xx other than 429); ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _verify(team: TeamSettings) -> ssl.SSLContext | bool:
    if team.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(team.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"team.ca_file={str(team.ca_file)!r}: cannot be read as a CA ({exc})") from exc


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(response: httpx.Response) -> str:
    said = _body(response).get("error")
    return str(said) if said else f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the form the team server sends; an HTTP date counts as absent)."""
    wait = response.headers.get("Retry-After", "").strip()
    return float(wait) if wait.replace(".", "", 1).isdigit() else None


def _results(response: httpx.Response) -> list[OpResult]:
    found = _body(response).get("results")
    try:
        return [OpResult.model_validate(item) for item in found] if isinstance(found, list) else []
    except ValidationError:
        return []


class TeamClient:
    """One connection pool to the team server at ``team.url``."""

    def __init__(self, team: TeamSettings) -> None:
        if team.url is None:
            raise ValueError("team.url: not set; the team tier needs the team server's URL")
        self.url = team.url
        headers = {"Accept": "application/json"}
        if team.token is not None:
            headers["Authorization"] = f"Bearer {team.token.get_secret_value()}"
        timeout = team.timeout_seconds
        self._http = httpx.Client(
            base_url=f"{team.url}{PREFIX}",
            headers=headers,
            verify=_verify(team),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,  # a redirect would carry the token elsewhere
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # no connection, a timeout, an answer cut off
            raise TeamUnreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry = _retry_after(response)
            if retry is not None and response.status_code in (429, 503):
                raise TeamBusy(_error_text(response), retry, _results(response))
            raise TeamUnreachable(_error_text(response), retry)
        if response.status_code >= 400:
            raise TeamRefused(response.status_code, _error_text(response))
        return response

    def whoami(self) -> WhoAmI:
        return self._parse(WhoAmI, self._call("GET", "/whoami"))

    def push(self, ops: Sequence[PutOp | DeleteOp]) -> OpsResponse:
        """Send ``ops`` in this order; the answer has one result per op."""
        body = OpsRequest(ops=list(ops)).model_dump_json()
        response = self._call("POST", "/ops", content=body, headers={"Content-Type": "application/json"})
        return self._parse(OpsResponse, response)

    def changes(self, projects: Sequence[str], since: int, limit: int) -> ChangesResponse:
        params = {"projects": ",".join(projects), "since": str(since), "limit": str(limit)}
        return self._parse(ChangesResponse, self._call("GET", "/changes", params=params))

    @staticmethod
    def _parse(model: Any, response: httpx.Response) -> Any:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:  # a proxy's page, another version: not an answer to act on
            raise TeamUnreachable(f"the team server's answer is not {model.__name__}: {exc}") from None

    def close(self) -> None:
        self._http.close()
