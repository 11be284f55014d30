"""The ``team`` section of the settings (docs/team.md), apart from ``clarity.config`` to keep each
module short; ``config.SettingsModel`` holds it like every other section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from clarity.config_qdrant import http_url


class TeamSettings(BaseModel):
    """The team tier (docs/team.md). On a developer's daemon: where the team server is and this
    developer's token; on the team server (``clarity serve --team``): its TLS files and limits."""

    model_config = ConfigDict(extra="forbid")  # a misspelled key fails loudly, as every section

    url: str | None = Field(None, description="the team server, https://host:8443; none: no team tier")
    token: SecretStr | None = Field(None, description="this developer's token on the team server")
    ca_file: Path | None = Field(
        None, description="a private CA's certificate the team server's is signed by"
    )
    share: Literal["explicit", "project"] = Field(
        "explicit",
        description="which project memories go to the team: those marked shared, or every project "
        "memory (a memory redaction flagged stays personal either way)",
    )
    pull_seconds: float = Field(30.0, ge=0.5, le=86_400, description="how often the replica pulls changes")
    timeout_seconds: float = Field(5.0, gt=0, le=120, description="one request to the team server")
    tls_cert: Path | None = Field(None, description="team server: its certificate chain (PEM)")
    tls_key: Path | None = Field(None, description="team server: its private key (PEM)")
    writes_per_minute: int = Field(600, ge=1, le=1_000_000, description="team server: per user")

    @field_validator("url")
    @classmethod
    def _team_url(cls, value: str | None) -> str | None:
        return http_url(value, "must start with https:// (or http:// on loopback, for tests)")
