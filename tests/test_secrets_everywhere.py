"""No planted secret reaches a stored field, a page, the log or a file, whatever door it came in by.

Secrets of many kinds are planted, each with short surrounding text, text that puts the secret
across a length where something is cut (the learner cuts commands at 120, 300 and 1000
characters, the injection log a prompt at 500, provenance at 200) and long text, through every
way in: REST (content, tags, metadata keys and values, session_id), the MCP
``store_memory`` tool, the hooks (a failing command and its error, its fix, a build command, a
session summary, PreToolUse and UserPromptSubmit context, "remember that ...", session and tool
ids), all against one real daemon. Then the distinctive part of every secret is looked for in
everything the daemon shows or keeps: REST get, list and export of every field, the dashboard's
pages (memory list, every memory page, injection log, overview), the hook replies, the daemon's
log, and the bytes of every file under the storage root. Nothing here is deleted, so a secret
found on disk got there in the first place.

A canary word planted next to each secret must be found in those same places, so the search is
known to see the text it looks through.
"""

from __future__ import annotations

import base64
import re
import string
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from .daemon_util import Daemon, free_port
from .test_redact import B62, B64, B64URL, HEX, UPPER_DIGITS, rnd

LETTERS = string.ascii_letters


def _pem(kind: str, seed: int) -> tuple[str, list[str]]:
    lines = [rnd(64, B64, seed=seed + i) for i in range(4)]
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"
    return block, [lines[0][:16], lines[-1][-16:]]


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str  # what is planted: the secret with the context that makes it one
    parts: tuple[str, ...]  # its distinctive parts: any of them found anywhere is a leak


def _secret(kind: str, before: str, body: str, after: str = "", parts: list[str] | None = None) -> Secret:
    """``body`` is the random part; its two ends are what is looked for (half a secret is a leak)."""
    found = parts or ([body[:12], body[-12:]] if len(body) >= 24 else [body])
    return Secret(kind, before + body + after, tuple(found))


