"""Whole memories moving in and out: export pages, import batches and what an import reports.

The REST API, the CLI, backups and the export file (``clarity.lifecycle.transfer``) all carry these. A
page is paged oldest first by creation time (``store.paging.page_oldest``); a record arriving from
outside is checked as a ``MemoryRecord``, and its vector is reused only if our model made it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from clarity.models import CallerInput, Memory, MemoryRecord, ScopeChoice, Vector


class ExportCursor(CallerInput):
    """Where the next export page starts: memories are paged oldest first by creation time."""

    after: float | None = None
    after_ids: list[str] = Field(default_factory=list, max_length=10_000)


class ExportPageRequest(CallerInput):
    scope: ScopeChoice = "all"
    cursor: ExportCursor | None = None
    limit: int = Field(500, ge=1, le=2_000)
    with_vectors: bool = True


class ExportPage(BaseModel):
    memories: list[Memory]
    vectors: list[list[float] | None] | None = None
    next: ExportCursor | None
    total: int | None = Field(None, description="memories in the export's scope; on the first page only")
    model: str
    dimension: int
    unreadable: list[str] = Field(
        default_factory=list,
        description="stored records on this page left out of the export, each with its id and the "
        "failing field: an export holds only what an import accepts",
    )


class ImportBatch(CallerInput):
    memories: list[MemoryRecord] = Field(max_length=2_000)
    vectors: list[Vector | None] | None = None
    model: str | None = Field(None, description="the model that made the vectors; others are recomputed")

    @model_validator(mode="after")
    def _one_vector_per_memory(self) -> ImportBatch:
        if self.vectors is not None and len(self.vectors) != len(self.memories):
            raise ValueError(f"vectors: {len(self.vectors)} given for {len(self.memories)} memories")
        return self


class ImportSummary(BaseModel):
    created: int = 0
    replaced: int = 0
    duplicate: int = 0
    vectors_reused: int = 0
    vectors_computed: int = 0

    def add(self, other: ImportSummary) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))
