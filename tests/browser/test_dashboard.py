"""The memory dashboard in a real browser (headless chromium) against a real daemon.

Each test drives the pages the way a user would (typing, choosing, clicking), and checks the
result through the REST API as well, so a page that only looks right does not pass.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..daemon_util import Daemon, free_port

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hook_payloads"
SCOPE = "dash-demo"


def store(daemon: Daemon, content: str, **fields: Any) -> str:
    response = daemon.api("POST", "/memories", project=SCOPE, json={"content": content, **fields})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def search_ids(daemon: Daemon, query: str, **fields: Any) -> list[str]:
    body = {"query": query, "scope": "all", "limit": 5, **fields}
    response = daemon.api("POST", "/search", project=SCOPE, json=body)
    assert response.status_code == 200, response.text
    return [r["memory"]["id"] for r in response.json()["results"]]


class Watched:
    """A page plus everything that must not happen on it: dialogs, script errors, console errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def check(self) -> None:
        assert self.dialogs == [], f"a dialog opened (script ran): {self.dialogs}"
        assert self.errors == [], self.errors


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    watcher = Watched(page)
    yield watcher
    context.close()
    watcher.check()


def rows(page: Any) -> Any:
    return page.locator("#results table.memories tbody tr")


# -- list, search, filter -----------------------------------------------------------------------


def test_list_search_and_live_update(dashboard_daemon: Daemon, watched: Watched, screenshots: Path) -> None:
    daemon, page = dashboard_daemon, watched.page
    store(daemon, "The staging cluster runs Kubernetes with an nginx ingress controller", memory_type="fact")
    store(daemon, "Always use uv instead of pip for installing Python packages", memory_type="preference")
    store(daemon, "We chose PostgreSQL over MySQL for the ledger because of JSONB", memory_type="decision")
    store(daemon, "`make test` runs the unit tests; `make e2e` runs the browser tests", memory_type="command")

    page.goto(daemon.url + "/")
    assert page.title().startswith("Memories")
    for text in ("nginx ingress controller", "uv instead of pip", "PostgreSQL over MySQL"):
        assert page.locator("#results").get_by_text(text).count() == 1
    first = rows(page).first
    assert "command" in first.inner_text()  # newest first
    assert "dash-demo" in first.inner_text() and "manual" in first.inner_text()
    page.screenshot(path=str(screenshots / "memories.png"), full_page=True)

    # Live: a memory stored while the page is open appears without a reload (htmx polling).
    store(daemon, "The release train leaves every second Tuesday at noon", memory_type="fact")
    page.locator("#results").get_by_text("release train leaves").wait_for(timeout=15_000)

    page.fill("input[name=q]", "which database did we pick for the ledger")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"q=which"))
    assert "PostgreSQL over MySQL" in rows(page).first.inner_text()
    assert page.locator("#results th", has_text="Score").count() == 1
    page.screenshot(path=str(screenshots / "search.png"), full_page=True)


def test_filter_by_type_source_and_importance(dashboard_daemon: Daemon, watched: Watched) -> None:
    daemon, page = dashboard_daemon, watched.page
    store(daemon, "Filter check: prefer tabs in Makefiles", memory_type="preference", importance=0.9)
    store(daemon, "Filter check: imported wiki note about the VPN", memory_type="note", source="import")
    store(
        daemon, "Filter check: minor observation about log noise", memory_type="observation", importance=0.1
    )

    page.goto(daemon.url + "/")
    page.select_option("select[name=type]", "preference")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"type=preference"))
    texts = rows(page).all_inner_texts()
    assert texts and all("preference" in t for t in texts)
    assert any("prefer tabs in Makefiles" in t for t in texts)

    page.goto(daemon.url + "/")
    page.select_option("select[name=source]", "import")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"source=import"))
    texts = rows(page).all_inner_texts()
    assert len(texts) == 1 and "imported wiki note" in texts[0]

    page.goto(daemon.url + "/")
    page.fill("input[name=tags]", "")
    page.fill("input[name=max_importance]", "0.2")
    page.select_option("select[name=sort]", "importance")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"max_importance=0.2"))
    texts = rows(page).all_inner_texts()
    assert len(texts) == 1 and "minor observation" in texts[0]
    assert page.locator(".summary .total").inner_text() == "1"


