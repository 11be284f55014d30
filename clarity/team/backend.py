"""The team server's state seam: its users, the op ids it applied, the team's model identity and
the last change time, behind two backends picked by the engine, as the store is (docs/team.md):

- the embedded engine: one team server process, its state in ``<root>/app-data/team/team.sqlite3``
  (``clarity.team.state``, ``clarity.team.users``);
- a Qdrant server (QDRANT_URL, engine "server"): collections beside the team's memory collection
  that several replicas share (``clarity.team.qdrant_state``), through the server engine's own
  connection (``clarity.store.server.connect``), so the replicas keep no state of their own.

``clarity team user add|list|revoke`` opens the same backend from the same settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from clarity.team.audit import NAME as AUDIT_NAME
from clarity.team.state import Claims, ModelIdentity, TeamState, connect, team_dir
from clarity.team.users import User, Users

if TYPE_CHECKING:
    from clarity.config import Settings, SettingsModel
    from clarity.team.qdrant_state import QdrantState


class TeamLedger(Protocol):
    """Op ids applied, the team's model identity, the last change time recorded."""

    @property
    def model(self) -> ModelIdentity | None: ...

    def fix_model(self, identity: ModelIdentity) -> ModelIdentity: ...

    @property
    def last_stamp(self) -> int: ...

    def claim(self, op_ids: list[str]) -> Claims: ...

    def finish(self, claims: Claims, applied: list[str], user: str, last_stamp: int) -> None: ...

    def close(self) -> None: ...


class UserBook(Protocol):
    """The team's users and their hashed tokens."""

    def add(self, name: str, role: str) -> str: ...

    def revoke(self, name: str) -> User: ...

    def authenticate(self, authorization: str | None) -> User: ...

    def close(self) -> None: ...

    def list(self) -> list[User]: ...


def _shared(settings: SettingsModel) -> QdrantState:
    from clarity.store.server import connect as connect_qdrant
    from clarity.team.qdrant_state import QdrantState
    from clarity.team.store import team_collection

    qdrant = settings.qdrant
    return QdrantState(connect_qdrant(qdrant), team_collection(settings), qdrant.replication_factor)


def open_state(settings: Settings) -> tuple[UserBook, TeamLedger]:
    """The users and the ledger of a team server with these settings."""
    if settings.engine == "server":
        from clarity.team.qdrant_state import QdrantTeamState, QdrantUsers

        shared = _shared(settings)
        return QdrantUsers(shared), QdrantTeamState(shared)
    directory = team_dir(settings.storage.root)
    return Users(directory), TeamState(connect(directory))


def open_users(settings: SettingsModel) -> UserBook:
    """The users alone, for ``clarity team user``: where the team server with these settings keeps them."""
    if settings.engine == "server":
        from clarity.team.qdrant_state import QdrantUsers

        return QdrantUsers(_shared(settings))
    return Users(team_dir(settings.storage.root))


def audit_name(settings: Settings) -> str:
    """The audit log's file: one per replica, named by its host, when replicas share the state."""
    if settings.engine == "server":
        from clarity.team.qdrant_state import replica_name

        return f"audit.{replica_name()}.jsonl"
    return AUDIT_NAME
