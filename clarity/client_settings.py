"""The settings of a client command, read without pydantic-settings.

A client command (store, search, list, status, pause, ...) needs the daemon's address and token
and the storage root (its lock file names a daemon started on another port). ``Settings`` reads
them with pydantic-settings, whose import (asyncio with it) costs 70 ms of a client's 0.3 s
start (scripts/bench/cli_start.py). Here the same sources are read in the same order (defaults <
config.json < QDRANT_* < CLARITY_* < flags) and validated by the same model, ``SettingsModel``,
so a client refuses exactly the configuration the daemon refuses, in the same words. What this
reader does not read itself goes to ``load_settings``: a section given whole in one variable
(``CLARITY_HOOKS='{...}'``), a list, object or nested key in a variable, one variable spelt twice
in different cases, a key no section has.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from clarity.config import (
    ConfigError,
    SettingsModel,
    config_path,
    describe_validation_error,
    load_settings,
    qdrant_env,
)
from clarity.config_checks import config_file_problem, takes_json
from clarity.json_text import parse_json

ENV_PREFIX = "clarity_"  # Settings' env_prefix, matched without regard to case as pydantic-settings does


class _Unread(Exception):
    """Something only pydantic-settings reads: load the settings in full."""


def load_client_settings(**overrides: Any) -> SettingsModel:
    """The settings ``load_settings(**overrides)`` returns (or its ConfigError), usually without
    importing pydantic-settings. ``overrides``: sections as dicts, like the flags of a command."""
    try:
        data = _merged(overrides)
    except _Unread:
        return load_settings(**overrides)
    try:
        return SettingsModel.model_validate(data)
    except ValidationError as exc:  # the same model on the same values: load_settings' words
        raise ConfigError("; ".join(describe_validation_error(exc, prefix="config "))) from exc


def _merged(overrides: dict[str, Any]) -> dict[str, Any]:
    """config.json, then QDRANT_*, then CLARITY_<SECTION>__<KEY>, then the overrides, each key
    replacing the one before it within its section."""
    data: dict[str, Any] = {}
    path = config_path()
    if path.exists():
        if config_file_problem(path) is not None:
            raise _Unread  # load_settings says what is wrong with the file
        data = dict(parse_json(path.read_bytes()))
        if any(key != key.lower() for key in data):
            raise _Unread  # pydantic-settings matches the file's sections without regard to case
    for layer in (qdrant_env(), _environment(), overrides):
        for section, values in layer.items():
            if not isinstance(values, dict):
                raise _Unread
            before = data.get(section, {})
            data[section] = {**before, **values} if isinstance(before, dict) else values
    return data


def _environment() -> dict[str, dict[str, str]]:
    """``CLARITY_<SECTION>__<KEY>`` variables of scalar keys, by section."""
    sections = SettingsModel.model_fields
    found: dict[str, dict[str, str]] = {}
    for name, value in os.environ.items():
        lowered = name.lower()
        if not lowered.startswith(ENV_PREFIX):
            continue
        section, nested, key = lowered.removeprefix(ENV_PREFIX).partition("__")
        if section not in sections:
            continue  # not a setting (CLARITY_URL, CLARITY_TOKEN, ...): pydantic-settings ignores it too
        model = sections[section].annotation
        fields = getattr(model, "model_fields", {})
        if not nested or key not in fields or takes_json(fields[key].annotation):
            raise _Unread
        if key in found.setdefault(section, {}):
            raise _Unread  # two spellings of one variable
        found[section][key] = value
    return found
