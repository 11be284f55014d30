"""The team server's state in Qdrant, shared by several team-server replicas behind a load balancer
that keep no state of their own (docs/team.md, "Several replicas"). The backend of a team server
on a Qdrant server (engine "server"); one on the embedded engine keeps its sqlite file
(``clarity.team.state``, ``users``).

Three collections beside the team's memory collection ``<c>``, payload-only points (no vectors),
one shard each with the settings' ``qdrant.replication_factor``, each point's id the uuid5 of its
key:

- ``<c>_team_users``: a user (key: the name): role, the token's SHA-256, when added and revoked.
  Every request looks its token's hash up here (an indexed keyword), nothing cached, so a user
  added or revoked with ``clarity team user add|revoke`` on any host counts on every replica from
  its next request.
- ``<c>_team_ops``: an op id (key: the op id), claimed by a request, then applied.
- ``<c>_team_meta``: the team's model identity ("model") and the last change time a request
  recorded ("last_stamp").

Compare-and-set is Qdrant's conditional upsert (``update_filter``): a point that exists is
replaced only if it matches the filter, one that does not is inserted. A filter on a nonce new
to this request matches no point, so it inserts only if absent. Such writes go with ordering
"strong" (through the shard's leader, so two replicas' writes apply in one order on every copy)
and are read back with consistency "majority": the nonce read back says which replica won.

- **Op ids, once across replicas.** A request claims its op ids before it writes (insert if
  absent: its nonce and the time), applies those it won, marks them applied at its end and
  releases the others (refused, or not reached). A replica that finds an op applied answers
  "duplicate"; one claimed by another request less than CLAIM_SECONDS ago stops the request
  with 503 and Retry-After, and the daemon's outbox sends it again; a claim older than that (its
  replica stopped mid-request) is taken over by compare-and-set on the old nonce. The memory
  write itself is an upsert by memory id, the same record again, so the one double apply left is
  a replica stalled past CLAIM_SECONDS while another took its claim over: the same write twice,
  as the sqlite backend's crash window.
- **The model identity**: the first put fixes it (insert if absent); a replica reads back the
  one fixed and refuses a put of another model, on every replica alike.
- **Change times.** A shared counter would cost a compare-and-set round trip per change, retried
  under contention. Instead each replica stamps from its own clock (``team.store.Stamps``, each
  time past its last), floored at every request by "last_stamp", which only ever rises (a
  conditional upsert "value below mine"). So a request that follows another, on any replica,
  stamps after it whatever the clocks say. Two requests in flight at once on two replicas can
  make a change visible with a time below a cursor a daemon already read, by at most the
  replicas' clock skew plus a request's duration: a daemon re-reads ``protocol.OVERLAP_MS``
  (5 s) before its cursor, so clocks kept within a second (NTP) leave ample margin.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from qdrant_client import QdrantClient, models

from clarity.team.state import KEEP_OP_IDS_SECONDS, Claims, ClaimStatus, ModelIdentity
from clarity.team.users import (
    TOKEN_BYTES,
    User,
    active_user,
    already_active,
    bearer_hash,
    check_name,
    check_role,
    hash_token,
    no_user,
)

# How long a claim holds before another replica may take it over: past a request's own Qdrant
# calls (each bounded by qdrant.timeout, 10 s by default), and the most a replica that stopped
# mid-request holds its ops back (the outbox sends them again meanwhile).
CLAIM_SECONDS = 60.0
_NAMESPACE = uuid.UUID("9e74822f-ae1c-449f-8828-22ac1d0be877")  # uuid5 of the keys; never change
_STRONG = models.WriteOrdering.STRONG
_MAJORITY = models.ReadConsistencyType.MAJORITY
_PAGE = 256


def point_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def _matches(key: str, value: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])


class QdrantState:
    """The three collections on one client (the server engine's connection, or a test's)."""

    def __init__(self, client: QdrantClient, collection: str, replication_factor: int = 1) -> None:
        self.client = client
        self.users = f"{collection}_team_users"
        self.ops = f"{collection}_team_ops"
        self.meta = f"{collection}_team_meta"
        self._closed = False
        # qdrant-client's local mode filters without indexes and warns about each one
        local = bool(client.init_options.get("location") or client.init_options.get("path"))
        kinds = models.PayloadSchemaType
        for name, indexes in (
            (self.users, {"token_hash": kinds.KEYWORD}),
            (self.ops, {"at": kinds.FLOAT}),
            (self.meta, {}),
        ):
            self._ensure(name, replication_factor, {} if local else indexes)

    def _ensure(self, name: str, replication: int, indexes: dict[str, models.PayloadSchemaType]) -> None:
        if not self.client.collection_exists(name):
            try:
                self.client.create_collection(
                    name, vectors_config={}, shard_number=1, replication_factor=replication
                )
            except Exception:
                if not self.client.collection_exists(name):  # else another replica made it first
                    raise
        existing = set(self.client.get_collection(name).payload_schema) if indexes else set()
        for field_name, kind in indexes.items():
            if field_name not in existing:
                self.client.create_payload_index(name, field_name, kind, wait=True)

    def put(
        self, collection: str, payloads: dict[str, dict[str, Any]], only_if: models.Filter | None
    ) -> None:
        """Write the points of these keys in one request; with ``only_if``, an existing one only
        if it matches."""
        if not payloads:
            return
        points = [models.PointStruct(id=point_id(key), vector={}, payload=p) for key, p in payloads.items()]
        self.client.upsert(collection, points, wait=True, ordering=_STRONG, update_filter=only_if)

    def read(self, collection: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The payloads of the points of ``keys`` that exist."""
        if not keys:
            return {}
        ids = {point_id(key): key for key in keys}
        records = self.client.retrieve(collection, list(ids), with_payload=True, consistency=_MAJORITY)
        return {ids[str(record.id)]: record.payload or {} for record in records}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.close()


