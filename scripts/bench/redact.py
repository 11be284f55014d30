"""What redaction costs per hook call: ``redact`` and ``redact_value`` on typical 2 KB payloads.

    .venv/bin/python scripts/bench/redact.py [--repeat 2000]

Every hook passes its text through :mod:`clarity.redact` (the learner on every stored field,
the injection log on every prompt it keeps), so its cost must stay well under a millisecond
for the payloads Claude Code really sends. The inputs are built here from the recorded hook
payloads in tests/fixtures/hook_payloads/, padded to about 2 KB with realistic text (a pytest
run, a prose prompt, source code), with and without a secret in them; a 20 KB and a 1 MB
payload show how the cost grows. Prints the median and the 95th percentile per call in
microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarity.redact import redact, redact_value

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "hook_payloads"

PYTEST_LOG = (
    "tests/test_store.py::test_upsert_then_get PASSED                         [ 12%]\n"
    "tests/test_store.py::test_delete_missing_id FAILED                        [ 13%]\n"
    "E   AssertionError: assert 'created' == 'duplicate'\n"
    "E     - duplicate\n"
    "E     + created\n"
    "/home/user/project/src/app/store.py:212: in upsert\n"
    "    self.db.upsert([self._point(memory, dense)])\n"
)
PROMPT = (
    "Can you look at why the integration tests fail on CI but pass locally? I think it is the "
    "docker network: the compose file uses ci-net and the Makefile target itest expects it to "
    "exist. Also check whether the retry in src/app/client.py handles a 503 from the gateway, "
    "and please keep the fix small, we release on Friday. "
)
CODE = (
    "def connect(settings: Settings) -> Client:\n"
    '    """Open a client with the configured timeout and retries."""\n'
    "    token = os.environ.get('API_TOKEN')\n"
    "    headers = {'Authorization': f'Bearer {token}', 'User-Agent': 'app/1.4.2'}\n"
    "    return Client(base_url=settings.url, headers=headers, timeout=settings.timeout)\n\n"
)
SECRET_LINE = "export GITHUB_TOKEN=ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A" + "\n"


def _pad(text: str, size: int) -> str:
    return (text * (size // len(text) + 1))[:size]


def payloads() -> dict[str, tuple[Callable[[Any], Any], Any]]:
    """name -> (function, argument)."""
    post = json.loads((FIXTURES / "PostToolUse.json").read_text())
    post["tool_response"]["stdout"] = _pad(PYTEST_LOG, 1500)
    with_secret = json.loads(json.dumps(post))
    with_secret["tool_response"]["stdout"] = _pad(PYTEST_LOG, 1400) + SECRET_LINE
    return {
        "prompt 2 KB (prose)": (redact, _pad(PROMPT, 2048)),
        "tool output 2 KB (pytest log)": (redact, _pad(PYTEST_LOG, 2048)),
        "source code 2 KB": (redact, _pad(CODE, 2048)),
        "tool output 2 KB with a token": (redact, _pad(PYTEST_LOG, 2000) + SECRET_LINE),
        "PostToolUse payload ~2 KB (redact_value)": (redact_value, post),
        "PostToolUse payload ~2 KB with a token (redact_value)": (redact_value, with_secret),
        "tool output 20 KB": (redact, _pad(PYTEST_LOG + CODE + PROMPT, 20_480)),
        "tool output 1 MB": (redact, _pad(PYTEST_LOG + CODE + PROMPT, 1_048_576)),
    }


def measure(function: Callable[[Any], Any], argument: Any, repeat: int) -> tuple[float, float]:
    """Median and 95th percentile of one call, in microseconds."""
    function(argument)  # warm caches (compiled patterns, name classification)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(argument)
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'input':<58} {'median µs':>10} {'p95 µs':>10}")
    for name, (function, argument) in payloads().items():
        repeat = max(5, args.repeat // 200) if "1 MB" in name else args.repeat
        median, p95 = measure(function, argument, repeat)
        print(f"{name:<58} {median:>10.1f} {p95:>10.1f}")


if __name__ == "__main__":
    main()
