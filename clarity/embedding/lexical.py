"""The lexical encoder: BM25 term weights from qdrant-edge's Rust tokenizer, and what it encodes.

The same encoder feeds both engines, so lexical matching behaves identically on Qdrant Edge and on
a Qdrant server, and it needs no model: lexical search answers while the dense model loads.

A memory's lexical text is its content, its tags, and (``retrieval.lexical_context_max_chars``)
the previous memory of its session when that one is short (``clarity.memory.session_links``).
The context and the previous memory's id are kept in the payload, so the lexical vector can be
rebuilt from the payload alone: by every write, by an engine-to-engine copy, and by the
re-encoding of records an older encoder made (``LEXICAL_VERSION``; ``clarity.memory.lexical_upgrade``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Which encoding a stored lexical vector has; a record below the current one is re-encoded in the
# background. 1 (or none): qdrant_edge's Bm25 defaults (k 1.2, b 0.75, avg_len 256); 2: avg_len 40.
LEXICAL_VERSION = 2
# BM25's expected document length in tokens. Memories are a sentence or two, far from the
# default 256, under which a long memory's words weighed almost as much as a short one's. 40 was
# the research harness's choice on both dev sets with the previous-turn context
# (scripts/bench/retrieval_round2.py, "prev<250@avg40"); alone it moved LongMemEval turn
# recall@10 0.869 -> 0.909 and LoCoMo recall@5 0.644 -> 0.631 there, and with the context the
# product gains on both sets (quality.py; docs/benchmarks.md).
BM25_AVG_LEN = 40.0
# Payload keys beside a record's fields (both indexed: clarity/store/base.py PAYLOAD_INDEXES,
# except the context, which is only read back).
VERSION_KEY = "lexical_version"
CONTEXT_KEY = "lexical_context"
PREVIOUS_KEY = "previous_id"

Sparse = tuple[list[int], list[float]]


def document_text(content: str, tags: Sequence[str], context: str | None) -> str:
    """What the lexical index sees: the content and tags (a tag is as findable as a word), then
    the session's previous memory when it is given."""
    text = " ".join([content, *tags])
    return f"{text} {context}" if context else text


def stored_context(payload: dict[str, Any]) -> str | None:
    """The context a record's payload keeps. Only one with its previous memory's id counts: a
    context stored before ids were kept (the old ``retrieval.lexical_context_chars``) could not
    be kept true when that memory changed or went, so it is dropped at the next re-encoding."""
    value = payload.get(CONTEXT_KEY)
    if not isinstance(value, str) or not value or not isinstance(payload.get(PREVIOUS_KEY), str):
        return None
    return value


def payload_text(payload: dict[str, Any]) -> str:
    """``document_text`` of a stored payload; a damaged record's fields count as empty."""
    content, tags = payload.get("content"), payload.get("tags")
    return document_text(
        content if isinstance(content, str) else "",
        [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        stored_context(payload),
    )


def is_current(payload: dict[str, Any]) -> bool:
    """Whether the current encoding made the record's lexical vector (``VERSION_KEY``)."""
    version = payload.get(VERSION_KEY)
    return isinstance(version, int | float) and version >= LEXICAL_VERSION


def current_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as the current encoding writes it: its version, and no context that does not count."""
    fresh = {**payload, VERSION_KEY: LEXICAL_VERSION}
    if stored_context(payload) is None:
        fresh.pop(CONTEXT_KEY, None)
    return fresh


class LexicalEncoder:
    """BM25 term weights computed in Rust by qdrant-edge; the engine applies IDF at query time.

    A query's weights are 1 per distinct token whatever the config, so only documents depend on
    ``BM25_AVG_LEN`` (and on ``LEXICAL_VERSION``)."""

    version = LEXICAL_VERSION

    def __init__(self) -> None:
        from qdrant_edge import Bm25, Bm25Config

        self._bm25 = Bm25(Bm25Config(avg_len=BM25_AVG_LEN))

    def document(self, text: str) -> Sparse:
        sparse = self._bm25.embed_document(text)
        return list(sparse.indices), [float(v) for v in sparse.values]

    def query(self, text: str) -> Sparse:
        sparse = self._bm25.embed_query(text)
        return list(sparse.indices), [float(v) for v in sparse.values]

    def payload_document(self, payload: dict[str, Any]) -> Sparse:
        """The lexical vector of a stored record, from its payload alone."""
        return self.document(payload_text(payload))

    def reencode(self, payload: dict[str, Any]) -> tuple[Sparse, dict[str, Any]]:
        """A stored record as this encoding writes it: its lexical vector and its payload
        (``current_payload``); what an engine's re-encoding of older records applies."""
        fresh = current_payload(payload)
        return self.payload_document(fresh), fresh
