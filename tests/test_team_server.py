"""The team server (``clarity serve --team``, docs/team.md) as a daemon meets it: a real server
process over TLS (a private CA made here), users made with ``clarity team user add``, httpx
clients speaking ``clarity.team.protocol``.

Each test writes in its own project, so they hold whatever order they run in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clarity.team.protocol import MAX_CHANGES, MAX_OPS, MAX_PROJECTS

from .daemon_util import free_port, run_clarity
from .team_util import DIMENSION, MODEL, TeamServer, delete, memory, put, vector


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    root = tmp_path_factory.mktemp("team-root")
    team = TeamServer(root / "storage", free_port(), root / "tls")
    with team.running():
        yield team


@pytest.fixture(scope="module")
def tokens(server: TeamServer) -> dict[str, str]:
    return {
        "alice": server.add_user("alice", "write"),
        "bob": server.add_user("bob", "write"),
        "rita": server.add_user("rita", "read"),
        "ada": server.add_user("ada", "admin"),
    }


def _ops(client: httpx.Client, *ops: dict) -> list[dict]:
    response = client.post("/ops", json={"ops": list(ops)})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _changes(client: httpx.Client, project: str, since: int = 0, limit: int = MAX_CHANGES) -> dict:
    response = client.get("/changes", params={"projects": project, "since": since, "limit": limit})
    assert response.status_code == 200, response.text
    return response.json()


def test_whoami_names_each_user_and_role(server: TeamServer, tokens: dict[str, str]) -> None:
    for name, role in (("alice", "write"), ("rita", "read"), ("ada", "admin")):
        with server.client(tokens[name]) as client:
            answer = client.get("/whoami")
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == name
        assert answer.json()["role"] == role


def test_the_server_sets_the_author_and_applies_an_op_once(
    server: TeamServer, tokens: dict[str, str]
) -> None:
    project = "github.com-acme-once"
    record = memory("The gateway listens on port 8443", project, author="mallory")
    first = put(record, seed=1)
    with server.client(tokens["alice"]) as client:
        assert [r["status"] for r in _ops(client, first, first)] == ["applied", "duplicate"]
        assert [r["status"] for r in _ops(client, first)] == ["duplicate"]  # a resend after a lost answer
        changes = _changes(client, project)["changes"]
        assert client.get("/whoami").json()["model"] == MODEL
    assert [(c["id"], c["kind"]) for c in changes] == [(record["id"], "put")]
    stored = changes[0]["memory"]
    assert stored["author"] == "alice"  # not what the record said
    assert stored["shared"] is True
    assert stored["content"] == record["content"]
    assert len(changes[0]["vector"]) == DIMENSION
    assert sum(a * b for a, b in zip(changes[0]["vector"], vector(1), strict=True)) > 0.9999


def test_ops_apply_in_order_and_a_late_resend_changes_nothing(
    server: TeamServer, tokens: dict[str, str]
) -> None:
    project = "github.com-acme-order"
    record = memory("Deploys run from the main branch", project)
    first = put(record, seed=2)
    second = put({**record, "content": "Deploys run from the release branch"}, seed=3)
    with server.client(tokens["alice"]) as client:
        assert [r["status"] for r in _ops(client, first, second)] == ["applied", "applied"]
        assert [r["status"] for r in _ops(client, first)] == ["duplicate"]
        changes = _changes(client, project)["changes"]
    assert [c["memory"]["content"] for c in changes] == ["Deploys run from the release branch"]


def test_a_vector_of_another_model_is_refused(server: TeamServer, tokens: dict[str, str]) -> None:
    project = "github.com-acme-model"
    with server.client(tokens["alice"]) as client:
        assert _ops(client, put(memory("Fix: pin node 20", project), seed=4))[0]["status"] == "applied"
        other_model = _ops(
            client, put(memory("Use pnpm, not npm", project), seed=5, model="bge-small@sha256:x")
        )[0]
        short = put(memory("Tests run with vitest", project))
        short["vector"] = short["vector"][:256]
        other_size = _ops(client, short)[0]
        nan = put(memory("Lint with eslint", project))
        nan["vector"][3] = float("nan")
        not_finite = client.post("/ops", content=json.dumps({"ops": [nan]}))  # the stdlib writes NaN
        contents = [c["memory"]["content"] for c in _changes(client, project)["changes"]]
    assert other_model["status"] == "refused"
    assert other_model["error"].startswith("model: 'bge-small@sha256:x' made this vector")
    assert MODEL in other_model["error"]
    assert other_size["status"] == "refused"
    assert other_size["error"] == f"vector: 256 numbers, the team's vectors have {DIMENSION}"
    assert not_finite.status_code == 200, not_finite.text
    assert not_finite.json()["results"][0]["error"] == "vector[3]: nan is not a finite number"
    assert contents == ["Fix: pin node 20"]


def test_a_record_redaction_flags_is_refused(server: TeamServer, tokens: dict[str, str]) -> None:
    project = "github.com-acme-secret"
    leaked = memory("Deploy with AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY1", project)
    in_tags = memory("The staging database", project, tags=["ghp_abcdefghijklmnopqrstuvwxyz0123456789"])
    with server.client(tokens["alice"]) as client:
        results = _ops(client, put(leaked, seed=6), put(in_tags, seed=7))
        assert _changes(client, project)["changes"] == []
    assert [r["status"] for r in results] == ["refused", "refused"]
    assert results[0]["error"].startswith("memory.content: redaction flags a secret here")
    assert results[1]["error"].startswith("memory.tags: redaction flags a secret here")


def test_roles_decide_who_writes_and_who_deletes(server: TeamServer, tokens: dict[str, str]) -> None:
    project = "github.com-acme-roles"
    mine, theirs = memory("Alice's note on caching", project), memory("Alice's note on retries", project)
    with server.client(tokens["alice"]) as alice:
        assert [r["status"] for r in _ops(alice, put(mine, seed=8), put(theirs, seed=9))] == ["applied"] * 2
    with server.client(tokens["rita"]) as rita:
        refused = rita.post("/ops", json={"ops": [delete(mine["id"], project)]})
        assert rita.get("/changes", params={"projects": project}).status_code == 200  # reading is hers
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("role: rita has the role read")
    with server.client(tokens["bob"]) as bob:
        by_bob = _ops(bob, delete(mine["id"], project))[0]
        overwrite = _ops(bob, put({**mine, "content": "Bob's version"}, seed=10))[0]
    assert by_bob["status"] == "refused"
    assert by_bob["error"].startswith(f"id: {mine['id']} is alice's memory; only its author or an admin")
    assert overwrite["status"] == "refused"
    assert overwrite["error"] == f"memory.id: {mine['id']} is alice's memory; only its author may change it"
    with server.client(tokens["ada"]) as ada:
        assert _ops(ada, delete(mine["id"], project))[0]["status"] == "applied"
    with server.client(tokens["alice"]) as alice:
        assert _ops(alice, delete(theirs["id"], project))[0]["status"] == "applied"
        changes = _changes(alice, project)["changes"]
    assert [(c["id"], c["kind"]) for c in changes[-2:]] == [(mine["id"], "delete"), (theirs["id"], "delete")]
    assert all(c["memory"] is None and c["vector"] is None for c in changes[-2:])


def test_unknown_missing_and_revoked_tokens_are_refused(server: TeamServer, tokens: dict[str, str]) -> None:
    carol = server.add_user("carol", "write")  # while the server runs
    with server.client(carol) as client:
        assert client.get("/whoami").json()["user"] == "carol"
    done = run_clarity(server.env(), "team", "user", "revoke", "carol", "--storage-root", str(server.root))
    assert done.returncode == 0, done.stderr
    with server.client(carol) as client:
        revoked = client.get("/whoami")
        write = client.post("/ops", json={"ops": [put(memory("Carol was here", "github.com-acme-revoked"))]})
    assert revoked.status_code == 401
    assert revoked.json()["error"].startswith("authorization: the token of carol was revoked on ")
    assert revoked.headers["www-authenticate"] == "Bearer"
    assert write.status_code == 401
    with server.client("not-a-token") as client:
        assert client.get("/whoami").json() == {"error": "authorization: this token is not a team user's"}
    with server.client(None) as client:
        missing = client.get("/changes", params={"projects": "github.com-acme-revoked"})
    assert missing.status_code == 401
    assert "Authorization: Bearer <token>" in missing.json()["error"]


def test_changes_page_oldest_first_with_tombstones(server: TeamServer, tokens: dict[str, str]) -> None:
    project, elsewhere = "github.com-acme-paging", "github.com-acme-elsewhere"
    records = [memory(f"Paging fact number {i}", project) for i in range(5)]
    with server.client(tokens["bob"]) as client:
        _ops(
            client, *(put(r, seed=20 + i) for i, r in enumerate(records)), put(memory("Not here", elsewhere))
        )
        _ops(client, delete(records[1]["id"], project), delete(records[3]["id"], project))
        pages, since = [], 0
        while True:
            page = _changes(client, project, since=since, limit=2)
            pages.append(page)
            if not page["more"]:
                break
            since = page["cursor"]  # the page's last change: asked again from there, ties included
        both = client.get("/changes", params={"projects": f"{project},{elsewhere}"}).json()
    seen: dict[tuple[str, int], dict] = {}
    for page in pages:
        assert len(page["changes"]) <= 2
        for change in page["changes"]:
            seen[(change["id"], change["changed_at"])] = change
    changes = sorted(seen.values(), key=lambda c: c["changed_at"])
    assert [c["changed_at"] for c in changes] == sorted({c["changed_at"] for c in changes})  # one stamp each
    assert [(c["id"], c["kind"]) for c in changes] == [
        (records[0]["id"], "put"),
        (records[2]["id"], "put"),
        (records[4]["id"], "put"),
        (records[1]["id"], "delete"),
        (records[3]["id"], "delete"),
    ]
    assert pages[-1]["cursor"] == changes[-1]["changed_at"]
    assert {c["project"] for c in both["changes"]} == {project, elsewhere}


def test_bad_input_is_named_with_its_limit(server: TeamServer, tokens: dict[str, str]) -> None:
    project = "github.com-acme-bad"
    huge = memory("x", project)
    huge["content"] = "y" * 100_001
    cases = [
        ({"content": b"{not json"}, 400, "body: not JSON"),
        ({"json": {}}, 422, "ops: required"),
        ({"json": {"ops": []}}, 422, "at least 1 item"),
        (
            {"json": {"ops": [delete(str(uuid.uuid4()), project)] * (MAX_OPS + 1)}},
            422,
            f"at most {MAX_OPS} items",
        ),
        ({"json": {"ops": [put(huge)]}}, 422, "ops.0.put.memory.content"),
        ({"json": {"ops": [{**put(memory("v", project)), "vector": [0.1] * 8193}]}}, 422, "ops.0.put.vector"),
        (
            {"json": {"ops": [{"op_id": "nope", "kind": "delete", "id": "x", "project": project}]}},
            422,
            "op_id",
        ),
        ({"json": {"ops": [{**delete("x", project), "kind": "rename"}]}}, 422, "ops.0"),
        ({"json": {"ops": [{**delete("x", "Not A Project")}]}}, 422, "ops.0.delete.project"),
        ({"json": {"ops": [{**delete("x", project), "extra": 1}]}}, 422, "ops.0.delete.extra: unknown key"),
        ({"content": b" " * (32 * 1024 * 1024 + 1)}, 413, "body: over the limit of 33554432 bytes"),
    ]
    with server.client(tokens["alice"]) as client:
        for request, status, words in cases:
            answer = client.post("/ops", **request)
            assert answer.status_code == status, (words, answer.text)
            assert words in answer.json()["error"], (words, answer.text)
        odd_id = _ops(client, delete("not-a-uuid", project))[0]
        for params, words in (
            ({}, "projects: required"),
            ({"projects": ""}, "projects: required"),
            ({"projects": "Bad Project"}, "projects.0="),
            (
                {"projects": ",".join(f"p{i}" for i in range(MAX_PROJECTS + 1))},
                f"at most {MAX_PROJECTS} items",
            ),
            ({"projects": project, "limit": 0}, "limit='0': Input should be greater than or equal to 1"),
            ({"projects": project, "limit": MAX_CHANGES + 1}, f"less than or equal to {MAX_CHANGES}"),
            ({"projects": project, "since": -1}, "since='-1'"),
            ({"projects": project, "since": "soon"}, "since='soon'"),
            ({"projects": project, "cursor": 3}, "cursor: unknown key"),
            ([("projects", project), ("since", "1"), ("since", "2")], "since: given twice"),
        ):
            answer = client.get("/changes", params=params)
            assert answer.status_code == 422, (params, answer.text)
            assert words in answer.json()["error"], (params, answer.text)
        unknown, wrong_method = client.get("/nothing"), client.get("/ops")
    assert odd_id["status"] == "refused"
    assert odd_id["error"].startswith("id: 'not-a-uuid' is not a memory id")
    assert (unknown.status_code, wrong_method.status_code) == (404, 405)
    assert "error" in unknown.json() and "error" in wrong_method.json()


def test_the_server_keeps_nothing_a_daemon_calls_personal(server: TeamServer, tokens: dict[str, str]) -> None:
    """It stores what it is sent and refuses what is not a shared project memory: a personal or
    a global record, one that holds a secret. None of their text reaches its disk, nor the audit
    log, which says who did what to which id, never what the memory said."""
    project = "github.com-acme-personal"
    personal = memory("PERSONAL-7f3a my dentist is on Tuesday", project, shared=False)
    global_one = memory("GLOBAL-7f3a I prefer tabs everywhere", "global")
    secret = memory("SECRET-7f3a token ghp_abcdefghijklmnopqrstuvwxyz0123456789", project)
    shared = memory("SHARED-7f3a the build needs node 20", project)
    with server.client(tokens["alice"]) as client:
        results = _ops(client, put(personal), put(global_one), put(secret), put(shared, seed=30))
        stored = [c["memory"]["content"] for c in _changes(client, project)["changes"]]
    assert [r["status"] for r in results] == ["refused", "refused", "refused", "applied"]
    assert results[0]["error"].startswith("memory.shared: false: a personal memory never goes to the team")
    assert results[1]["error"].startswith("memory.scope: 'global'")
    assert stored == ["SHARED-7f3a the build needs node 20"]
    on_disk = b"".join(path.read_bytes() for path in server.root.rglob("*") if path.is_file())
    assert b"SHARED-7f3a" in on_disk  # the scan reads the engine's files: the shared text is there
    for marker in (b"PERSONAL-7f3a", b"GLOBAL-7f3a", b"SECRET-7f3a", b"ghp_abcdef"):
        assert marker not in on_disk, marker
    ids = {record["id"] for record in (personal, global_one, secret, shared)}
    lines = [line for line in server.audit() if line.get("id") in ids]
    assert [line["outcome"] for line in lines] == ["refused", "refused", "refused", "applied"]
    assert all({"time", "user", "op", "op_id", "id", "project", "outcome"} <= line.keys() for line in lines)
    assert {line["user"] for line in lines} == {"alice"}


def test_every_write_and_refusal_is_audited(server: TeamServer, tokens: dict[str, str]) -> None:
    project = "github.com-acme-audit"
    record = memory("Audited note", project)
    op = put(record, seed=40)
    with server.client(tokens["alice"]) as alice:
        _ops(alice, op, op, delete(record["id"], project))
    with server.client(tokens["rita"]) as rita:
        rita.post("/ops", json={"ops": [delete(record["id"], project)]})
    with server.client("forged") as forged:
        forged.post("/ops", json={"ops": [delete(record["id"], project)]})
    lines = server.audit()
    mine = [(line["op"], line["outcome"]) for line in lines if line.get("id") == record["id"]]
    assert mine == [("put", "applied"), ("put", "duplicate"), ("delete", "applied")]
    request_refusals = [line for line in lines if line["op"] == "ops"]
    assert {"user": "rita", "outcome": "refused"}.items() <= request_refusals[-2].items()
    assert request_refusals[-2]["error"].startswith("role: rita has the role read")
    assert request_refusals[-1]["user"] is None
    assert request_refusals[-1]["error"] == "authorization: this token is not a team user's"


def test_user_commands_show_a_token_once_and_keep_its_hash(
    server: TeamServer, tokens: dict[str, str]
) -> None:
    env, root = server.env(), str(server.root)
    again = run_clarity(env, "team", "user", "add", "alice", "--storage-root", root)
    assert again.returncode == 2
    assert "alice already has a token (role write); revoke it first" in again.stderr
    bad_name = run_clarity(env, "team", "user", "add", "Alice!", "--storage-root", root)
    assert bad_name.returncode == 2 and "NAME: 'Alice!' is not a user name" in bad_name.stderr
    bad_role = run_clarity(env, "team", "user", "add", "dave", "--role", "owner", "--storage-root", root)
    assert bad_role.returncode == 2 and "--role: 'owner' is not one of read, write, admin" in bad_role.stderr
    listed = run_clarity(env, "team", "user", "list", "--json", "--storage-root", root)
    assert listed.returncode == 0, listed.stderr
    state = (server.root / "app-data" / "team" / "team.sqlite3").read_bytes()
    for name, token in tokens.items():
        assert token not in listed.stdout and token.encode() not in state
        assert f'"user": "{name}"' in listed.stdout
    assert len(tokens["alice"]) >= 43  # 32 random bytes, base64url


def test_limits_per_user_and_op_ids_across_a_restart(tmp_path: Path) -> None:
    team = TeamServer(
        tmp_path / "storage", free_port(), tmp_path / "tls", env={"CLARITY_TEAM__WRITES_PER_MINUTE": "3"}
    )
    project = "github.com-acme-limits"
    ops = [put(memory(f"Limited fact {i}", project), seed=50 + i) for i in range(5)]
    with team.running():
        token, other = team.add_user("alice"), team.add_user("bob")
        with team.client(token) as client:
            limited = client.post("/ops", json={"ops": ops})
            again = client.post("/ops", json={"ops": ops})
        with team.client(other) as client:  # each user has a budget of their own
            assert (
                client.post("/ops", json={"ops": [put(memory("Bob's fact", project), seed=60)]}).status_code
                == 200
            )
    assert limited.status_code == 429
    assert limited.json()["error"].startswith("rate: alice sent more than 3 writes in a minute")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert [r["status"] for r in limited.json()["results"]] == ["applied"] * 3
    assert again.status_code == 429
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3  # duplicates cost nothing
    with team.running(), team.client(token) as client:  # the op ids applied outlive the process
        assert [r["status"] for r in client.post("/ops", json={"ops": ops[:3]}).json()["results"]] == [
            "duplicate"
        ] * 3
        assert client.get("/whoami").json()["model"] == MODEL
        contents = [c["memory"]["content"] for c in _changes(client, project)["changes"]]
    assert contents == ["Limited fact 0", "Limited fact 1", "Limited fact 2", "Bob's fact"]


def test_tls_is_required_beyond_loopback_and_spoken_on_it(server: TeamServer, tmp_path: Path) -> None:
    env = {**server.env(), "CLARITY_TEAM__TLS_CERT": "", "CLARITY_TEAM__TLS_KEY": ""}
    env = {k: v for k, v in env.items() if not k.startswith("CLARITY_TEAM__TLS")}
    args = (
        "serve",
        "--team",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--storage-root",
        str(tmp_path),
    )
    refused = run_clarity(env, *args, timeout=60)
    assert refused.returncode == 2
    assert "a team server binds beyond loopback only with TLS" in refused.stderr
    with pytest.raises(httpx.HTTPError):  # its certificate is not one the system trusts
        httpx.get(f"{server.url}/healthz", timeout=5)
    with pytest.raises(httpx.HTTPError):  # and it speaks no plain HTTP
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)


def test_a_disk_under_its_floor_answers_507_and_the_op_waits(tmp_path: Path) -> None:
    """A store that refuses writes (free space under storage.min_free_bytes) is a 507 naming the
    floor, never a 500, and the op is not noted as applied: the outbox's resend applies it."""
    team = TeamServer(tmp_path / "storage", free_port(), tmp_path / "tls")
    project = "github.com-acme-full"
    first, second = (
        put(memory("Fits on the disk", project), seed=70),
        put(memory("Does not fit", project), seed=71),
    )
    with team.running():
        token = team.add_user("alice")
        with team.client(token) as client:
            assert _ops(client, first)[0]["status"] == "applied"  # opens the store
    huge = {"CLARITY_STORAGE__MIN_FREE_BYTES": str(10**15)}
    full = TeamServer(tmp_path / "storage", team.port, tmp_path / "tls", env=huge)
    with full.running(), full.client(token) as client:
        refused = client.post("/ops", json={"ops": [first, second]})
    assert refused.status_code == 507, refused.text
    assert "storage.min_free_bytes" in refused.json()["error"]
    outcomes = [(line["op_id"], line["outcome"]) for line in full.audit()[-2:]]
    assert outcomes == [(first["op_id"], "duplicate"), (second["op_id"], "failed")]
    with team.running(), team.client(token) as client:
        assert [r["status"] for r in _ops(client, first, second)] == ["duplicate", "applied"]
