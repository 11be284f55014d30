"""Whether a search result is close enough to a query to show or inject: the one rule for both.

A fused score ranks but does not say "related": a nonsense query's best match scored 0.55, as high
as real hits. The cosine of memory and query does. A result is relevant when its cosine reaches
the calibrated cut (``hooks.min_similarity``, chosen by ``scripts/bench/relevance.py``), or when it
names an identifier of the query (an error code, a file name: the model cannot tell those apart,
the lexical index can), or when it has no cosine to judge by (matched by words only while the
model is not ready). A foundation module, not part of ``clarity.memory``: importing that package
loads the service, numpy and the redactors, and the stdio MCP shim reads this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Tokens that name something exactly: error codes (E4711, ERR_CONN_RESET), hashes, file names,
# flags: at least three characters with a letter and a digit, "_", "." or "/".
_IDENTIFIER = re.compile(r"(?<![\w-])(?=[\w.\-/]*[0-9_./])(?=[\w.\-/]*[A-Za-z])[\w.\-/]{3,}")
_TOKEN = re.compile(r"[\w.\-/]+")


def has_identifier(query: str) -> bool:
    """Whether the query names something exactly: retrieval then weighs the lexical side more."""
    return _IDENTIFIER.search(query) is not None


def identifiers(query: str) -> set[str]:
    """The query's identifier tokens, case-folded, as a memory's text is searched for them."""
    return {token.casefold() for token in _TOKEN.findall(query) if _IDENTIFIER.search(token)}


def is_relevant(similarity: float | None, content: str, names: Iterable[str], cut: float) -> bool:
    """At or above the cut, or naming one of ``names`` (from ``identifiers``), or unjudged."""
    if similarity is None or similarity >= cut:
        return True
    text = content.casefold()
    return any(name in text for name in names)
