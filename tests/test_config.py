"""Configuration precedence and start-up errors: defaults < config.json < environment < CLI flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clarity.config import ConfigError, load_settings


def write_config(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(tmp_path / "missing.json"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    settings = load_settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert "cache" not in type(settings).model_fields  # cache.ttl_seconds was read by nothing: removed
    assert settings.engine == "embedded"
    assert settings.qdrant.index_params.m == 16
    assert settings.qdrant.index_params.ef_construct == 200
    assert settings.qdrant.index_params.full_scan_threshold == 10000
    assert settings.storage.root == Path.home() / ".claude" / "alunai-clarity"
    assert settings.storage.qdrant_dir == settings.storage.root / "qdrant"
    assert settings.storage.cache_dir == settings.storage.root / "app-data" / "cache"


def test_seed_shaped_file_then_env_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    write_config(
        config,
        {
            "qdrant": {
                "url": None,
                "prefer_grpc": False,
                "index_params": {"m": 32, "ef_construct": 100, "full_scan_threshold": 5000},
            },
            "server": {"port": 8100},
            "retrieval": {"limit": 7},
        },
    )
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    settings = load_settings()
    assert settings.qdrant.index_params.m == 32
    assert settings.server.port == 8100
    assert settings.retrieval.limit == 7

    monkeypatch.setenv("CLARITY_SERVER__PORT", "8200")
    monkeypatch.setenv("CLARITY_QDRANT__INDEX_PARAMS__M", "48")
    settings = load_settings()
    assert settings.server.port == 8200
    assert settings.qdrant.index_params.m == 48
    assert (
        settings.qdrant.index_params.ef_construct == 100
    )  # the file's value survives a partial env override

    settings = load_settings(server={"port": 8300})
    assert settings.server.port == 8300


def test_qdrant_env_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    write_config(config, {"qdrant": {"url": "http://file-host:6333"}})
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.setenv("QDRANT_URL", "http://env-host:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "k-123")
    settings = load_settings()
    assert settings.qdrant.url == "http://env-host:6333"
    assert settings.qdrant.api_key is not None and settings.qdrant.api_key.get_secret_value() == "k-123"
    assert settings.engine == "server"


@pytest.mark.parametrize(
    ("env", "file", "expected"),
    [
        ({"CLARITY_SERVER__PORT": "abc"}, {}, "server.port='abc'"),
        ({"CLARITY_EMBEDDING__DEVICE": "tpu"}, {}, "'cpu', 'cuda' or 'mps'"),
        ({}, {"qdrant": {"index_params": {"mm": 3}}}, "qdrant.index_params.mm: unknown key"),
        ({}, {"server": {"port": 70000}}, "server.port=70000: Input should be less than or equal to 65535"),
        ({"QDRANT_URL": "ftp://x"}, {}, "qdrant.url='ftp://x': must start with http:// or https://"),
        ({}, {"cache": {"ttl_seconds": 1800, "size": 3}}, "cache: unknown key"),
    ],
)
def test_invalid_values_name_key_value_and_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict, file: dict, expected: str
) -> None:
    config = tmp_path / "config.json"
    write_config(config, file)
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("cache", [{"ttl_seconds": 1800}, {"ttl_seconds": -1}, {}])
def test_a_config_file_with_the_removed_cache_section_still_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, cache: dict
) -> None:
    """``cache.ttl_seconds`` was documented and validated but read by nothing: a file that
    still sets it loads as before, the key ignored with a one-line warning."""
    config = tmp_path / "config.json"
    write_config(config, {"cache": cache, "server": {"port": 8100}})
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    with caplog.at_level("WARNING", logger="clarity.config"):
        settings = load_settings()
    assert settings.server.port == 8100
    assert not hasattr(settings, "cache")
    warnings = [r.getMessage() for r in caplog.records if r.name == "clarity.config"]
    if cache:
        assert warnings == [
            "config cache.ttl_seconds: no longer a setting (nothing read it), ignored; it can be removed"
        ]
    else:
        assert warnings == []


def test_a_config_file_that_sets_rrf_k_still_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``retrieval.rrf_k`` went with rank fusion: a file that sets it loads, the key ignored with a
    warning saying why, the retrieval settings beside it kept."""
    config = tmp_path / "config.json"
    write_config(config, {"retrieval": {"rrf_k": 60, "limit": 7}})
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    with caplog.at_level("WARNING", logger="clarity.config"):
        settings = load_settings()
    assert settings.retrieval.limit == 7 and not hasattr(settings.retrieval, "rrf_k")
    assert [r.getMessage() for r in caplog.records if r.name == "clarity.config"] == [
        "config retrieval.rrf_k: no longer a setting (rankings are fused by score, not by rank), ignored; "
        "it can be removed"
    ]


def test_broken_json_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("MEMORY_CONFIG_PATH", str(config))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings()


def test_serve_stops_with_one_line_on_bad_config(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CLARITY_SERVER__PORT": "eighty",
        "MEMORY_CONFIG_PATH": str(tmp_path / "none.json"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "clarity", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "server.port='eighty'" in result.stderr
