"""POST /hooks/<Event>: Claude Code's hook events in, Claude Code's hook output JSON out.

The same request arrives from an ``http`` hook (Claude Code posts it) and from a command hook
(``clarity/hooks/command_client.py`` posts the event JSON byte for byte); ``HookService`` does
the work. A hook must never break Claude Code: anything but a malformed request answers ``{}``
("nothing to add"), and every call is counted with its latency for the dashboard's overview.
"""

from __future__ import annotations

import logging
import time

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clarity.hooks.controls import DISABLED_HEADER, is_disabled
from clarity.hooks.events import EVENTS, HookEvent
from clarity.hooks.service import HookService
from clarity.http.parsing import RequestError, json_body, parse
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)


class HookApi:
    """POST /hooks/<Event>: the JSON Claude Code sends in, Claude Code's hook output JSON out."""

    def __init__(self, hooks: HookService) -> None:
        self.hooks = hooks

    async def handle(self, request: Request) -> Response:
        """Counts every call and its latency per event (the dashboard's overview shows them)."""
        started = time.perf_counter()
        response = await self._handle(request)
        event = request.path_params["event"]
        if event in EVENTS:
            failed = response.status_code >= 400 or getattr(request.state, "hook_failed", False)
            self.hooks.injections.record_call(event, time.perf_counter() - started, failed)
        return response

    async def _handle(self, request: Request) -> Response:
        event = request.path_params["event"]
        if event not in EVENTS:
            return JSONResponse(
                {"error": f"event: unknown hook event {event!r}; expected one of {', '.join(EVENTS)}"},
                status_code=404,
            )
        if is_disabled(request.headers.get(DISABLED_HEADER)):
            return JSONResponse({})  # CLARITY_DISABLED=1 in that Claude Code session: a no-op
        self.hooks.take_pending()  # events kept while no daemon answered go first (a stat)
        try:
            body = await json_body(request)
            if isinstance(body, dict):
                body.setdefault("hook_event_name", event)
            payload = parse(HookEvent, body)
            if payload.hook_event_name != event:
                raise RequestError(
                    400, f"hook_event_name: {payload.hook_event_name!r} does not match the URL's {event!r}"
                )
            if self.hooks.reply_is_empty(payload):
                # Claude Code waits for nothing that handle() could add: reply now, and hand the
                # event over once the reply is sent (so that thread does not compete with sending).
                return JSONResponse({}, background=BackgroundTask(self._after_reply, payload))
            return JSONResponse(await run_in_threadpool(self.hooks.handle, payload))
        except RequestError as exc:
            return JSONResponse({"error": str(exc), "details": exc.details}, status_code=exc.status)
        except InsufficientStorage:
            return JSONResponse({})  # nothing learned while the disk is short; the store logged it once
        except Exception:
            # A hook must never break Claude Code: log it and answer "nothing to add".
            log.exception("hook %s failed", event)
            request.state.hook_failed = True
            return JSONResponse({})

    async def _after_reply(self, payload: HookEvent) -> None:
        """Async so the background task runs it on the loop (it only queues) rather than paying
        the threadpool round trip it exists to avoid."""
        self.hooks.handle_after_reply(payload)