class QdrantTeamState:
    """Op ids, the team's model identity and the last change time, shared by the replicas."""

    def __init__(self, shared: QdrantState, clock: Callable[[], float] = time.time) -> None:
        self._q = shared
        self._clock = clock
        self._model: ModelIdentity | None = None
        self._pruned_at = 0.0

    @property
    def model(self) -> ModelIdentity | None:
        """Read until some replica fixed it, then kept: it never changes once fixed."""
        if self._model is None:
            row = self._q.read(self._q.meta, ["model"]).get("model")
            if row:
                self._model = ModelIdentity(str(row["name"]), int(row["dimension"]))
        return self._model

    def fix_model(self, identity: ModelIdentity) -> ModelIdentity:
        """The first put's identity, unless another replica's put fixed one first: that one."""
        if self.model is None:
            nonce = secrets.token_hex(16)
            payload = {"name": identity.name, "dimension": identity.dimension, "nonce": nonce}
            self._q.put(self._q.meta, {"model": payload}, only_if=_matches("nonce", nonce))
        fixed = self.model
        assert fixed is not None
        return fixed

    @property
    def last_stamp(self) -> int:
        row = self._q.read(self._q.meta, ["last_stamp"]).get("last_stamp")
        return int(row["value"]) if row else 0

    def claim(self, op_ids: list[str]) -> Claims:
        """Claim the op ids not claimed yet, in one write; read back which are this request's."""
        token = secrets.token_hex(16)
        now = self._clock()

        def claimed(op_id: str) -> dict[str, Any]:
            return {"op_id": op_id, "state": "claimed", "claim": token, "at": now}

        self._q.put(
            self._q.ops, {op_id: claimed(op_id) for op_id in op_ids}, only_if=_matches("claim", token)
        )
        rows = self._q.read(self._q.ops, op_ids)
        stale = [
            i
            for i in op_ids
            if rows.get(i, {}).get("state") == "claimed"
            and rows[i].get("claim") != token
            and now - float(rows[i].get("at") or 0) > CLAIM_SECONDS
        ]
        for op_id in stale:  # its replica stopped mid-request: take the claim over
            old = _matches("claim", str(rows[op_id]["claim"]))
            self._q.put(self._q.ops, {op_id: claimed(op_id)}, only_if=old)
        if stale:
            rows.update(self._q.read(self._q.ops, stale))
        status: dict[str, ClaimStatus] = {}
        for op_id in op_ids:
            row = rows.get(op_id, {})
            if row.get("state") == "applied":
                status[op_id] = "applied"
            elif row.get("claim") == token:
                status[op_id] = "new"
            else:  # another request's claim (or released by it just now): send again later
                status[op_id] = "busy"
        return Claims(status, token, [i for i in op_ids if status[i] == "new"])

    def finish(self, claims: Claims, applied: list[str], user: str, last_stamp: int) -> None:
        """Mark ``applied`` applied, release the request's other claims, raise "last_stamp"."""
        now = self._clock()
        if applied:
            marks = {
                op_id: {"op_id": op_id, "state": "applied", "user": user, "at": now} for op_id in applied
            }
            self._q.put(self._q.ops, marks, only_if=None)
            higher = models.Filter(
                must=[models.FieldCondition(key="value", range=models.Range(lt=float(last_stamp)))]
            )
            self._q.put(self._q.meta, {"last_stamp": {"value": float(last_stamp)}}, only_if=higher)
        done = set(applied)
        released = [point_id(op_id) for op_id in claims.new if op_id not in done]
        if released:
            mine = models.Filter(
                must=[
                    models.HasIdCondition(has_id=list(released)),
                    models.FieldCondition(key="claim", match=models.MatchValue(value=claims.token)),
                ]
            )
            self._q.client.delete(
                self._q.ops, models.FilterSelector(filter=mine), wait=True, ordering=_STRONG
            )
        if applied and now - self._pruned_at > 86_400:  # at start and then daily
            self.prune(now)
            self._pruned_at = now

    def prune(self, now: float | None = None) -> None:
        """Forget op ids (and claims) older than KEEP_OP_IDS_SECONDS."""
        cutoff = (self._clock() if now is None else now) - KEEP_OP_IDS_SECONDS
        old = models.Filter(must=[models.FieldCondition(key="at", range=models.Range(lt=cutoff))])
        self._q.client.delete(self._q.ops, models.FilterSelector(filter=old), wait=True)

    def close(self) -> None:
        self._q.close()


