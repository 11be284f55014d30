"""Where "nothing relevant" starts: the cosine cut below which a memory is not injected, calibrated.

    .venv/bin/python scripts/bench/relevance.py [--quick] [--datasets locomo,longmemeval] [--cache DIR] [--out DIR]

The hooks inject a memory only when its cosine with the prompt reaches ``hooks.min_similarity``
(or it names an identifier of the prompt), and ``retrieve_memory`` says "nothing relevant" below
the same cut. This script chooses that cut on both dev splits (``datasets.py`` builds the cases,
as each split's README defines them):

- an *answer-present* prompt is a question asked of its own memories (its LoCoMo conversation,
  its LongMemEval haystack); an *answer-absent* prompt is the same question asked of memories
  that do not hold its answer (every other LoCoMo conversation; every other LongMemEval haystack
  of the same fold that shares none of its answer sessions).
- a cut gates as the prompt hook does: of the ``CANDIDATES`` best-ranked memories it injects the
  first ``MAX_INJECTED`` whose signal reaches the cut. The ranking here is the dense one (the
  hook's is the fused one, whose top 10 holds the dense top few), the same for every signal, so
  a signal changes only what is let through, never the order.
- for each cut: **silent** = the share of answer-absent prompts that get nothing; **precision** =
  injected memories that are evidence over all injected, on answer-present prompts; **kept** =
  the share of answer-present prompts that still get at least one evidence memory injected.
- the issue's rule: the cut keeps silent >= 0.9 (precision of what is injected for prompts
  whose answer is absent) with the most evidence kept, i.e. the lowest such cut. It is chosen on
  the training folds and reported on the held-out fold (LoCoMo: leave one conversation out, a
  held-out fold being its questions asked of their own and of every other conversation;
  LongMemEval: five folds by a hash of the question id), as mean, spread and the lowest fold.
- and, for the answer-present prompts a cut silences, how often the ``WEAK_SHOWN`` closest
  memories (what ``retrieve_memory`` still lists as weak under "nothing relevant") hold evidence.

``hooks.min_similarity`` is the lowest cut that meets the rule on both sets (docs/benchmarks.md).

A second signal is measured beside the cosine: cosine + w * the share of the prompt's content
words found in the memory's text after its "[date] speaker:" prefix (the lexical side,
scale-free; LoCoMo questions name their speakers), for each w of ``LEXICAL_WEIGHTS``.
Last, a few Claude Code prompts, related and unrelated, are scored against a realistic project
memory set (the one ``mcp_results.py`` imports). Embeddings (the project's provider, ONNX, the
bundled all-MiniLM-L6-v2) are cached per text under ``--cache``.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE_DIR, LOCOMO_DIR, embedder, machine, parser, progress, write_results
from datasets import LONGMEMEVAL_DIR, Case, Question, locomo_cases, longmemeval_cases
from mcp_results import QUERIES, project_memories
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from clarity.mcp.results import WEAK_SHOWN
from clarity.redact import redact

MAX_INJECTED = 5  # hooks.max_memories' default
CANDIDATES = 2 * MAX_INJECTED  # what the prompt hook asks the search for
TARGET_SILENT = 0.9
CUTS = [round(0.10 + 0.01 * i, 2) for i in range(91)]  # 0.10 .. 1.00
LEXICAL_WEIGHTS = (0.1, 0.2, 0.3)
CHUNK = 256
# Prompts a Claude Code user types that no memory of a web shop's project answers...
UNRELATED = [
    "what is the capital of France",
    "write a haiku about autumn",
    "explain the difference between TCP and UDP",
    "fix the failing test in parser.py",
    "rename the variable foo to bar in utils.py",
    "hello",
    "zxqv glorp frobnicate",
    "summarise this article for me",
]
RELATED = [  # ...and prompts that some of them answer
    *QUERIES,
    "how do we ship a release",
    "why is the lockfile out of date",
    "add a test for the billing migration",
    "what did we decide about postgres",
    "deploy to staging",
]


@dataclass
class Prompt:
    fold: str
    present: bool
    sims: np.ndarray  # cosine with every memory of the scope asked
    coverage: np.ndarray  # share of the prompt's content words in each memory
    evidence: np.ndarray  # bool per memory

    def ranked(self) -> np.ndarray:
        """The candidates the hook would gate, best first."""
        return np.argsort(-self.sims)[:CANDIDATES]

    def signal(self, weight: float) -> np.ndarray:
        return self.sims + weight * self.coverage if weight else self.sims


# "[date] Speaker: " before each turn: a LoCoMo question names its speakers, so counting that
# prefix would reward the conversation for its names (a speaker boost, which does not carry over).
_SPEAKER = re.compile(r"^\[[^\]]*\] [^:]{1,40}: ")


def _words(text: str) -> set[str]:
    return {
        w for w in re.findall(r"[a-z0-9]+", text.casefold()) if len(w) > 2 and w not in ENGLISH_STOP_WORDS
    }


class Embeddings:
    """Vectors by a hash of their text, saved after every chunk so an interrupted run resumes."""

    def __init__(self, directory: Path, console: Console) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "relevance-embeddings.npz"
        self.console = console
        self.rows: dict[str, np.ndarray] = {}
        if self.path.exists():
            saved = np.load(self.path)
            self.rows = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
        self.provider: Any = None

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def _save(self) -> None:
        keys = list(self.rows)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.asarray(keys), vectors=np.stack([self.rows[k] for k in keys]))
        tmp.replace(self.path)

    def fill(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if self.key(t) not in self.rows))
        if not missing:
            return
        self.provider = self.provider or embedder()
        with progress(self.console) as bar:
            task = bar.add_task(f"embedding {len(missing)} texts", total=len(missing))
            for start in range(0, len(missing), CHUNK):
                batch = missing[start : start + CHUNK]
                vectors = np.asarray(self.provider.embed_documents(batch), dtype=np.float32)
                self.rows.update(zip((self.key(t) for t in batch), vectors, strict=True))
                self._save()
                bar.advance(task, len(batch))

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.rows[self.key(t)] for t in texts])


def _prompt(
    fold: str, present: bool, question: Question, q_vec: np.ndarray, case: Case, memories: np.ndarray
) -> Prompt:
    words = _words(question.text)
    coverage = np.asarray(
        [len(words & _words(_SPEAKER.sub("", t.text))) / len(words) if words else 0.0 for t in case.turns],
        dtype=np.float32,
    )
    evidence = np.asarray([present and t.key in question.evidence for t in case.turns])
    return Prompt(fold, present, memories @ q_vec, coverage, evidence)


def build(cases: list[Case], store: Embeddings) -> list[Prompt]:
    """Every question of ``cases``, asked of its own memories and of memories without its answer.
    A memory's vector is its redacted text's, as the service stores it."""
    stored = {c.name: [redact(t.text) for t in c.turns] for c in cases}
    store.fill([t for texts in stored.values() for t in texts] + [q.text for c in cases for q in c.questions])
    vectors = {name: store.matrix(texts) for name, texts in stored.items()}
    prompts = []
    by_fold: dict[str, list[Case]] = {}
    for case in cases:
        by_fold.setdefault(case.fold, []).append(case)
    for case in cases:
        if case.dataset == "locomo":
            others = [c for c in cases if c is not case]
        else:  # every other haystack of the fold holding none of this question's answer sessions
            sessions = set().union(*(q.sessions for q in case.questions))
            others = [
                c for c in by_fold[case.fold] if c is not case and not sessions & {t.session for t in c.turns}
            ]
        for question in case.questions:
            q_vec = store.matrix([question.text])[0]
            prompts.append(_prompt(case.fold, True, question, q_vec, case, vectors[case.name]))
            prompts.extend(_prompt(case.fold, False, question, q_vec, o, vectors[o.name]) for o in others)
    return prompts


def measure(prompts: Sequence[Prompt], cut: float, weight: float = 0.0) -> dict[str, float]:
    """silent, precision and kept (see the module's docstring) for one cut on one signal."""
    silent = absent = injected = hits = kept = present = quiet_present = weak_found = 0
    for p in prompts:
        ranked = p.ranked()
        chosen = ranked[p.signal(weight)[ranked] >= cut][:MAX_INJECTED]
        if p.present:
            present += 1
            injected += len(chosen)
            found = int(p.evidence[chosen].sum())
            hits += found
            kept += found > 0
            if not len(chosen):  # would the closest few, shown as weak matches, have held the answer?
                quiet_present += 1
                weak_found += bool(p.evidence[ranked[:WEAK_SHOWN]].any())
        else:
            absent += 1
            silent += len(chosen) == 0
    return {
        "silent": silent / max(1, absent),
        "precision": hits / injected if injected else 1.0,
        "kept": kept / max(1, present),
        "injected_per_present": injected / max(1, present),
        "present_silenced": quiet_present / max(1, present),
        "weak_hold_evidence": weak_found / max(1, quiet_present),
    }


def choose(prompts: Sequence[Prompt], weight: float = 0.0) -> float:
    """The lowest cut (the most evidence kept) at which TARGET_SILENT of absent prompts get nothing."""
    best = np.asarray([p.signal(weight)[p.ranked()].max(initial=-1.0) for p in prompts if not p.present])
    # silent(cut) is the share of absent prompts whose best signal is under the cut.
    return next((cut for cut in CUTS if (best < cut).mean() >= TARGET_SILENT), CUTS[-1])


def cross_validate(prompts: list[Prompt], weight: float = 0.0) -> list[dict[str, Any]]:
    folds = sorted({p.fold for p in prompts})
    rows = []
    for fold in folds:
        train = [p for p in prompts if p.fold != fold]
        test = [p for p in prompts if p.fold == fold]
        cut = choose(train, weight)
        rows.append({"fold": fold, "cut": cut, **measure(test, cut, weight)})
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("cut", "silent", "precision", "kept"):
        values = [r[key] for r in rows]
        out[key] = {
            "mean": round(statistics.fmean(values), 3),
            "std": round(statistics.pstdev(values), 3),
            "min": round(min(values), 3),
        }
    return out


def realistic(store: Embeddings) -> list[dict[str, Any]]:
    """The best cosine of Claude Code-like prompts over a realistic project's memories."""
    memories = [record["content"] for record in project_memories("project")]
    store.fill(memories + UNRELATED + list(RELATED))
    matrix = store.matrix(memories)
    rows = []
    for related, prompts in ((False, UNRELATED), (True, RELATED)):
        for prompt in prompts:
            sims = matrix @ store.matrix([prompt])[0]
            rows.append({"prompt": prompt, "related": related, "best": round(float(sims.max()), 3)})
    return rows


def _table(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in table_columns():
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(row[c]) if c in ("fold", "cut") else f"{row[c]:.3f}" for c in table_columns()))
    console.print(table)


