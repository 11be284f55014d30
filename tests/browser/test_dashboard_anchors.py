"""A memory's anchors in a real browser (headless chromium) against a real daemon and a real git
repository: the page follows the code as it is edited, and a user re-anchors it, is told which
line of a re-anchor form is wrong, and confirms it "still true". Each step is checked through
the REST API as well, so a page that only looks right does not pass.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from .. import test_anchors
from ..daemon_util import Daemon
from ..test_anchors import git
from ..test_dashboard_anchors import NOTE
from . import test_dashboard
from .test_dashboard import Watched

pytestmark = pytest.mark.slow
repo = test_anchors.repo  # fixtures shared with those modules: src/cart.py committed; a watched page
watched = test_dashboard.watched

DAY_NS = 86_400 * 1_000_000_000


def rewrite(path: Path, old: str, new: str, days_ago: float) -> None:
    """Edit the file as if its last write was ``days_ago`` days ago."""
    path.write_text(path.read_text().replace(old, new))
    mtime = time.time_ns() - int(days_ago * DAY_NS)
    os.utime(path, ns=(mtime, mtime))


def test_anchors_follow_the_code_and_the_user_can_reanchor_and_confirm(
    dashboard_daemon: Daemon, watched: Watched, repo: Path, screenshots: Path
) -> None:
    daemon, page = dashboard_daemon, watched.page
    # The directory in X-Clarity-Project is how the daemon learns where the project is checked out.
    stored = daemon.api(
        "POST", "/memories", project=str(repo), json={"content": NOTE, "anchors": ["src/cart.py:9-12"]}
    )
    assert stored.status_code == 201, stored.text
    memory_id = stored.json()["memory"]["id"]
    cart = repo / "src" / "cart.py"
    anchors = page.locator("#anchors")

    page.goto(f"{daemon.url}/memory/{memory_id}")
    row = page.locator("#anchor-list tbody tr")
    assert row.count() == 1
    assert "src/cart.py:9-12" in row.inner_text() and "unchanged" in row.inner_text()
    assert f"at commit {git(repo, 'rev-parse', 'HEAD')[:10]}" in row.inner_text()

    rewrite(cart, "    cart.append(item)\n", "    cart.insert(0, item)\n    cart.sort()\n", days_ago=2.01)
    page.reload()
    assert (
        "may be out of date: src/cart.py:9-12 changed 2 days ago"
        in anchors.locator("#anchor-state").inner_text()
    )
    assert re.search(r"changed 2 days ago; about \d+% of the anchored lines differ", row.inner_text())
    page.screenshot(path=str(screenshots / "memory-anchors.png"), full_page=True)

    # The search list marks it (retrieval checked it); its title says what changed.
    page.goto(daemon.url + "/?q=add_item+appends+the+item+to+the+cart")
    mark = page.locator(f"tr[data-id='{memory_id}'] .anchor-mark")
    assert mark.inner_text() == "may be out of date"
    assert "src/cart.py:9-12 changed 2 days ago" in (mark.get_attribute("title") or "")
    mark.locator("xpath=preceding-sibling::a").click()
    page.wait_for_url(f"**/memory/{memory_id}")

    # A wrong place is named by its line, what was typed stays, and nothing is captured.
    page.fill("#reanchor-form textarea[name=anchors]", "src/cart.py:9-12\nsrc/cart.py:30-12")
    page.click("#reanchor")
    error = page.locator("#anchor-error")
    assert error.inner_text() == "anchors, line 2: anchor lines: 30-12 ends before it starts"
    assert page.input_value("#reanchor-form textarea[name=anchors]") == "src/cart.py:9-12\nsrc/cart.py:30-12"
    # The refusal is a 400, which chromium reports on the console; that one is expected.
    assert watched.errors == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    watched.errors.clear()

    # Re-anchor with nothing typed: captured again where it is, as it is now.
    page.fill("#reanchor-form textarea[name=anchors]", "")
    page.click("#reanchor")
    page.wait_for_url(re.compile(r"anchored=1"))
    assert "Re-anchored" in anchors.inner_text() and "unchanged" in row.inner_text()
    saved = daemon.api("GET", f"/memories/{memory_id}").json()
    assert saved["confirmed_at"] is None and saved["anchors"][0]["path"] == "src/cart.py"

    # Changed again, then "Still true".
    rewrite(cart, "cart.sort()", "cart.reverse()", days_ago=3)
    page.reload()
    assert "changed 3 days ago" in row.inner_text()
    page.click("#still-true")
    page.wait_for_url(re.compile(r"anchored=confirmed"))
    assert "unchanged" in row.inner_text()
    assert page.locator("#confirmed").inner_text() == "Confirmed still true just now."
    assert daemon.api("GET", f"/memories/{memory_id}").json()["confirmed_at"] is not None

    # New places typed by the user; one file is deleted afterwards: gone, kept out of context.
    (repo / "src" / "util.py").write_text("def one():\n    return 1\n")
    page.fill("#reanchor-form textarea[name=anchors]", "src/cart.py:3-5\nsrc/util.py")
    page.click("#reanchor")
    page.wait_for_url(re.compile(r"anchored=1"))
    assert [r.split("\t")[0] for r in row.all_inner_texts()] == ["src/cart.py:3-5", "src/util.py"]
    (repo / "src" / "util.py").unlink()
    page.reload()
    assert "gone: file deleted" in row.nth(1).inner_text()
    assert "kept out of Claude's context" in anchors.locator("#anchor-state").inner_text()

    # Another origin's POST is refused, whatever token it carries; nothing changed.
    token = page.locator("#confirm-form input[name=csrf_token]").get_attribute("value")
    forged = httpx.post(
        f"{daemon.url}/memory/{memory_id}/reanchor",
        data={"csrf_token": token, "anchors": ""},
        headers={"Origin": "http://evil.example"},
        timeout=30,
    )
    assert forged.status_code == 403
    assert [a["path"] for a in daemon.api("GET", f"/memories/{memory_id}").json()["anchors"]] == [
        "src/cart.py",
        "src/util.py",
    ]