def _user(payload: dict[str, Any] | None) -> User | None:
    if not payload:
        return None
    revoked = payload.get("revoked_at")
    return User(
        str(payload["name"]),
        str(payload["role"]),
        float(payload["created_at"]),
        float(revoked) if revoked is not None else None,
    )


class QdrantUsers:
    """The users, as ``clarity.team.users.Users`` keeps them, in ``<c>_team_users``."""

    def __init__(self, shared: QdrantState) -> None:
        self._q = shared
        self._lock = threading.Lock()

    def close(self) -> None:
        self._q.close()

    def _row(self, name: str) -> User | None:
        return _user(self._q.read(self._q.users, [name]).get(name))

    def add(self, name: str, role: str) -> str:
        """A new user, or a new token for a revoked one; the token. Written only if the user is
        absent or revoked (compare-and-set), so two ``add`` at once leave one token working."""
        check_name(name)
        check_role(role)
        existing = self._row(name)
        if existing is not None and existing.revoked_at is None:
            raise already_active(existing)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        token_hash = hash_token(token)
        payload = {
            "name": name,
            "role": role,
            "token_hash": token_hash,
            "created_at": time.time(),
            "revoked_at": None,
        }
        revoked = models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="revoked_at"))]
        )
        self._q.put(self._q.users, {name: payload}, only_if=revoked)
        stored = self._q.read(self._q.users, [name]).get(name) or {}
        if stored.get("token_hash") != token_hash:
            won = _user(stored)
            assert won is not None
            raise already_active(won)
        return token

    def revoke(self, name: str) -> User:
        """Refuse the user's token from the next request on, on every replica."""
        existing = self._row(check_name(name))
        if existing is None:
            raise no_user(name)
        if existing.revoked_at is None:
            self._q.client.set_payload(
                self._q.users,
                {"revoked_at": time.time()},
                points=[point_id(name)],
                wait=True,
                ordering=_STRONG,
            )
        revoked = self._row(name)
        assert revoked is not None
        return revoked

    def authenticate(self, authorization: str | None) -> User:
        """The user a bearer token speaks for, looked up on every request (no cache)."""
        token_hash = bearer_hash(authorization)
        with self._lock:
            records, _ = self._q.client.scroll(
                self._q.users,
                scroll_filter=_matches("token_hash", token_hash),
                limit=1,
                with_payload=True,
                consistency=_MAJORITY,
            )
        return active_user(_user(records[0].payload) if records else None)

    def list(self) -> list[User]:
        found: list[User] = []
        offset = None
        while True:
            records, offset = self._q.client.scroll(
                self._q.users, limit=_PAGE, offset=offset, with_payload=True, consistency=_MAJORITY
            )
            found += [user for record in records if (user := _user(record.payload))]
            if offset is None:
                return sorted(found, key=lambda user: user.name)


def replica_name() -> str:
    """This replica in file names (its audit log): the host name, made safe for a path."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "replica"