def table_columns() -> tuple[str, ...]:
    return (
        "fold",
        "cut",
        "silent",
        "precision",
        "kept",
        "injected_per_present",
        "present_silenced",
        "weak_hold_evidence",
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cache", type=Path, default=CACHE_DIR, help="where embeddings are kept")
    p.add_argument("--datasets", default="locomo,longmemeval", help="which dev sets, comma-separated")
    args = p.parse_args()
    console = Console(stderr=True)
    info = machine()
    store = Embeddings(args.cache, console)
    sets = {
        "locomo": locomo_cases(LOCOMO_DIR, args.quick),
        "longmemeval": longmemeval_cases(LONGMEMEVAL_DIR, args.quick),
    }
    if args.quick:  # two conversations, so that leave-one-out has a training fold
        sets["locomo"] = locomo_cases(LOCOMO_DIR)[:2]
        for case in sets["locomo"]:
            case.questions = case.questions[:40]
    results: dict[str, Any] = {}
    for name, cases in sets.items():
        if name not in args.datasets.split(","):
            continue
        prompts = build(cases, store)
        curve = [{"cut": cut, **measure(prompts, cut)} for cut in CUTS[::5]]
        cosine = cross_validate(prompts)
        combined = {w: cross_validate(prompts, w) for w in LEXICAL_WEIGHTS}
        results[name] = {
            "prompts": {
                "present": sum(p.present for p in prompts),
                "absent": sum(not p.present for p in prompts),
            },
            "curve_all_folds": curve,
            "cosine": {"folds": cosine, "summary": _summary(cosine)},
            "cosine_plus_coverage": {
                str(w): {"folds": rows, "summary": _summary(rows)} for w, rows in combined.items()
            },
            "cut_on_all_folds": choose(prompts),
        }
        _table(console, f"{name}: cosine cut, chosen on the other folds", cosine)
        console.print(f"{name} summary: {_summary(cosine)}; on all folds: {choose(prompts)}")
        for w, rows in combined.items():
            console.print(f"{name} cosine + {w} x coverage: {_summary(rows)}")
        curve_table = Table(title=f"{name}: every fold pooled")
        for column in table_columns()[1:]:
            curve_table.add_column(column, justify="right")
        for row in curve:
            curve_table.add_row(
                *(f"{row[c]:.3f}" if c != "cut" else str(row[c]) for c in table_columns()[1:])
            )
        console.print(curve_table)
    results["realistic"] = realistic(store)
    for row in results["realistic"]:
        console.print(f"{'related  ' if row['related'] else 'unrelated'} {row['best']:.3f}  {row['prompt']}")
    load = round(os.getloadavg()[0], 2)
    console.print(f"1-minute load: {load}")
    write_results(args.out, "relevance", {"machine": info, "load_at_end": load, **results}, None)


if __name__ == "__main__":
    main()
