"""What a request carries, parsed: the JSON body, the pydantic model it must fit, the project header.

Every refusal is a ``RequestError`` with its HTTP status and a message naming the field or header
at fault; the REST and hook routes answer it as JSON, and the MCP tools (which share
``resolve_project`` through ``clarity.http.mcp_backend``) report it as a tool error. The body is
already whole and within server.max_request_bytes when a route parses it: the request guard
read it (``clarity.http.middleware.RequestGuard``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from clarity.config import describe_validation_error
from clarity.http.guard_rules import shown
from clarity.mcp.server import PROJECT_HEADER
from clarity.models import SCOPE_PATTERN
from clarity.project import project_scope


class RequestError(ValueError):
    """A request the daemon refuses, with its HTTP status; a ValueError so that the MCP tools,
    which share ``resolve_project``, report it as a tool error."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


MAX_PROJECT_HEADER = 4096  # PATH_MAX: the longest directory the header can name (HookEvent.cwd's limit too)


def resolve_project(value: str | None) -> str | None:
    """X-Clarity-Project carries a directory (resolved to its repository) or a scope id.

    Whatever the header holds, the answer is a scope or a 400 naming the header: never an
    exception from the file system (a name too long, a home directory that does not exist)."""
    if not value:
        return None
    if len(value) > MAX_PROJECT_HEADER:
        raise RequestError(
            400,
            f"{PROJECT_HEADER}: {len(value)} characters is over the limit of {MAX_PROJECT_HEADER} "
            "(a directory path or a scope id)",
        )
    if value.startswith(("/", "~")):
        return _directory_scope(value)
    if re.match(SCOPE_PATTERN, value):
        return value
    raise RequestError(
        400,
        f"{PROJECT_HEADER}: {shown(value)} is neither an absolute path nor a scope id "
        "(lowercase letters, digits, '.', '_' and '-', at most 128 characters)",
    )


def _directory_scope(value: str) -> str:
    path = os.path.expanduser(value)  # unlike Path.expanduser, leaves an unknown ~user as it is
    if path.startswith("~"):
        user = value[1:].split("/", 1)[0]
        raise RequestError(
            400,
            f"{PROJECT_HEADER}: {shown(value)}: "
            + (f"no user {user!r} on this machine" if user else "the daemon has no home directory"),
        )
    try:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.stat(path)  # project_scope treats every unusable path as global: name the reason here
        return project_scope(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RequestError(400, f"{PROJECT_HEADER}: {shown(value)}: {reason}") from None


async def json_body(request: Request) -> Any:
    """The body is already whole and within server.max_request_bytes: RequestGuard read it."""
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body: not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise RequestError(400, f"body: JSON nested more than {MAX_BODY_DEPTH} levels deep") from None
    except ValueError as exc:
        raise RequestError(400, f"body: not valid JSON ({exc})") from None
    _check_depth(data)
    return data


MAX_BODY_DEPTH = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of the range of a double")
    return value


def _check_depth(data: Any) -> None:
    """Iteratively, so a deep body costs a 400 and not a recursion error further down."""
    stack = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > MAX_BODY_DEPTH:
                raise RequestError(400, f"body: JSON nested more than {MAX_BODY_DEPTH} levels deep")
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))


def parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise RequestError(400, f"body: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        raise RequestError(400, "; ".join(details), details) from None