def test_search_takes_the_list_filters(dashboard_daemon: Daemon, watched: Watched) -> None:
    """A search with filters ranks only what matches (the filters go to the engine)."""
    daemon, page = dashboard_daemon, watched.page
    tag = ["search-filter"]
    imported = store(daemon, "Search filter check: imported runbook for the VPN", source="import", tags=tag)
    manual = [
        store(daemon, f"Search filter check: manual runbook number {n} for the VPN", importance=0.9, tags=tag)
        for n in range(6)
    ]

    page.goto(daemon.url + "/?q=runbook+for+the+VPN&tags=search-filter")
    assert {r.get_attribute("data-id") for r in rows(page).all()} == {imported, *manual}
    page.goto(daemon.url + "/?q=runbook+for+the+VPN&tags=search-filter&source=import")
    assert [r.get_attribute("data-id") for r in rows(page).all()] == [imported]
    page.goto(daemon.url + "/?q=runbook+for+the+VPN&tags=search-filter&max_importance=0.6")
    assert [r.get_attribute("data-id") for r in rows(page).all()] == [imported]
    page.goto(daemon.url + "/?q=runbook+for+the+VPN&tags=search-filter&min_importance=0.6")
    assert {r.get_attribute("data-id") for r in rows(page).all()} == set(manual)
    assert search_ids(daemon, "runbook for the VPN", tags=tag, sources=["import"]) == [imported]


def test_uses_and_last_used_follow_retrievals(dashboard_daemon: Daemon, watched: Watched) -> None:
    """Uses count at once on the dashboard; the last use shows once written (every few seconds),
    when the API shows both."""
    daemon, page = dashboard_daemon, watched.page
    memory_id = store(daemon, "Use count check: the cron job for invoices runs at 02:15", tags=["uses-check"])

    def facts() -> str:
        page.goto(f"{daemon.url}/memory/{memory_id}")
        return str(page.locator("dl.facts").first.inner_text())

    shown = facts()
    assert re.search(r"Last used\s+never", shown) and re.search(r"Uses\s+0", shown), shown
    for _ in range(2):  # retrievals count; the dashboard's own search does not
        assert search_ids(daemon, "when does the cron job for invoices run")[0] == memory_id
    page.goto(daemon.url + "/?q=cron+job+for+invoices")
    assert re.search(r"Uses\s+2", facts())
    page.goto(daemon.url + "/?tags=uses-check")
    assert page.locator(f"tr[data-id='{memory_id}'] td.num").last.inner_text() == "2"

    deadline = time.monotonic() + 30
    while daemon.api("GET", f"/memories/{memory_id}").json()["access_count"] != 2:
        assert time.monotonic() < deadline, "the uses were never written"
        time.sleep(0.5)
    shown = facts()
    assert re.search(r"Uses\s+2", shown) and not re.search(r"Last used\s+never", shown), shown
    page.goto(daemon.url + "/?tags=uses-check")
    row = page.locator(f"tr[data-id='{memory_id}']")
    assert row.locator("td.num").last.inner_text() == "2" and "just now" in row.inner_text()


# -- edit, delete, bulk forget ------------------------------------------------------------------


