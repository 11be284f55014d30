"""A client command's settings (``clarity.client_settings``) are the daemon's settings: for every
mix of config.json, CLARITY_* and QDRANT_* variables and flags, ``load_client_settings`` returns
what ``load_settings`` returns, or refuses with the same words, while importing no
pydantic-settings where it reads the sources itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clarity.client_settings import load_client_settings
from clarity.config import ConfigError, load_settings

GUARDS = '[{"pattern": "rm -rf", "decision": "deny"}]'
CASES: dict[str, tuple[Any, dict[str, str], dict[str, Any]]] = {
    # name: (config.json content (None: no file; str: raw text), environment, flags)
    "defaults": (None, {}, {}),
    "file": (
        {
            "server": {"port": 9001, "token": "s3cret-t0ken"},
            "storage": {"root": "~/clarity-x", "quantization": "none"},
            "qdrant": {"index_params": {"m": 32}},
            "hooks": {"guards": [{"pattern": "git push -f"}], "exclude_tools": ["Read"]},
            "retrieval": {"limit": 7},
        },
        {},
        {},
    ),
    "env over file": (
        {"server": {"port": 9001, "host": "::1"}},
        {"CLARITY_SERVER__PORT": "9002", "CLARITY_HOOKS__LEARN": "false", "CLARITY_STORAGE__ROOT": "/tmp/r"},
        {},
    ),
    "flags over env": ({}, {"CLARITY_SERVER__PORT": "9002"}, {"server": {"port": 9003}}),
    "lower-case variable": ({}, {"clarity_server__port": "9004"}, {}),
    "mixed-case variable": ({}, {"Clarity_Server__Host": "localhost"}, {}),
    "two spellings": ({}, {"CLARITY_SERVER__PORT": "9005", "clarity_server__port": "9005"}, {}),
    "list in a variable": ({}, {"CLARITY_HOOKS__GUARDS": GUARDS}, {}),
    "bad list in a variable": ({}, {"CLARITY_HOOKS__GUARDS": "not json"}, {}),
    "bad guard in a variable": ({}, {"CLARITY_HOOKS__GUARDS": '[{"pattern": "(unclosed"}]'}, {}),
    "section in one variable": ({}, {"CLARITY_SERVER": '{"port": 9006}'}, {}),
    "nested key in a variable": (
        {"qdrant": {"index_params": {"ef_construct": 100}}},
        {"CLARITY_QDRANT__INDEX_PARAMS__M": "48"},
        {},
    ),
    "qdrant variables": (
        {"qdrant": {"url": "http://file:6333"}},
        {"QDRANT_URL": "http://env:6333", "QDRANT_API_KEY": "k"},
        {},
    ),
    "empty qdrant url": ({"qdrant": {"url": "http://file:6333"}}, {"QDRANT_URL": ""}, {}),
    "clarity over qdrant variable": (
        {},
        {"QDRANT_URL": "http://a:1", "CLARITY_QDRANT__URL": "http://b:2"},
        {},
    ),
    "bad port in a variable": ({}, {"CLARITY_SERVER__PORT": "0"}, {}),
    "port not a number": ({}, {"CLARITY_SERVER__PORT": "eighty"}, {}),
    "relative root": ({}, {"CLARITY_STORAGE__ROOT": "relative/root"}, {}),
    "empty root": ({}, {"CLARITY_STORAGE__ROOT": ""}, {}),
    "unknown key in a variable": ({}, {"CLARITY_SERVER__BOGUS": "1"}, {}),
    "not a setting": (
        {},
        {"CLARITY_URL": "http://127.0.0.1:1", "CLARITY_TOKEN": "t", "CLARITY_DEBUG": "1"},
        {},
    ),
    "unknown key in the file": ({"server": {"prot": 1}}, {}, {}),
    "unknown section in the file": ({"sever": {"port": 1}}, {}, {}),
    "capital section in the file": ({"Server": {"port": 9007}}, {}, {}),
    "removed key in the file": ({"cache": {"ttl_seconds": 60}, "server": {"port": 9008}}, {}, {}),
    "section not an object": ({"server": 5}, {}, {}),
    "section not an object, variable over it": ({"server": 5}, {"CLARITY_SERVER__PORT": "9009"}, {}),
    "bad value in another section": ({"retrieval": {"limit": 0}}, {}, {}),
    "bad variable in another section": ({}, {"CLARITY_EMBEDDING__DEVICE": "gpu"}, {}),
    "file not an object": ("[1]", {}, {}),
    "file not JSON": ("{nope", {}, {}),
    "token flag": ({}, {}, {"server": {"token": "flag-token"}}),
}


def outcome(load: Any, flags: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "settings", load(**flags).model_dump(mode="json")
    except ConfigError as exc:
        return "refused", str(exc)


@pytest.mark.parametrize("name", list(CASES))
def test_a_client_reads_the_settings_the_daemon_reads(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content, environment, flags = CASES[name]
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    for variable in list(os.environ):
        if variable.lower().startswith("clarity_") or variable.startswith("QDRANT_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    expected = outcome(load_settings, flags)
    assert outcome(load_client_settings, flags) == expected


def test_the_usual_configuration_is_read_without_pydantic_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"server": {"port": 9100}, "hooks": {"guards": [{"pattern": "x"}]}}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.lower().startswith("clarity_")},
        "MEMORY_CONFIG_PATH": str(config),
        "CLARITY_STORAGE__ROOT": str(tmp_path / "root"),
    }
    script = (
        "import sys\n"
        "from clarity.client_settings import load_client_settings\n"
        "settings = load_client_settings()\n"
        "print(settings.server.port, settings.storage.root, 'pydantic_settings' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["9100", str(tmp_path / "root"), "False"]
