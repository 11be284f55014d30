"""The two retrieval dev sets as cases: memories to store in a scope of their own, questions to ask.

LoCoMo (``../shared/bench/locomo-dev``): one case per conversation, which is also its fold (leave
one conversation out). LongMemEval (``../shared/bench/longmemeval-dev``): one case per question,
each with its own haystack, in five folds by a fixed hash of the question id. Both READMEs define
the memory text (role or speaker and the session date before the turn) and the metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import ROOT

LONGMEMEVAL_DIR = Path(
    os.environ.get("LONGMEMEVAL_DEV_DIR") or ROOT.parent / "shared" / "bench" / "longmemeval-dev"
)
LOCOMO_CATEGORIES = (1, 2, 3, 4)
LONGMEMEVAL_FOLDS = 5
MAX_TURN_CHARS = 20_000  # MemoryCreate's content limit; a few assistant turns are longer


@dataclass
class Turn:
    key: str  # dia_id (LoCoMo) or <session id>:<index> (LongMemEval)
    text: str
    session: str


@dataclass
class Question:
    text: str
    category: str
    evidence: set[str]  # turn keys
    sessions: set[str] = field(default_factory=set)  # answer sessions (LongMemEval)


@dataclass
class Case:
    dataset: str
    name: str
    fold: str
    scope: str
    turns: list[Turn]
    questions: list[Question]


def locomo_cases(directory: Path, quick: bool = False) -> list[Case]:
    files = sorted(directory.glob("*.json"))
    if quick:  # the smallest conversation, its first 40 questions
        files = [min(files, key=lambda f: f.stat().st_size)] if files else []
    cases = []
    for path in files:
        conversation = json.loads(path.read_text(encoding="utf-8"))
        turns = []
        session = 1
        while f"session_{session}" in conversation:
            date = conversation.get(f"session_{session}_date_time", "")
            for turn in conversation[f"session_{session}"]:
                text = turn["text"]
                if turn.get("blip_caption"):
                    text += f" [shares a photo: {turn['blip_caption']}]"
                turns.append(
                    Turn(turn["dia_id"], f"[{date}] {turn['speaker']}: {text}", f"session_{session}")
                )
            session += 1
        questions = [
            Question(q["question"][:4000], str(q["category"]), set(q["evidence"]))
            for q in conversation["qa"]
            if q.get("category") in LOCOMO_CATEGORIES and q.get("evidence")
        ]
        if quick:
            questions = questions[:40]
        cases.append(Case("locomo", path.stem, path.stem, f"locomo-{path.stem}", turns, questions))
    return cases


def longmemeval_fold(question_id: str) -> str:
    return str(int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % LONGMEMEVAL_FOLDS)


def longmemeval_cases(directory: Path, quick: bool = False) -> list[Case]:
    path = directory / "longmemeval_s_dev50.jsonl"
    if not path.exists():
        return []
    cases = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines: U+2028 sits in texts
        if not line.strip():
            continue
        item: dict[str, Any] = json.loads(line)
        turns, evidence = [], set()
        for session_id, date, session in zip(
            item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"], strict=True
        ):
            for index, turn in enumerate(session):
                key = f"{session_id}:{index}"
                text = f"[{date}] {turn['role']}: {turn['content']}"[:MAX_TURN_CHARS]
                turns.append(Turn(key, text, session_id))
                if turn.get("has_answer"):
                    evidence.add(key)
        question = Question(
            item["question"][:4000],
            item["question_type"],
            evidence,
            set(item["answer_session_ids"]),
        )
        qid = item["question_id"]
        scope = "lme-" + re.sub(r"[^a-z0-9.-]", "-", qid.lower())[:120]
        cases.append(Case("longmemeval", qid, longmemeval_fold(qid), scope, turns, [question]))
    if quick:
        cases = sorted(cases, key=lambda c: len(c.turns))[:2]
    return cases
