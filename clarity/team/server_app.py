"""The team server's HTTP face (``clarity serve --team``): the three calls of
``clarity.team.protocol`` under /team/v1, and /healthz for a load balancer. Nothing of the
developer daemon's (MCP, hooks, REST, dashboard) is served here.

Every answer is JSON. A refusal of the request as a whole is an HTTP error with
``{"error": "..."}`` naming the field or header and the limit: 401 (no token, an unknown or a
revoked one), 403 (a read-only user's write), 400 (a body that is not JSON), 413 (a body past
MAX_BODY_BYTES), 422 (a field outside the protocol's schema), 429 (the writes budget,
with Retry-After), 507 (the disk under the store's free-space floor). Refusals of single ops are
in the 200 answer (``clarity.team.writes``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clarity.config import describe_validation_error
from clarity.store.space import InsufficientStorage
from clarity.team.audit import AuditLog
from clarity.team.backend import audit_name, open_state
from clarity.team.protocol import (
    MAX_CHANGES,
    MAX_PROJECTS,
    PREFIX,
    OpsRequest,
    OpsResponse,
    ProjectId,
    WhoAmI,
)
from clarity.team.rate import WriteBudget
from clarity.team.state import team_dir
from clarity.team.store import Stamps, TeamStore, page_json
from clarity.team.users import Unauthorized, User
from clarity.team.writes import TeamWrites

if TYPE_CHECKING:
    from clarity.config import Settings

log = logging.getLogger(__name__)

# A put of a 384-d model is ~10 KB of JSON, so MAX_OPS of them ~2.5 MB; one of the largest
# record the schema allows with an 8192-d vector is ~1 MB. A daemon splits its batches below this.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CURSOR = 2**53  # a change time in ms stays exact in a JSON number (and a float index)


class ChangesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: Annotated[list[ProjectId], Field(min_length=1, max_length=MAX_PROJECTS)]
    since: int = Field(0, ge=0, le=MAX_CURSOR)
    limit: int = Field(MAX_CHANGES, ge=1, le=MAX_CHANGES)


class Refusal(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class TeamServer:
    """The parts one team server process holds: users, state (``team.backend``: its own, or the
    state its replicas share in Qdrant), audit log, store, writes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.users, self.state = open_state(settings)
        self.audit = AuditLog(team_dir(settings.storage.root), name=audit_name(settings))
        model = self.state.model
        self.store = TeamStore(settings, model.dimension if model else None)
        self.budget = WriteBudget(settings.team.writes_per_minute)
        self.writes = TeamWrites(
            self.store, self.state, self.audit, self.budget, Stamps(self.state.last_stamp)
        )

    def store_ready(self) -> TeamStore:
        """The store, opened once the team's model is known (here, or fixed by another replica)."""
        model = self.state.model
        if model is not None:
            self.store.open(model.dimension)
        return self.store

    def close(self) -> None:
        self.store.close()
        self.users.close()
        self.state.close()


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _remote(request: Request) -> str:
    return request.client.host if request.client else "?"


async def _body(request: Request) -> bytes:
    too_big = f"body: over the limit of {MAX_BODY_BYTES} bytes; send fewer ops in one request"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refusal(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refusal(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def _ops_request(body: bytes) -> OpsRequest:
    try:
        return OpsRequest.model_validate_json(body)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise Refusal(400, f"body: not JSON ({exc.errors()[0]['msg']})") from None
        raise Refusal(422, "; ".join(describe_validation_error(exc)[:10])) from None


def _changes_query(request: Request) -> ChangesQuery:
    values: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in values:
            raise Refusal(422, f"{key}: given twice")
        values[key] = value
    if not values.get("projects"):
        raise Refusal(
            422, f"projects: required, the project ids to pull, separated by commas (at most {MAX_PROJECTS})"
        )
    values["projects"] = [part.strip() for part in values["projects"].split(",") if part.strip()]
    try:
        return ChangesQuery.model_validate(values)
    except ValidationError as exc:
        raise Refusal(422, "; ".join(describe_validation_error(exc)[:10])) from None


def create_team_app(server: TeamServer) -> Starlette:
    def authenticate(request: Request) -> User:
        try:
            return server.users.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            raise Refusal(401, str(exc)) from None

    def refused_write(user: str | None, request: Request, error: str) -> None:
        line = {"user": user, "op": "ops", "from": _remote(request), "outcome": "refused", "error": error}
        server.audit.write([line])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def whoami(request: Request) -> Response:
        user = authenticate(request)
        model = server.state.model
        answer = WhoAmI(user=user.name, role=user.role, model=model.name if model else None)
        return Response(answer.model_dump_json(), media_type="application/json")

    async def ops(request: Request) -> Response:
        try:
            user = authenticate(request)
        except Refusal as exc:
            refused_write(None, request, str(exc))
            raise
        try:
            if not user.can_write:
                raise Refusal(
                    403,
                    f"role: {user.name} has the role read, which pulls only; writes need the role write "
                    "or admin (`clarity team user add` on the team server)",
                )
            parsed = _ops_request(await _body(request))
        except Refusal as exc:
            refused_write(user.name, request, str(exc))
            raise
        outcome = await run_in_threadpool(server.writes.apply, user, list(parsed.ops), _remote(request))
        if outcome.busy:
            return _error(
                503,
                f"op_id: another team-server replica is applying an op of this request; send again in "
                f"{outcome.retry_after} s, what was applied answers duplicate",
                headers={"Retry-After": str(outcome.retry_after)},
                results=[result.model_dump() for result in outcome.results],
            )
        if outcome.retry_after is not None:
            per_minute = server.budget.per_minute
            return _error(
                429,
                f"rate: {user.name} sent more than {per_minute} writes in a minute (team.writes_per_minute "
                f"on the team server); send again in {outcome.retry_after} s, what was applied answers "
                "duplicate",
                headers={"Retry-After": str(outcome.retry_after)},
                results=[result.model_dump() for result in outcome.results],
            )
        return Response(OpsResponse(results=outcome.results).model_dump_json(), media_type="application/json")

    async def changes(request: Request) -> Response:
        authenticate(request)
        query = _changes_query(request)
        store = await run_in_threadpool(server.store_ready)
        page = await run_in_threadpool(store.changes, query.projects, query.since, query.limit)
        return Response(await run_in_threadpool(page_json, page), media_type="application/json")

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, str(exc), headers=headers, **exc.extra)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"path: no {request.url.path} here; the team server answers under {PREFIX}")
        return _error(exc.status_code, f"method: {request.method} {request.url.path}: {exc.detail}")

    async def no_space(request: Request, exc: Exception) -> Response:
        return _error(507, str(exc))  # writes wait for space; reads go on

    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("team server: %s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error; the team server's log has the details")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(f"{PREFIX}/whoami", whoami),
            Route(f"{PREFIX}/ops", ops, methods=["POST"]),
            Route(f"{PREFIX}/changes", changes),
        ],
        exception_handlers={
            Refusal: refusal,
            HTTPException: http_error,
            InsufficientStorage: no_space,
            Exception: internal,
        },
    )