def _secrets() -> list[Secret]:
    pem_rsa, rsa_parts = _pem("RSA ", 500)
    pem_ssh, ssh_parts = _pem("OPENSSH ", 510)
    gcp_lines = [rnd(64, B64, seed=520 + i) for i in range(3)]
    gcp = (
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + "\\n".join(gcp_lines)
        + '\\n-----END PRIVATE KEY-----\\n", "client_email": "ci@proj.iam.gserviceaccount.com"}'
    )
    docker_auth = base64.b64encode(f"bob:{rnd(24, B62, 530)}".encode()).decode()
    prose = rnd(8, B62, 531) + "#" + rnd(4, B62, 532) + "$" + rnd(5, B62, 533)
    django = "k9#)x&m2(w" + rnd(30, B62, 534)
    passwd = rnd(10, B62, 535) + "!" + rnd(5, B62, 536)
    return [
        _secret("github_classic", "", "ghp_" + rnd(36, B62, 401)),
        _secret("github_oauth", "oauth ", "gho_" + rnd(36, B62, 402)),
        _secret("github_app", "GH_INSTALL=", "ghs_" + rnd(36, B62, 403)),
        _secret("github_fine_grained", "token ", "github_pat_" + rnd(22, B62, 404) + "_" + rnd(59, B62, 405)),
        _secret("gitlab", "PRIVATE-TOKEN: ", "glpat-" + rnd(20, B64URL, 406)),
        _secret("slack_bot", "SLACK=", "xoxb-1234567890123-1234567890123-" + rnd(24, B62, 407)),
        _secret(
            "slack_webhook",
            "https://hooks.slack.com/services/T0ABCDEFGH/B0ABCDEFGH/",
            rnd(24, B62, 408),
        ),
        _secret("stripe_live", "stripe.api_key = '", "sk_live_" + rnd(99, B62, 409), "'"),
        _secret("stripe_restricted", "", "rk_live_" + rnd(40, B62, 410)),
        _secret("aws_access_key_id", "aws_access_key_id = ", "AKIA" + rnd(16, UPPER_DIGITS, 411)),
        _secret("aws_secret_access_key", "aws_secret_access_key = ", rnd(40, B64, 412)),
        Secret("gcp_service_account_key", gcp, (gcp_lines[0][:16], gcp_lines[-1][-16:])),
        _secret("gcp_api_key", "key=", "AIza" + rnd(35, B64URL, 413)),
        _secret(
            "azure_storage_key",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=",
            rnd(86, B64, 414),
            "==;EndpointSuffix=core.windows.net",
        ),
        _secret("azure_ad_client_secret", "", rnd(3, B62, 415) + "8Q~" + rnd(34, B62, 416)),
        _secret(
            "openai", "OPENAI_API_KEY=", "sk-proj-" + rnd(64, B64URL, 417) + "T3BlbkFJ" + rnd(40, B62, 418)
        ),
        _secret("anthropic", "x-api-key: ", "sk-ant-api03-" + rnd(93, B64URL, 419) + "AA"),
        _secret(
            "jwt",
            "id_token=",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + rnd(43, B64URL, 420),
            parts=[rnd(43, B64URL, 420)[:12], rnd(43, B64URL, 420)[-12:]],
        ),
        Secret("pem_rsa_private_key", pem_rsa, tuple(rsa_parts)),
        Secret("openssh_private_key", pem_ssh, tuple(ssh_parts)),
        _secret(
            "basic_auth_url", "git clone https://deploy:", rnd(16, B62, 421), "@git.example.com/repo.git"
        ),
        _secret(
            "bearer_header",
            "curl -H 'Authorization: Bearer ",
            rnd(40, B64URL, 422),
            "' https://api.example.com",
        ),
        _secret("npm", "//registry.npmjs.org/:_authToken=", "npm_" + rnd(36, B62, 423)),
        _secret("pypi", "password = ", "pypi-AgEIcHlwaS5vcmc" + rnd(140, B64URL, 424)),
        _secret("twilio_api_key", "sid ", "SK" + rnd(32, HEX, 425)),
        _secret("sendgrid", "SENDGRID=", "SG." + rnd(22, B64URL, 426) + "." + rnd(43, B64URL, 427)),
        _secret("mailgun", "mailgun api ", "key-" + rnd(32, HEX, 428)),
        _secret("heroku", "heroku token ", "HRKU-AA" + rnd(58, B64URL, 429)),
        _secret("digitalocean", "doctl auth init -t ", "dop_v1_" + rnd(64, HEX, 430)),
        _secret(
            "discord_bot",
            "bot.run('",
            "MTk4NjIyNDgzNDcxOTI1MjQ4." + rnd(6, B64URL, 431) + "." + rnd(38, B64URL, 432),
            "')",
            parts=["MTk4NjIyNDgzNDcxOTI1MjQ4", rnd(38, B64URL, 432)[-12:]],
        ),
        _secret(
            "telegram_bot", "https://api.telegram.org/bot", "123456789:AA" + rnd(33, B64URL, 433), "/getMe"
        ),
        _secret("shopify", "X-Shopify-Access-Token: ", "shpat_" + rnd(32, HEX, 434)),
        _secret("datadog", "DD_API_KEY=", rnd(32, HEX, 435)),
        _secret("hashicorp_vault", "VAULT_TOKEN=", "hvs." + rnd(90, B64URL, 436)),
        _secret("docker_config_auth", '{"auths": {"ghcr.io": {"auth": "', docker_auth, '"}}}'),
        _secret(
            "docker_hub_pat", "docker login -u bob --password-stdin <<< ", "dckr_pat_" + rnd(27, B64URL, 437)
        ),
        _secret("env_password", "export DB_PASSWORD=", rnd(16, B62, 438)),
        _secret("env_secret", "CLIENT_SECRET=", rnd(24, B62, 439)),
        _secret("env_token", "SERVICE_TOKEN=", rnd(24, B62, 440)),
        _secret("env_key", "STRIPE_KEY=", rnd(24, B62, 441)),
        _secret("postgres_url", "DATABASE_URL=postgresql://app:", rnd(16, B62, 442), "@db.internal:5432/app"),
        _secret("mongodb_srv", "mongodb+srv://admin:", rnd(16, B62, 443), "@cluster0.example.net/db"),
        _secret("sshpass", "sshpass -p '", rnd(14, B62, 444), "' ssh deploy@host"),
        _secret("mysql_p", "mysql -u root -p", rnd(14, B62, 445), " appdb"),
        _secret("docker_login_p", "docker login -u bob -p ", rnd(16, B62, 446), " ghcr.io"),
        _secret("redis_cli_a", "redis-cli -h cache -a ", rnd(16, B62, 447), " ping"),
        _secret("password_in_prose", "the staging password is ", prose, parts=[prose[:8], prose[-5:]]),
        _secret("django_secret_key", "DJANGO_SECRET_KEY=", django, parts=[django[10:22], django[-12:]]),
        _secret("pw_assignment", "pw=", rnd(14, B62, 448)),
        _secret("passwd_colon", "passwd: ", passwd, parts=[passwd[:10], passwd[-5:]]),
        _secret("curl_user", "curl -u admin:", rnd(14, B62, 449), " https://api.example.com"),
        _secret("huggingface", "HF_HUB ", "hf_" + rnd(34, LETTERS, 450)),
        _secret("age_secret_key", "", "AGE-SECRET-KEY-1" + rnd(58, UPPER_DIGITS, 451)),
        _secret("high_entropy", "the value was ", rnd(40, B64, 452), " yesterday"),
        _secret("x_api_key_header", "-H 'X-API-Key: ", rnd(32, B62, 453), "'"),
        _secret("sentry", "SENTRY_AUTH=", "sntryu_" + rnd(64, HEX, 454)),
        _secret("grafana", "grafana sa ", "glsa_" + rnd(32, B62, 455) + "_" + rnd(8, HEX, 456)),
        _secret("new_relic", "newrelic ", "NRAK-" + rnd(27, UPPER_DIGITS, 457)),
    ]


