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
# paths, flags. A token's leading and trailing punctuation is not part of it ("tests." ending a
# sentence, "(see parser.py)"), a dot counts only between word characters and a slash only in a
# path of two or more, so "e.g." and "and/or" name nothing: at least three characters with a
# letter, and a digit, an underscore, an inner "." or two inner "/".
_TOKEN = re.compile(r"[\w.\-/]+")
_EDGES = ".-/"
_NAMES = re.compile(r"(?=.*[A-Za-z])(?:.*[0-9_]|.*\w\.\w|.*\w/.*\w/\w)")


def _names(query: str) -> list[str]:
    found = []
    for token in _TOKEN.findall(query):
        token = token.strip(_EDGES)
        if len(token) >= 3 and _NAMES.match(token) and not _ABBREVIATION.fullmatch(token):
            found.append(token.casefold())
    return found


_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # e.g, i.e, U.S: letters with dots between


def has_identifier(query: str) -> bool:
    """Whether the query names something exactly: retrieval then weighs the lexical side more."""
    return bool(_names(query))


def identifiers(query: str) -> set[str]:
    """The query's identifier tokens, case-folded, as a memory's text is searched for them."""
    return set(_names(query))


def _names_in(text: str, names: Iterable[str]) -> bool:
    """Whether the text holds one of the names as a whole token (E4711 is not in E47110)."""
    return any(re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None for name in names)


def is_relevant(similarity: float | None, content: str, names: Iterable[str], cut: float) -> bool:
    """At or above the cut, or naming one of ``names`` (from ``identifiers``), or unjudged."""
    if similarity is None or similarity >= cut:
        return True
    return _names_in(content.casefold(), names)
