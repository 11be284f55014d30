"""The dashboard's forms: query strings and posted fields turned into MemoryService requests.

Each field is checked here with a message naming it; the request models check the rest, with
the same messages the REST API gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as day_time
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData, QueryParams

from clarity.models import MAX_RESULTS, Memory, MemoryPatch, MemoryType, Source
from clarity.requests import ForgetRequest, ListRequest, RetrieveRequest

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "importance": "most important",
    "updated": "recently updated",
}


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def day(value: str, end: bool = False) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        date = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise PageError(400, f"date: {value!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(date, day_time.max if end else day_time.min, tzinfo=UTC)


def fraction(value: str, name: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise PageError(400, f"{name}: {value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise PageError(400, f"{name}: {number} is outside 0..1")
    return number


def _choices(params: QueryParams | FormData, key: str, allowed: type[MemoryType] | type[Source]) -> list[str]:
    values = [str(v) for raw in params.getlist(key) for v in str(raw).split(",") if v.strip()]
    known = {item.value for item in allowed}
    for value in values:
        if value not in known:
            raise PageError(400, f"{key}: {value!r} is not one of {', '.join(sorted(known))}")
    return list(dict.fromkeys(values))


def tag_list(value: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except ValueError:
        return default
    return min(high, max(low, number))


@dataclass
class Filters:
    """The memory list's and bulk forget's form, parsed once; ``query`` rebuilds the URL."""

    q: str = ""
    scope: str = "all"
    types: list[str] = field(default_factory=list)
    tags: str = ""
    sources: list[str] = field(default_factory=list)
    since: str = ""
    until: str = ""
    min_importance: str = ""
    max_importance: str = ""
    sort: str = "newest"
    limit: int = PAGE_SIZES[0]
    offset: int = 0
    older_than_days: str = ""
    superseded: bool = False  # also the memories a newer one replaced (kept as history)

    @classmethod
    def parse(cls, params: QueryParams | FormData) -> Filters:
        def text(key: str) -> str:
            value = params.get(key)
            return value.strip() if isinstance(value, str) else ""

        sort = text("sort") or "newest"
        if sort not in SORTS:
            raise PageError(400, f"sort: {sort!r} is not one of {', '.join(SORTS)}")
        return cls(
            q=text("q")[:1000],
            scope=text("scope") or "all",
            types=_choices(params, "type", MemoryType),
            tags=text("tags"),
            sources=_choices(params, "source", Source),
            since=text("since"),
            until=text("until"),
            min_importance=text("min_importance"),
            max_importance=text("max_importance"),
            sort=sort,
            limit=_int(text("limit"), PAGE_SIZES[0], 1, MAX_RESULTS),
            offset=_int(text("offset"), 0, 0, 1_000_000),
            older_than_days=text("older_than_days"),
            superseded=text("superseded") in ("1", "on", "true"),
        )

    def query(self, **changes: Any) -> str:
        data = {**self.__dict__, **changes}
        pairs: list[tuple[str, Any]] = []
        for key in (
            "q",
            "scope",
            "tags",
            "since",
            "until",
            "min_importance",
            "max_importance",
            "older_than_days",
        ):
            if data[key] and not (key == "scope" and data[key] == "all"):
                pairs.append((key, data[key]))
        pairs += [("type", t) for t in data["types"]] + [("source", s) for s in data["sources"]]
        if data["sort"] != "newest":
            pairs.append(("sort", data["sort"]))
        if data["limit"] != PAGE_SIZES[0]:
            pairs.append(("limit", data["limit"]))
        if data["offset"]:
            pairs.append(("offset", data["offset"]))
        if data["superseded"]:
            pairs.append(("superseded", "1"))
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(
            self.q
            or self.scope != "all"
            or self.types
            or self.tags
            or self.sources
            or self.since
            or self.until
            or self.min_importance
            or self.max_importance
            or self.superseded
        )

    def _selection(self, scope: str) -> dict[str, Any]:
        """The filters a list and a search share (``requests.Filters``), for ``scope``."""
        return {
            "scope": scope,
            "memory_types": self.types or None,
            "tags": tag_list(self.tags) or None,
            "sources": self.sources or None,
            "since": day(self.since),
            "until": day(self.until, end=True),
            "min_importance": fraction(self.min_importance, "min_importance"),
            "max_importance": fraction(self.max_importance, "max_importance"),
            "include_superseded": self.superseded,
        }

    def list_request(self, scope: str) -> ListRequest:
        return ListRequest.model_validate(
            {"limit": self.limit, "offset": self.offset, "sort": self.sort, **self._selection(scope)}
        )

    def retrieve_request(self, scope: str, limit: int) -> RetrieveRequest:
        return RetrieveRequest.model_validate({"query": self.q, "limit": limit, **self._selection(scope)})

    def forget_request(self, scope: str) -> ForgetRequest:
        data: dict[str, Any] = {"scope": scope}
        if self.types:
            data["memory_types"] = self.types
        if tags := tag_list(self.tags):
            data["tags"] = tags
        if self.sources:
            data["sources"] = self.sources
        if self.older_than_days:
            try:
                data["older_than_days"] = float(self.older_than_days)
            except ValueError:
                raise PageError(400, f"older_than_days: {self.older_than_days!r} is not a number") from None
        if (high := fraction(self.max_importance, "max_importance")) is not None:
            data["max_importance"] = high
        return ForgetRequest.model_validate(data)


def patch_from(memory: Memory, form: FormData) -> MemoryPatch | None:
    """Only what changed: an untouched content field must not cost a re-embedding."""
    changes: dict[str, Any] = {}
    content = str(form.get("content") or "").replace("\r\n", "\n").strip()
    if content != memory.content:
        changes["content"] = content
    kind = str(form.get("memory_type") or memory.memory_type.value)
    if kind != memory.memory_type.value:
        changes["memory_type"] = kind
    tags = tag_list(str(form.get("tags") or ""))
    if tags != memory.tags:
        changes["tags"] = tags
    importance = fraction(str(form.get("importance") or ""), "importance")
    if importance is not None and abs(importance - memory.importance) > 1e-9:
        changes["importance"] = importance
    return MemoryPatch.model_validate(changes) if changes else None
