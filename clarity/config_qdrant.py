"""The ``qdrant`` section of the settings: the server engine's address, collection and layout,
apart from ``clarity.config`` to keep each module short."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def http_url(value: str | None, refusal: str) -> str | None:
    """A base URL as the clients join paths to it: none when empty, no trailing slash; a value
    without an http(s) scheme is refused with ``refusal`` (pydantic names the key)."""
    if value in (None, ""):
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError(refusal)
    return value.rstrip("/")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key fails loudly, as every section


class IndexParams(_Section):
    m: int = Field(16, ge=4, le=128)
    ef_construct: int = Field(200, ge=8, le=4096)
    full_scan_threshold: int = Field(10_000, ge=0)


class QdrantSettings(_Section):
    url: str | None = None
    api_key: SecretStr | None = None
    prefer_grpc: bool = False
    collection: str = Field("clarity_memories", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    timeout: float = Field(10.0, gt=0, le=300)
    pool_size: int = Field(16, ge=1, le=512)
    index_params: IndexParams = Field(default_factory=IndexParams)
    # A new collection's layout on a Qdrant cluster (the team server's, docs/team.md); an existing
    # collection keeps the one it was made with.
    shard_number: int | None = Field(
        None, ge=1, le=1024, description="a new collection's shards (none: Qdrant's default, one per node)"
    )
    replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        description="a new collection's copies of each shard; 2 on three nodes survives losing one",
    )

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        return http_url(value, "must start with http:// or https://")
