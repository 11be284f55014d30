"""Blocking work off the event loop, for every route and the MCP backend.

Everything blocking (the embedding model, the Qdrant engines) runs in worker threads so the
event loop keeps answering health checks and hooks while a request is being served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(func, *args)
