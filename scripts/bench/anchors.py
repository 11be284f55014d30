"""What re-checking anchors costs: ``clarity.memory.anchors.check`` on ten anchors over this
repository's own files, the budget being 2 ms p50 added to the prompt hook with ten anchored
candidates.

    .venv/bin/python scripts/bench/anchors.py [--repeat 300] [--out results.json]

The ten anchors sit on the ten largest modules of ``clarity/`` (the worst case for a read), a
symbol block, a 20-line range or the whole file in turn. The checkout is only read: each case is
made by altering the anchor, not the file, so that ``check`` takes the path the case names:

- unchanged: size and mtime as captured (one ``stat``, nothing read);
- touched-but-same: another mtime (the file is read and hashed, the text matches);
- changed: another mtime and another text hash (read, hashed, looked for elsewhere, sketched);
- moved: the range or symbol recorded 7 lines off (read, found elsewhere in the file);
- gone: a path that does not exist (one failed ``stat``, no rename hint);
- renamed: a missing path the rename map sends to the real file (stat, read, hash).

Prints p50 and p99 per check and per batch of ten on a first read (the cache of file states
cleared before each), and per batch of ten again (a state read before, same file: a ``stat``
and a lookup), the cost of capture, of reading the commit
from ``.git`` against running ``git rev-parse HEAD``, and of one ``rename_map`` git run, with the
1-minute load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from clarity.memory.anchor_repo import head_commit, rename_map  # noqa: E402
from clarity.memory.anchor_text import find_symbol, split_lines  # noqa: E402
from clarity.memory.anchors import Anchor, capture, check, clear_check_cache  # noqa: E402

CASES = ("unchanged", "touched-but-same", "changed", "moved", "gone", "renamed")


def anchors(count: int = 10) -> list[Anchor]:
    """Ten anchors on the largest modules, a symbol, 20 lines or the whole file in turn."""
    files = sorted((ROOT / "clarity").rglob("*.py"), key=lambda p: -p.stat().st_size)[:count]
    made = []
    for i, file in enumerate(files):
        relative = file.relative_to(ROOT).as_posix()
        lines = split_lines(file.read_text(encoding="utf-8"))
        middle = len(lines) // 2
        anchor = None
        if i % 3 == 0:
            name = next((n for n in _names(lines[middle:]) if find_symbol(lines, n) is not None), None)
            anchor = capture(ROOT, relative, symbol=name) if name else None
        elif i % 3 == 1:
            anchor = capture(ROOT, relative, (middle, middle + 19))
        anchor = anchor or capture(ROOT, relative)
        if anchor is None:
            raise SystemExit(f"{relative}: could not be anchored")
        made.append(anchor)
    return made


def _names(lines: list[str]) -> list[str]:
    return [line.split("def ", 1)[1].split("(", 1)[0] for line in lines if line.lstrip().startswith("def ")]


def variant(anchor: Anchor, case: str) -> tuple[Anchor, dict[str, Any]]:
    """The anchor altered so that ``check`` takes ``case``'s path, and check's keyword arguments."""
    if case == "unchanged":
        return anchor, {}
    stale = {"mtime_ns": anchor.mtime_ns - 1}
    if case == "touched-but-same":
        return anchor.model_copy(update=stale), {}
    if case == "changed":
        return anchor.model_copy(update=stale | {"text_hash": "0" * 32}), {}
    if case == "moved":
        if anchor.start is None or anchor.end is None:  # a whole file cannot move within itself
            return anchor.model_copy(update=stale), {}
        return anchor.model_copy(update=stale | {"start": anchor.start + 7, "end": anchor.end + 7}), {}
    missing = anchor.path.replace(".py", "_old.py")
    if case == "gone":
        return anchor.model_copy(update={"path": missing}), {}
    return anchor.model_copy(update={"path": missing}), {"renames": {missing: anchor.path}}


def timed(call: Callable[[], object], repeat: int, before: Callable[[], None] | None = None) -> list[float]:
    """``repeat`` timings of ``call`` in microseconds, sorted; ``before`` runs untimed before each."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
    return sorted(times)


def pct(times: list[float], share: float) -> float:
    return times[int(share * (len(times) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=300, help="batches of ten checks per case")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    base = anchors()
    kinds = ", ".join("symbol" if a.symbol else "lines" if a.start else "file" for a in base)
    print(f"10 anchors on the largest modules ({kinds}); {args.repeat} batches per case")
    results: dict[str, Any] = {"cases": {}}
    print(
        f"{'case':<17} {'state':<16} {'p50/check':>9} {'p99/check':>9} {'p50/10':>8} {'p99/10':>8}"
        f" {'again p50/10':>12} {'again p99/10':>12}   (µs)"
    )
    for case in CASES:
        prepared = [variant(anchor, case) for anchor in base]
        clear_check_cache()
        states = sorted({check(ROOT, a, **kw).state for a, kw in prepared})
        per_check: list[float] = []
        for anchor, kwargs in prepared:
            per_check += timed(
                lambda a=anchor, kw=kwargs: check(ROOT, a, **kw), args.repeat, clear_check_cache
            )
        per_check.sort()
        batch = timed(
            lambda p=prepared: [check(ROOT, a, **kw) for a, kw in p], args.repeat, clear_check_cache
        )
        again = timed(lambda p=prepared: [check(ROOT, a, **kw) for a, kw in p], args.repeat)
        figures = {
            "states": states,
            "check_p50_us": round(statistics.median(per_check), 1),
            "check_p99_us": round(pct(per_check, 0.99), 1),
            "ten_p50_us": round(statistics.median(batch), 1),
            "ten_p99_us": round(pct(batch, 0.99), 1),
            "ten_again_p50_us": round(statistics.median(again), 1),
            "ten_again_p99_us": round(pct(again, 0.99), 1),
        }
        results["cases"][case] = figures
        print(
            f"{case:<17} {'/'.join(states):<16} {figures['check_p50_us']:>9} {figures['check_p99_us']:>9}"
            f" {figures['ten_p50_us']:>8} {figures['ten_p99_us']:>8}"
            f" {figures['ten_again_p50_us']:>12} {figures['ten_again_p99_us']:>12}"
        )
    relative = [(a.path, (a.start, a.end) if a.start and not a.symbol else None, a.symbol) for a in base]
    captures = timed(lambda: [capture(ROOT, p, r, s) for p, r, s in relative], max(10, args.repeat // 10))
    reads = timed(lambda: head_commit(ROOT), 200)
    runs = timed(
        lambda: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True), 20
    )
    commit = head_commit(ROOT) or ""
    renames = timed(lambda: rename_map(ROOT, commit), 10)
    results["capture_ten_p50_us"] = round(statistics.median(captures), 1)
    results["head_from_git_dir_p50_us"] = round(statistics.median(reads), 1)
    results["git_rev_parse_p50_us"] = round(statistics.median(runs), 1)
    results["rename_map_p50_us"] = round(statistics.median(renames), 1)
    results["load_1m"] = round(os.getloadavg()[0], 2)
    print(
        f"capture of the ten: p50 {results['capture_ten_p50_us']} µs; commit read from .git: p50 "
        f"{results['head_from_git_dir_p50_us']} µs, `git rev-parse HEAD`: p50 {results['git_rev_parse_p50_us']} µs; "
        f"rename_map (git diff -M): p50 {results['rename_map_p50_us']} µs; load {results['load_1m']}"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