SECRETS = _secrets()
FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "


def _filler(n: int) -> str:
    return (FILLER * (n // len(FILLER) + 1))[:n]


def surround(secret: Secret, canary: str, lead: str, variant: str) -> str:
    """``lead`` + canary + filler + secret + filler, the secret placed by ``variant``: "short"
    (right after the canary), "cutN" (straddling character N of the whole text) or "long"
    (after 3,000 characters, with 3,000 more after it)."""
    head = f"{lead}{canary} "
    if variant == "short":
        return f"{head}{secret.text} end"
    if variant == "long":
        return f"{head}{_filler(3000)} {secret.text} {_filler(3000)}"
    cut = int(variant.removeprefix("cut"))
    start = max(len(head), cut - len(secret.text) // 2)
    return f"{head}{_filler(start - len(head) - 1)} {secret.text} {_filler(200)}"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, without its model: every text takes the same path (memories
    wait for a dense vector, retrieval is lexical), and thousands of stores stay quick."""
    root = tmp_path_factory.mktemp("secrets-root")
    daemon = Daemon(root, free_port(), env={"CLARITY_EMBEDDING__MODEL": str(root / "no-model")})
    with daemon.running():
        yield daemon


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("secrets-project") / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


class Planter:
    """Plants every secret through every door, counting the plantings and collecting replies."""

    def __init__(self, daemon: Daemon, project: Path) -> None:
        self.daemon = daemon
        self.project = project
        self.http = httpx.Client(base_url=daemon.url, timeout=60, headers={"X-Clarity-Project": str(project)})
        self.planted: dict[str, int] = {}
        self.replies: list[str] = []
        self.injection_log: list[str] = []  # the dashboard shows the last 100 entries: read as it fills

    def count(self, entry: str) -> None:
        self.planted[entry] = self.planted.get(entry, 0) + 1

    def post(self, path: str, body: Any) -> httpx.Response:
        response = self.http.post(path, json=body)
        assert response.status_code < 300, (path, response.status_code, response.text[:500])
        self.replies.append(response.text)
        return response

    def hook(self, event: str, session: str, **fields: Any) -> httpx.Response:
        body = {"session_id": session, "cwd": str(self.project), "hook_event_name": event, **fields}
        return self.post(f"/hooks/{event}", body)

    def rest(self, index: int, secret: Secret) -> None:
        tag_ok = len(secret.text.strip()) <= 64
        for variant in ("short", "cut300", "long"):
            text = surround(secret, f"zqcanary{index}r{variant}", "", variant)
            body: dict[str, Any] = {
                "content": text,
                "metadata": {
                    "note": text[:2000],
                    secret.text: "key",
                    "nested": {"value": [secret.text]},
                },
                "tags": [secret.text] if tag_ok else ["plain"],
            }
            if len(secret.text) <= 200:
                body["session_id"] = secret.text
                self.count("rest session_id")
            self.post("/api/memories", body)
            self.count("rest content")
            self.count("rest metadata")
            if tag_ok:
                self.count("rest tags")

    def learning(self, index: int, secret: Secret, variant: str) -> str:
        """A failing command, its fix (also a build command), then Stop: error, fix, command and
        summary memories, each cutting the command somewhere."""
        session = f"s{index}{variant}"
        sid = f"{session}-{secret.text}" if len(secret.text) < 150 else session
        text = surround(secret, f"zqcanary{index}h{variant}", "", variant)
        ids = {"tool_use_id": f"toolu_{secret.text}", "prompt_id": "p-" + secret.text}
        self.hook(
            "PostToolUseFailure",
            sid,
            tool_name="Bash",
            tool_input={"command": f"make deploy {text}"},
            error=f"Exit code 2\nerror: {text}",
            **ids,
        )
        self.hook("PostToolUse", sid, tool_name="Bash", tool_input={"command": f"make test {text}"}, **ids)
        if variant == "short":  # the secret as the whole command: ``DB_PASSWORD=...`` runs no program
            self.hook(
                "PostToolUseFailure", sid, tool_name="Bash", tool_input={"command": secret.text}, error="x"
            )
            self.count("hook command alone")
        for entry in ("hook failure", "hook fix", "hook build command", "hook session_id", "hook tool ids"):
            self.count(entry)
        return sid

    def after_learning(self, index: int, secret: Secret, variant: str, sid: str) -> None:
        text = surround(secret, f"zqcanary{index}h{variant}", "", variant)
        self.hook("PreToolUse", sid, tool_name="Bash", tool_input={"command": f"make deploy {text}"})
        self.hook("Stop", sid)
        self.count("hook PreToolUse injection")
        self.count("hook session summary")
        if variant == "cut1000":
            self.read_injection_log()

    def read_injection_log(self) -> None:
        self.injection_log.append(self.http.get("/fragments/injections").text)

    def prompts(self, index: int, secret: Secret) -> None:
        for variant in ("short", "cut500", "long"):
            text = surround(secret, f"zqcanary{index}p{variant}", "deploy staging cluster rotation ", variant)
            self.hook("UserPromptSubmit", f"p{index}{variant}", prompt=text)
            self.hook("UserPromptSubmit", f"p{index}{variant}", prompt=f"remember that {text}")
            self.count("prompt injection log")
            self.count("prompt remember")
        self.read_injection_log()

    def wait_learned(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.http.get("/readyz").json()["learning_backlog"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the learner did not catch up")


async def _mcp_plant(daemon: Daemon, project: Path) -> list[str]:
    replies = []
    async with (
        httpx2.AsyncClient(headers={"X-Clarity-Project": str(project)}, timeout=60) as http,
        Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client,
    ):
        for index, secret in enumerate(SECRETS):
            for variant in ("short", "cut300", "long"):
                text = surround(secret, f"zqcanary{index}m{variant}", "", variant)
                tags = [secret.text] if len(secret.text.strip()) <= 64 else ["mcp"]
                result = await client.call_tool(
                    "store_memory",
                    {"content": text, "tags": tags, "metadata": {"k": secret.text}, "detail": True},
                )
                assert not result.is_error, result.content
                replies.append(str(result.structured_content))
    return replies


def _everything_shown(daemon: Daemon, planter: Planter) -> dict[str, str]:
    """Every place a secret could show up, by name."""
    http = planter.http
    places: dict[str, str] = {}
    listed: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = http.get("/api/memories", params={"scope": "all", "limit": 500, "offset": offset}).json()
        listed += page["memories"]
        offset = page["next_offset"]
    places["REST list"] = str(listed)
    places["REST get"] = " ".join(http.get(f"/api/memories/{m['id']}").text for m in listed)
    exported, cursor = [], None
    while True:
        body = {"scope": "all", "with_vectors": False, **({"cursor": cursor} if cursor else {})}
        page = http.post("/api/export", json=body).json()
        exported.append(str(page["memories"]))
        cursor = page.get("next")
        if not cursor:
            break
    places["REST export"] = " ".join(exported)
    pages = [http.get(path, params={"scope": "all"}).text for path in ("/", "/overview", "/injections")]
    places["dashboard list and overview"] = " ".join(pages)
    places["dashboard injection log"] = " ".join(planter.injection_log)
    places["dashboard memory pages"] = " ".join(http.get(f"/memory/{m['id']}").text for m in listed)
    places["hook, REST and MCP replies"] = " ".join(planter.replies)
    places["daemon log"] = daemon.log()
    return places


def _files(root: Path) -> tuple[dict[str, bytes], int]:
    """Every file under the root, with runs of NUL bytes (the engine preallocates its files)
    squeezed out, which no secret contains; and the bytes read."""
    files, size = {}, 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            size += len(data)
            files[str(path.relative_to(root))] = re.sub(rb"\x00{16,}", b"\x00", data)
    return files, size


def test_no_planted_secret_is_stored_shown_logged_or_written(daemon: Daemon, project: Path) -> None:
    started = time.monotonic()
    phases = []
    planter = Planter(daemon, project)
    planter.post("/api/memories", {"content": "Deploy staging cluster rotation: drain the nodes first"})
    for index, secret in enumerate(SECRETS):
        planter.rest(index, secret)
    phases.append(("rest", time.monotonic()))
    planter.replies += anyio.run(_mcp_plant, daemon, project)
    planter.planted["mcp store_memory"] = 3 * len(SECRETS)
    phases.append(("mcp", time.monotonic()))
    sessions = [
        (index, secret, variant, planter.learning(index, secret, variant))
        for index, secret in enumerate(SECRETS)
        for variant in ("short", "cut120", "cut300", "cut1000")
    ]
    phases.append(("post learning", time.monotonic()))
    planter.wait_learned()
    phases.append(("learned", time.monotonic()))
    for index, secret, variant, sid in sessions:
        planter.after_learning(index, secret, variant, sid)
    phases.append(("pretool+stop", time.monotonic()))
    for index, secret in enumerate(SECRETS):
        planter.prompts(index, secret)
    phases.append(("prompts", time.monotonic()))
    planter.wait_learned()
    phases.append(("learned", time.monotonic()))
    planting = time.monotonic() - started

    places = _everything_shown(daemon, planter)
    phases.append(("shown", time.monotonic()))
    files, size = _files(daemon.root)
    stored = b"\x00".join(files.values())
    shown = "\x00".join(places.values())
    leaks: list[str] = []
    for secret in SECRETS:
        for part in secret.parts:
            if part in shown:
                leaks += [
                    f"{secret.kind} ({part}) in {name}" for name, text in places.items() if part in text
                ]
            if part.encode() in stored:
                leaks += [
                    f"{secret.kind} ({part}) in file {f}"
                    for f, data in files.items()
                    if part.encode() in data
                ]
    leaked_kinds = {leak.split(" ", 1)[0] for leak in leaks}
    phases.append((f"searched {len(shown):,} characters", time.monotonic()))
    last = started
    for name, at in phases:
        print(f"{name}: {at - last:.1f}s", end="; ")
        last = at

    # The search sees what it searches: the canaries next to the secrets are there.
    canaries = [
        ("REST list", "zqcanary0rshort"),
        ("REST export", "zqcanary0hcut300"),
        ("dashboard memory pages", "zqcanary0mshort"),
        ("dashboard injection log", "zqcanary0pshort"),
        ("dashboard injection log", "zqcanary0hcut1000"),
        ("dashboard list and overview", "zqcanary"),
        ("hook, REST and MCP replies", "zqcanary0hshort"),
    ]
    for place, canary in canaries:
        assert canary in places[place], f"canary {canary} missing from {place}: the search is blind"
    assert b"zqcanary0rshort" in stored and b"zqcanary0hcut120" in stored, "the file search is blind"

    planted = sum(planter.planted.values())
    print(
        f"\nsecret kinds: {len(SECRETS)}; plantings: {planted} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(planter.planted.items()))}); "
        f"memories: {places['REST list'].count('content_hash')}; files searched: {len(files)} "
        f"({size:,} bytes); kinds found: {len(leaked_kinds)}; findings: {len(leaks)}; "
        f"planting took {planting:.1f}s"
    )
    assert not leaks, "\n".join(leaks[:60])
    assert len(SECRETS) >= 40 and len({s.kind for s in SECRETS}) == len(SECRETS)
