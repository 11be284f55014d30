"""The injection log, the dashboard's security helpers and the request guard's host rules, without a daemon."""

from __future__ import annotations

import threading

from clarity.dashboard import security
from clarity.hooks.injections import InjectedMemory, InjectionLog
from clarity.http import guard_rules


def test_log_is_bounded_newest_first_and_filterable() -> None:
    log = InjectionLog(capacity=5)
    for i in range(8):
        memories = [InjectedMemory(f"id-{i}", "fact", f"memory {i}", 0.5, 0.4)]
        log.record(
            "UserPromptSubmit" if i % 2 else "PreToolUse", "s", "proj", f"prompt {i}", f"ctx {i}", memories
        )
    assert len(log) == 5
    assert [e.trigger for e in log.recent()] == [f"prompt {i}" for i in (7, 6, 5, 4, 3)]
    assert [e.trigger for e in log.recent(event="PreToolUse")] == ["prompt 6", "prompt 4"]
    assert [e.trigger for e in log.recent(memory_id="id-5")] == ["prompt 5"]
    assert log.recent(memory_id="id-0") == []  # dropped: the log keeps the last `capacity`
    assert log.last_scope() == "proj"
    assert log.get(log.last_seq) is not None


def test_hook_stats_count_calls_errors_and_percentiles() -> None:
    log = InjectionLog()
    for ms in range(1, 101):
        log.record_call("PreToolUse", ms / 1000)
    log.record_call("PreToolUse", 0.5, failed=True)
    stats = log.hook_stats()["PreToolUse"]
    assert stats["calls"] == 101 and stats["errors"] == 1 and stats["injected"] == 0
    assert 49 <= stats["p50_ms"] <= 52 and 94 <= stats["p95_ms"] <= 97 and stats["max_ms"] == 500.0


def test_log_is_thread_safe() -> None:
    log = InjectionLog(capacity=100)

    def work() -> None:
        for i in range(500):
            log.record("UserPromptSubmit", "s", "p", str(i), "ctx")
            log.record_call("UserPromptSubmit", 0.001)
            log.recent(10)
            log.hook_stats()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 100
    assert log.hook_stats()["UserPromptSubmit"]["calls"] == 2000
    assert log.last_seq == 2000


def test_csrf_token_is_bound_to_its_nonce_and_process() -> None:
    csrf = security.Csrf()
    nonce = csrf.new_nonce()
    token = csrf.token(nonce)
    assert csrf.check(nonce, token)
    assert not csrf.check(csrf.new_nonce(), token)
    assert not csrf.check(nonce, None) and not csrf.check(None, token) and not csrf.check(nonce, "")
    assert not security.Csrf().check(nonce, token)  # another daemon process, another secret


def test_redirect_targets_stay_local() -> None:
    assert security.safe_next("/overview?x=1") == "/overview?x=1"
    for bad in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
    ):
        assert security.safe_next(bad) == "/"


def test_host_and_origin_checks() -> None:
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert guard_rules.host_allowed(host, "127.0.0.1"), host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", None):
        assert not guard_rules.host_allowed(host, "127.0.0.1"), host
    assert guard_rules.host_allowed("memory.example.com", "0.0.0.0")  # the token guards other binds
    assert guard_rules.origin_allowed(None, "127.0.0.1:8000")
    assert guard_rules.origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not guard_rules.origin_allowed("http://evil.example", "127.0.0.1:8000")
    assert not guard_rules.origin_allowed("null", "127.0.0.1:8000")


def test_login_cookie_is_derived_from_the_token() -> None:
    value = security.session_value("tok")
    assert "tok" not in value and security.session_ok(value, "tok")
    assert not security.session_ok(value, "other") and not security.session_ok(None, "tok")
    header = f"a=1; {security.SESSION_COOKIE}={value}; b=2".encode()
    assert security.cookie_from_header(header, security.SESSION_COOKIE) == value
    assert security.is_dashboard_path("/") and security.is_dashboard_path("/memory/x")
    assert not security.is_dashboard_path("/api/stats") and not security.is_dashboard_path("/mcp")
    assert security.is_public_path("/login") and security.is_public_path("/static/htmx.min.js")