def test_edit_reembeds_content(dashboard_daemon: Daemon, watched: Watched, screenshots: Path) -> None:
    daemon, page = dashboard_daemon, watched.page
    memory_id = store(daemon, "Deployments go through Jenkins on the old build server", memory_type="fact")

    page.goto(daemon.url + "/?q=Jenkins+build+server")
    page.locator(f"tr[data-id='{memory_id}'] td.content a").click()
    page.wait_for_url(f"**/memory/{memory_id}")
    page.fill(
        "textarea[name=content]", "Deployments run on Nomad, scheduled through HashiCorp Consul service mesh"
    )
    page.select_option("select[name=memory_type]", "decision")
    page.fill("input[name=tags]", "deploy, infra")
    page.fill("input[name=importance]", "0.85")
    page.click("#edit button[type=submit]")
    page.wait_for_url(re.compile(r"saved=1"))
    assert "Nomad" in page.locator("#memory-content").inner_text()
    page.screenshot(path=str(screenshots / "memory-detail.png"), full_page=True)

    saved = daemon.api("GET", f"/memories/{memory_id}").json()
    assert saved["memory_type"] == "decision" and saved["tags"] == ["deploy", "infra"]
    assert saved["importance"] == pytest.approx(0.85)
    # Re-embedded: the dense vector alone (no lexical help) now finds it by its new meaning,
    # and the dashboard's search finds it by its new words.
    assert (
        search_ids(daemon, "which scheduler and service mesh do our deployments use", mode="dense")[0]
        == memory_id
    )
    page.goto(daemon.url + "/?q=Nomad+Consul")
    assert rows(page).first.get_attribute("data-id") == memory_id
    assert search_ids(daemon, "Jenkins", mode="lexical") == []


def test_delete_with_confirmation(dashboard_daemon: Daemon, watched: Watched, screenshots: Path) -> None:
    daemon, page = dashboard_daemon, watched.page
    memory_id = store(daemon, "A wrong memory: the API key lives in the README", memory_type="fact")

    page.goto(f"{daemon.url}/memory/{memory_id}")
    page.click("a.danger")
    page.wait_for_url(f"**/memory/{memory_id}/delete")
    assert daemon.api("GET", f"/memories/{memory_id}").status_code == 200  # nothing deleted yet
    page.screenshot(path=str(screenshots / "delete-confirm.png"), full_page=True)
    page.click("#confirm-delete")
    page.wait_for_url(re.compile(r"/\?deleted="))
    assert page.locator(".notice").inner_text().startswith(f"Memory {memory_id} deleted")
    assert daemon.api("GET", f"/memories/{memory_id}").status_code == 404
    assert page.locator(f"tr[data-id='{memory_id}']").count() == 0


def test_bulk_forget_shows_count_then_deletes(
    dashboard_daemon: Daemon, watched: Watched, screenshots: Path
) -> None:
    daemon, page = dashboard_daemon, watched.page
    for i in range(7):
        store(daemon, f"Scratch note {i} from a throwaway spike on caching", tags=["spike-cache"])
    keep = store(daemon, "A note worth keeping about caching", tags=["keep"])

    page.goto(daemon.url + "/forget")
    page.fill("input[name=tags]", "spike-cache")
    page.click("#forget-filters button[type=submit]")
    page.locator("#forget-preview").wait_for()
    assert page.locator("#match-count").inner_text() == "7"
    listed = daemon.api("GET", "/memories", params={"tags": "spike-cache", "scope": "all"}).json()
    assert listed["total"] == 7  # the preview deleted nothing
    page.screenshot(path=str(screenshots / "forget.png"), full_page=True)

    page.click("#confirm-forget")
    page.locator("#forget-done").wait_for()
    assert page.locator("#deleted-count").inner_text() == "7"
    listed = daemon.api("GET", "/memories", params={"tags": "spike-cache", "scope": "all"}).json()
    assert listed["total"] == 0
    assert daemon.api("GET", f"/memories/{keep}").status_code == 200


# -- injections, overview -----------------------------------------------------------------------


