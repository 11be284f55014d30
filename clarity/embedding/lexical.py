"""The lexical encoder: BM25 term weights from qdrant-edge's Rust tokenizer.

The same encoder feeds both engines, so lexical matching behaves identically on Qdrant Edge and on
a Qdrant server, and it needs no model: lexical search answers while the dense model loads.
"""

from __future__ import annotations


class LexicalEncoder:
    """BM25 term weights computed in Rust by qdrant-edge; the engine applies IDF at query time.

    The same encoder feeds both engines, so lexical matching behaves identically on Qdrant Edge
    and on a Qdrant server.
    """

    def __init__(self) -> None:
        from qdrant_edge import Bm25

        self._bm25 = Bm25()

    def document(self, text: str) -> tuple[list[int], list[float]]:
        sparse = self._bm25.embed_document(text)
        return list(sparse.indices), [float(v) for v in sparse.values]

    def query(self, text: str) -> tuple[list[int], list[float]]:
        sparse = self._bm25.embed_query(text)
        return list(sparse.indices), [float(v) for v in sparse.values]
