"""The detector of facts that supersede older ones: its precision on the labelled pairs stays at
or above 0.95, and each of its rules holds on a case of its own."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from clarity.memory.supersede import Verdict, candidates, eligible, supersedes
from clarity.models import MemoryType, Source

PAIRS = Path(__file__).parent / "fixtures" / "supersede" / "pairs.jsonl"
ROWS = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]


def _precision_recall(rows: list[dict[str, str]]) -> tuple[float, float]:
    said = [(supersedes(r["new"], r["old"]) is not None, r["label"] == "supersede") for r in rows]
    tp = sum(1 for s, truth in said if s and truth)
    fp = sum(1 for s, truth in said if s and not truth)
    return tp / max(1, tp + fp), tp / max(1, sum(1 for _, truth in said if truth))


def test_the_labelled_set_is_large_balanced_and_partly_held_out() -> None:
    labels = Counter(r["label"] for r in ROWS)
    assert len(ROWS) >= 200
    assert set(labels) == {"supersede", "compatible", "different"}
    assert min(labels.values()) >= 0.3 * len(ROWS)
    held_out = sum(1 for r in ROWS if r["split"] == "held_out")
    assert 0.25 * len(ROWS) <= held_out <= 0.4 * len(ROWS)


@pytest.mark.parametrize("split", ["all", "held_out"])
def test_precision_floor_on_the_labelled_pairs(split: str) -> None:
    """Wrongly superseding hides a true fact: a rule change may cost recall, never this floor."""
    rows = [r for r in ROWS if split == "all" or r["split"] == split]
    precision, recall = _precision_recall(rows)
    assert precision >= 0.95, f"precision {precision:.3f} on {split}"
    assert recall >= 0.7, f"recall {recall:.3f} on {split}"


@pytest.mark.parametrize(
    ("old", "new", "was", "now"),
    [
        ("The staging database listens on 6543", "The staging database listens on 6544", "6543", "6544"),
        ("This project needs Node 18", "This project needs Node 20", "18", "20"),
        ("Pin fastapi to 0.110.0", "Pin fastapi to 0.115.2", "0.110.0", "0.115.2"),
        ("Tests run with jest", "Tests run with vitest", "jest", "vitest"),
        ("Deploy with `make release`", "Deploy with `make ship`", "`make release`", "`make ship`"),
        ("Deploy with make release", "Deploy with make ship", "release", "ship"),
        ("The app reads APP_CONFIG", "The app reads CLARITY_CONFIG", "APP_CONFIG", "CLARITY_CONFIG"),
    ],
)
def test_a_new_value_for_the_same_thing_supersedes(old: str, new: str, was: str, now: str) -> None:
    assert supersedes(new, old) == Verdict(was, now, "value")


@pytest.mark.parametrize(
    ("old", "new", "was", "now"),
    [
        ("We use npm", "We switched from npm to pnpm", "npm", "pnpm"),
        (
            "The frontend is built with webpack",
            "We replaced webpack with vite for the frontend build",
            "webpack",
            "vite",
        ),
        ("We lint with flake8", "We lint with ruff instead of flake8", "flake8", "ruff"),
        ("The worker uses Celery", "The worker no longer uses Celery", "celery", ""),
    ],
)
def test_an_explicit_change_supersedes(old: str, new: str, was: str, now: str) -> None:
    assert supersedes(new, old) == Verdict(was, now, "change")


def test_a_negation_alone_supersedes_both_ways() -> None:
    assert supersedes("Don't use the shared cache in tests", "Use the shared cache in tests") is not None
    assert supersedes("Use the shared cache in tests", "Do not use the shared cache in tests") is not None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # another subject: environment, component, service, or a value in subject position
        ("The staging database listens on 6543", "The production database listens on 6544"),
        ("The staging bucket is acme-staging-assets", "The staging bucket is acme-prod-assets"),
        ("The frontend uses npm", "We switched the backend from npm to pnpm"),
        ("auth-service listens on 8080", "billing-service listens on 8080"),
        ("Tests in tests/unit run with pytest", "Tests in tests/e2e run with pytest"),
        ("Redis runs on 6379", "Postgres runs on 5432"),
        ("The API listens on 8080", "The metrics endpoint listens on 9090"),
        ("The billing service is written in Go", "We moved the auth service from Go to Rust"),
        # both true: additions, lists, refinements, restatements, prose
        ("We use Postgres", "We use Postgres and Redis"),
        ("Python 3.12 is required", "Python 3.12 is required; 3.13 also works"),
        ("This project needs Node 20", "This project needs Node 20.11"),
        ("Retry failed requests 3 times", "Retry failed requests 3 times with exponential backoff"),
        ("The staging database listens on 6543", "The staging database listens on 6543"),
        ("We switched from npm to pnpm", "We use pnpm"),
        ("Prefer small pull requests", "Prefer focused pull requests"),
        (
            "This project is built or tested with `pytest`",
            "This project is built or tested with `ruff check .`",
        ),
        ("We use npm", "We do use npm"),
        # a number that says which one: another item, not a new value (these hid notes from
        # every list once the check ran on each store)
        ("Scratch note 0 about the deploy", "Scratch note 1 about the deploy"),
        ("concurrent write 72", "concurrent write 73"),
        ("Runbook step 3: drain the node", "Runbook step 4: drain the node"),
    ],
)
def test_refused(old: str, new: str) -> None:
    assert supersedes(new, old) is None


def test_only_statements_supersede_and_only_close_neighbours_are_checked() -> None:
    assert eligible(MemoryType.fact, MemoryType.preference)
    assert not eligible(MemoryType.fact, MemoryType.fix)
    assert not eligible(MemoryType.summary, MemoryType.fact)
    # the commands hooks learn are a list of what ran, not values of one thing
    assert not eligible(MemoryType.command, MemoryType.command, Source.hook, Source.hook)
    assert eligible(MemoryType.command, MemoryType.command, Source.manual, Source.hook)
    neighbours = [("a", 0.55), ("b", 0.91), ("c", 0.62), ("d", 0.7), ("e", 0.8)]
    assert candidates(neighbours) == ["b", "e", "d"]
    assert candidates(neighbours, limit=1) == ["b"]
