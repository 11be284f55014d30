"""What loading the settings checks and says beyond pydantic's validation of each key.

The config file is checked before pydantic-settings reads it (a FIFO would block it, /dev/zero
would never end), and a CLARITY_* variable holding bad JSON is named, where pydantic-settings
names only its section. Each problem is one line, which :func:`clarity.config.load_settings`
raises as a ``ConfigError``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from clarity.json_text import parse_json

if TYPE_CHECKING:  # pydantic-settings is imported only where settings are loaded in full
    from pydantic_settings import SettingsError

MAX_CONFIG_BYTES = 1_048_576


def config_file_problem(path: Path) -> str | None:
    """Check config.json before pydantic-settings reads it: a regular file (a FIFO would block,
    /dev/zero never ends) of at most MAX_CONFIG_BYTES, holding one JSON object. The problem
    found, in one line, or None."""
    where = (
        f"config file {path} (MEMORY_CONFIG_PATH)"
        if os.environ.get("MEMORY_CONFIG_PATH")
        else f"config file {path}"
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        return f"{where}: {exc.strerror}"
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f'{where}: not a regular file; expected a JSON object such as {{"server": {{...}}}}'
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        return f"{where}: over {MAX_CONFIG_BYTES} bytes; a config file is a small JSON object"
    try:
        data = parse_json(raw.decode("utf-8"))
    except ValueError as exc:
        return f"{where}: not valid JSON ({exc})"
    if not isinstance(data, dict):
        return (
            f'{where}: expected a JSON object such as {{"server": {{"port": 8000}}}}, '
            f"got {type(data).__name__}"
        )
    return None


def takes_json(annotation: Any) -> str | None:
    """What an environment variable for this field must hold, if pydantic-settings parses it as JSON."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return "a JSON list"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel | dict)):
        return "a JSON object"
    return next(filter(None, (takes_json(arg) for arg in get_args(annotation))), None)


def settings_error_message(exc: SettingsError, sections: Mapping[str, FieldInfo]) -> str:
    """pydantic-settings names only the section ("hooks") when a variable holds bad JSON; find
    the variable itself and say what it must hold. ``sections``: the settings' fields."""
    match = re.search(r'field "(\w+)" from source "EnvSettingsSource"', str(exc))
    section = sections.get(match.group(1)) if match else None
    if match is not None and section is not None:
        prefix = f"CLARITY_{match.group(1)}".upper()
        for name in sorted(os.environ):
            key = name.upper()
            if key == prefix:
                annotation: Any = section.annotation
            elif key.startswith(prefix + "__") and isinstance(section.annotation, type):
                field = section.annotation.model_fields.get(key.removeprefix(prefix + "__").lower())
                annotation = field.annotation if field else None
            else:
                continue
            wanted = takes_json(annotation)
            try:
                json.loads(os.environ[name])
            except (ValueError, RecursionError) as bad:
                if wanted:
                    return f"{name}: not valid JSON ({bad}); this setting takes {wanted}"
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    return f"config: {exc}{cause}"