def test_injection_log_shows_what_a_hook_injected(
    dashboard_daemon: Daemon, watched: Watched, screenshots: Path
) -> None:
    daemon, page = dashboard_daemon, watched.page
    memory_id = store(
        daemon,
        "The flaky integration test test_payment_refund needs the Stripe mock on port 12111",
        memory_type="fix",
        scope="global",
    )
    page.goto(daemon.url + "/injections")

    payload = json.loads((FIXTURES / "UserPromptSubmit.json").read_text())
    payload["prompt"] = "Why does test_payment_refund keep failing in the integration suite?"
    reply = httpx.post(f"{daemon.url}/hooks/UserPromptSubmit", json=payload, timeout=60).json()
    context = reply["hookSpecificOutput"]["additionalContext"]
    assert memory_id[:8] in context

    # The open page picks the injection up by itself, then links to the memory.
    entry = page.locator("article.injection", has_text="test_payment_refund keep failing")
    entry.wait_for(timeout=15_000)
    assert "UserPromptSubmit" in entry.locator("header").inner_text()
    shown_context = entry.locator("pre.context").inner_text()
    assert shown_context == f"UserPromptSubmit hook additional context: {context}"
    link = entry.locator(f"a[href='/memory/{memory_id}']")
    assert link.count() == 1
    score_cells = entry.locator("tbody tr").first.locator("td.num").all_inner_texts()
    assert all(re.fullmatch(r"\d\.\d{3}", cell) for cell in score_cells), score_cells
    # How its score was made: which side ranked it where, and the parts that sum to the score.
    why = entry.locator("tbody tr").first.locator(".why").inner_text()
    assert re.search(r"meaning #\d+, similarity 0\.\d\d", why) and "words #1" in why, why
    assert re.search(r"score \d\.\d{3} = [\d.]+ relevance \+ [\d.]+ recency \+ [\d.]+ importance", why), why
    page.screenshot(path=str(screenshots / "injections.png"), full_page=True)

    link.click()
    page.wait_for_url(f"**/memory/{memory_id}")
    assert "Why does test_payment_refund" in page.inner_text("body")  # "Recently given to Claude"

    page.goto(daemon.url + "/overview")
    hooks = page.locator("#hook-stats").inner_text()
    assert "UserPromptSubmit" in hooks
    assert int(page.locator("#total").inner_text().replace(",", "")) >= 1
    assert "embedded" in page.inner_text("body")
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)


def test_why_not_replays_the_prompt_hook(
    dashboard_daemon: Daemon, watched: Watched, screenshots: Path
) -> None:
    daemon, page = dashboard_daemon, watched.page
    page.goto(daemon.url + "/")  # the dashboard reuses its scope list for a few seconds...
    scope = f"why-not-{uuid.uuid4().hex[:8]}"
    memory_id = store(
        daemon,
        "Why-not check: the billing service reads its Stripe keys from Vault path kv/billing",
        scope=scope,
    )
    page.goto(f"{daemon.url}/memory/{memory_id}")  # ...a memory stored since still has its page
    form = page.locator("#why-not-form")
    assert form.locator("select[name=project]").input_value() == scope  # the memory's own project

    form.locator("textarea[name=prompt]").fill("what is the capital of France?")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"prompt=what"))
    answer = page.locator("#why-not-answer").inner_text()
    assert "below the relevance cut" in answer, answer

    form = page.locator("#why-not-form")
    form.locator("textarea[name=prompt]").fill("where does billing read its Stripe keys from?")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"prompt=where"))
    answer = page.locator("#why-not-answer").inner_text()
    assert "would be given to Claude" in answer and "#1" in answer, answer
    assert "stripe" in page.locator("#why-not-answer").inner_text().lower()  # shared words
    page.screenshot(path=str(screenshots / "why-not.png"), full_page=True)

    # A prompt longer than the hook reads is refused with the field and the limit.
    response = httpx.get(
        f"{daemon.url}/memory/{memory_id}", params={"prompt": "x" * 4001, "project": scope}, timeout=30
    )
    assert response.status_code == 400 and "prompt: 4001 characters; at most 4000" in response.text
    # A project that does not exist is refused by name, not looked up.
    response = httpx.get(
        f"{daemon.url}/memory/{memory_id}", params={"prompt": "billing", "project": "nope"}, timeout=30
    )
    assert response.status_code == 400 and "project: 'nope'" in html.unescape(response.text)


# -- safety -------------------------------------------------------------------------------------


