"""Parsing JSON from outside (a config file, the engine's manifest, an import) in one way.

``json.loads`` of ``[[[[...`` 100,000 levels deep raises RecursionError, which no caller
expects from a parser; here it is a ValueError like any other bad JSON, so every caller reports
it in its own words ("not valid JSON (nested too deeply)") instead of crashing.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str | bytes) -> Any:
    """json.loads, with a nesting bomb reported as bad JSON instead of a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