def test_script_in_memory_is_rendered_as_text(dashboard_daemon: Daemon, watched: Watched) -> None:
    daemon, page = dashboard_daemon, watched.page
    hostile = (
        "<script>window.__pwned = 1; alert('xss')</script>"
        "<img src=x onerror=\"window.__pwned = 2; alert('img')\"> hostile markup test"
    )
    memory_id = store(daemon, hostile, memory_type="observation")

    for path in ("/", f"/memory/{memory_id}", "/?q=hostile+markup"):
        page.goto(daemon.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        assert page.get_by_text("<script>window.__pwned = 1;", exact=False).first.is_visible(), path
        assert page.locator("img[src=x]").count() == 0, path
        assert page.locator("main script").count() == 0, path
    page.goto(f"{daemon.url}/memory/{memory_id}")
    assert page.locator("#memory-content").inner_text() == hostile
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None


def test_post_without_csrf_token_is_refused(dashboard_daemon: Daemon) -> None:
    daemon = dashboard_daemon
    memory_id = store(daemon, "CSRF target: this memory must survive a forged form")
    url = f"{daemon.url}/memory/{memory_id}/delete"

    assert httpx.post(url, data={}).status_code == 403  # no token, no cookie
    with httpx.Client() as client:  # a real session: cookie and token from the page
        client.get(f"{daemon.url}/memory/{memory_id}/delete")
        assert client.cookies.get("clarity_csrf")
        assert client.post(url, data={"csrf_token": "0" * 64}).status_code == 403  # wrong token
        assert client.post(url, data={}).status_code == 403  # cookie alone is not enough
        forged = client.post(
            f"{daemon.url}/forget", data={"scope": "all"}, headers={"Origin": "http://evil.example"}
        )
        assert forged.status_code == 403
    # DNS rebinding: a loopback daemon answers only to loopback host names.
    assert httpx.get(f"{daemon.url}/", headers={"Host": "evil.example"}).status_code == 421
    assert daemon.api("GET", f"/memories/{memory_id}").status_code == 200
    assert daemon.api("GET", "/stats").json()["total"] >= 1

    with httpx.Client() as client:  # the same POST with its token works
        page = client.get(f"{daemon.url}/memory/{memory_id}/delete").text
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
        assert token
        done = client.post(url, data={"csrf_token": token.group(1)})
        assert done.status_code == 303
    assert daemon.api("GET", f"/memories/{memory_id}").status_code == 404


# -- token --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a token, as a non-loopback bind must have (the same middleware guards both)."""
    daemon = Daemon(
        tmp_path_factory.mktemp("dashboard-token"),
        port=free_port(),
        env={"CLARITY_TOKEN": "s3cret-t0ken-for-tests"},
    )
    daemon.start()
    daemon.wait_healthy()
    yield daemon
    daemon.stop()


def test_token_needs_login(token_daemon: Daemon, watched: Watched, screenshots: Path) -> None:
    daemon, page = token_daemon, watched.page
    bearer = {"Authorization": "Bearer s3cret-t0ken-for-tests"}
    # Without the token nothing renders: pages redirect to the login, fragments refuse.
    for path in ("/", "/overview", "/injections", "/forget", "/fragments/memories"):
        response = httpx.get(daemon.url + path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
        assert "<table" not in response.text
    assert httpx.get(daemon.url + "/healthz").status_code == 200
    assert httpx.get(daemon.url + "/", headers=bearer).status_code == 200

    page.goto(daemon.url + "/overview")
    page.wait_for_url(re.compile(r"/login\?next=%2Foverview"))
    page.screenshot(path=str(screenshots / "login.png"), full_page=True)
    page.fill("input[name=token]", "wrong-token")
    page.click("form button[type=submit]")
    assert "wrong token" in page.inner_text("body")
    # The refusal is a 403, which chromium reports on the console; that one is expected.
    assert watched.errors == [
        "console: Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]
    watched.errors.clear()
    page.fill("input[name=token]", "s3cret-t0ken-for-tests")
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/overview$"))
    assert page.locator("h1").inner_text() == "Overview"

    cookie = next(c for c in page.context.cookies() if c["name"] == "clarity_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "s3cret" not in cookie["value"]
    # The login cookie opens the dashboard only, never the API.
    jar = {"clarity_session": cookie["value"]}
    assert httpx.get(daemon.url + "/overview", cookies=jar).status_code == 200
    assert httpx.get(daemon.url + "/api/stats", cookies=jar).status_code == 401

    page.click("header.top .logout button")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(daemon.url + "/")
    page.wait_for_url(re.compile(r"/login"))
