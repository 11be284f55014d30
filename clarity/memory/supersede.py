"""Whether a new memory states a new value for the same thing an older one states.

"The staging database listens on 6544" after "... on 6543", "we switched from npm to pnpm" after
"we use npm": the older memory is then out of date. Wrongly superseding hides a true fact, which
is worse than keeping two that contradict each other, so every rule here refuses when in doubt
(precision >= 0.95 is the bar, on the labelled pairs in tests/fixtures/supersede/pairs.jsonl,
measured by scripts/bench/supersede.py). No model: token alignment and small vocabularies, a
few microseconds a pair, so the caller can check the near neighbours a retrieval already found.

Two ways to supersede:
- an explicit change in the new text ("switched/moved/migrated from X to Y", "replaced X with Y",
  "Y instead of X", "no longer ... X") whose old value X the older text states, about the same
  subject (the older text's content words are in the new one);
- the two texts align token by token and differ only in values of one type (numbers, versions,
  paths, identifiers, code spans, named tools of one category), or in a negation alone.

Refused: any word inserted or deleted (additions, "also", lists, refinements: a separate list
of addition words caught nothing more when measured), prose that differs, a differing qualifier
(staging vs production, frontend vs backend: another subject, not a new value), two changed
values, a changed value followed by an unchanged one (``auth-service listens on 8080`` vs
``billing-service listens on 8080``: the changed one names the subject), and a version that only
refines the other (20 -> 20.11).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from clarity.models import MemoryType, Source

# Kinds that state something which can stop being true; errors, fixes, observations and
# summaries record what happened, which a later event does not undo.
SUPERSEDABLE: frozenset[MemoryType] = frozenset(
    {MemoryType.fact, MemoryType.preference, MemoryType.decision, MemoryType.command, MemoryType.note}
)
# The candidate step: the near neighbours a retrieval found, above this cosine, best first.
MIN_COSINE = 0.6
MAX_CANDIDATES = 3


@dataclass(frozen=True)
class Verdict:
    """Why the new text supersedes the old: the value it had, the value it has now, the rule."""

    old_value: str
    new_value: str
    rule: str  # "change" (explicit phrasing), "value" (aligned, a value differs), "negation"


def eligible(
    new_kind: MemoryType,
    old_kind: MemoryType,
    new_source: Source | None = None,
    old_source: Source | None = None,
) -> bool:
    """Only a statement supersedes a statement (a fact may replace a note, not a fix). The build
    and test commands the hooks learn ("built or tested with `pytest -q`", then `pytest -x`) are
    a list of what ran: one never replaces another."""
    learned = (MemoryType.command, Source.hook)
    if (new_kind, new_source) == learned and (old_kind, old_source) == learned:
        return False
    return new_kind in SUPERSEDABLE and old_kind in SUPERSEDABLE


def candidates(neighbours: list[tuple[str, float]], limit: int = MAX_CANDIDATES) -> list[str]:
    """The ids worth a ``supersedes`` check among (id, cosine) neighbours of the same scope: the
    few closest above ``MIN_COSINE``; a pair that far apart does not share a subject."""
    close = sorted((n for n in neighbours if n[1] >= MIN_COSINE), key=lambda n: -n[1])
    return [memory_id for memory_id, _ in close[:limit]]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TOOLS = {
    "package manager": "npm pnpm yarn bun pip pipenv poetry uv pdm conda cargo bundler composer",
    "runtime": "node nodejs deno python python3 pypy ruby java jdk golang rust php dotnet",
    "database": "postgres postgresql mysql mariadb sqlite sqlite3 mongodb mongo redis valkey "
    "memcached dynamodb cassandra elasticsearch opensearch clickhouse cockroachdb qdrant",
    "ci": "travis jenkins circleci buildkite drone teamcity gitlab-ci actions",
    "test runner": "pytest unittest nose jest vitest mocha jasmine ava playwright cypress rspec "
    "minitest junit phpunit",
    "linter": "eslint prettier biome ruff black flake8 pylint isort mypy pyright rubocop rustfmt "
    "clippy gofmt golangci-lint stylelint tslint",
    "build": "webpack vite rollup esbuild parcel turbopack tsup swc babel make cmake bazel ninja "
    "just gradle maven mkdocs",
    "framework": "react vue svelte angular next nextjs nuxt remix express fastify koa nestjs "
    "django flask fastapi rails sinatra spring laravel",
    "hosting": "heroku vercel netlify fly render railway cloudflare aws gcp azure",
    "container": "docker podman kubernetes k8s nomad helm kustomize",
    "orm": "prisma drizzle typeorm sequelize sqlalchemy knex peewee",
    "queue": "rabbitmq kafka sqs celery rq sidekiq bullmq nats dramatiq",
    "state": "redux zustand mobx recoil jotai pinia vuex",
    "http": "axios requests httpx aiohttp urllib3 got",
}
TOOL_CATEGORY: dict[str, str] = {
    tool: category for category, names in _TOOLS.items() for tool in names.split()
}
# Words that name *which* thing: differing, they make another subject, not a new value.
QUALIFIERS = _words(
    "staging stage production prod development dev local test testing qa uat preview sandbox "
    "canary beta frontend backend client server web mobile ios android macos linux windows unit "
    "integration e2e primary replica public internal external private admin legacy"
)
# Words whose presence in one text only says nothing about the value.
FILLER = _words(
    "a an the now currently actually still always should must please by default instead "
    "from then to we our is are"
)
NEGATIONS = _words("not no never don't doesn't didn't isn't aren't won't can't cannot shouldn't stopped")
_AUXILIARIES = frozenset({"do", "does", "longer"})  # go with a negation ("do not", "no longer")
# A bare whole number is a value only after one of these ("port 6544", "every 5 minutes", "node
# 20"); after anything else it says which one ("note 3", "step 2", "write 73"): another item.
NUMBER_SLOTS = _words(
    "port ports on at version versions api node python java go ruby every in requests set timeout "
    "timeouts limit limits retries workers threads replicas ttl size max min pool memory after"
)
# A plain word is a value when it follows one of these (`make ship`, "branch is main").
VALUE_SLOTS = _words(
    "make just npm pnpm yarn run task branch target named called level mode profile image tag "
    "region channel strategy"
)
# Content words too general to tell two subjects apart.
GENERIC = FILLER | _words(
    "use uses used using it its this that these for of in on at with be was were has have had "
    "run runs lives live go goes set sets via into"
)

_IRREGULAR = {"built": "build", "ran": "run", "went": "go", "wrote": "write", "written": "write"}
_TLD_DEV = re.compile(r"\.dev\b")
_TOKEN = re.compile(
    r"`[^`]+`|\[REDACTED:[^\]]*\]|\"[^\"]+\"|https?://\S+?(?=[,;)]?(?:\s|$))"
    r"|[\w$@~/+%-]+(?:['.:=][\w$@~/+%-]+)*"
)
_NUMBER = re.compile(r"^v?\d+(?:\.\d+)*(?:[a-z%]{1,3}|\.x|\+)?$|^\d{1,2}:\d{2}$", re.IGNORECASE)
_IDENT = re.compile(r"[/_.:$@=]|\d|^--?\w|^[A-Z]{4,}$|[a-z][A-Z]|\w-\w")
_CHANGES = (
    # (pattern on the lowered new text with groups "old" and maybe "new", whether it has "new")
    (
        re.compile(
            r"\b(?:switch|mov|migrat|chang|went|upgrad|downgrad|bump|ported|convert)\w*\b"
            r"(?P<subject>.*?)\bfrom (?P<old>.+?) to (?P<new>[^,;.]+(?:\.\w[^,;\s]*)?)"
        ),
        True,
    ),
    (re.compile(r"\breplaced (?P<old>.+?) with (?P<new>[^,;]+?)(?= for\b|[,;.]?$|[,;] )"), True),
    (re.compile(r"\b(?P<new>\S+) instead of (?P<old>[^,;.]+)"), True),
    (re.compile(r"\bno longer \w+ (?P<old>[^,;.]+)"), False),
)


def _kind(token: str) -> str:
    """A token's value type: num, tool:<category>, secret, code, ident, or word (not a value)."""
    if token.startswith("`") or token.startswith('"'):
        inner = token.strip('`"')
        return _kind(inner) if " " not in inner.strip() else "code"
    if token.startswith("[REDACTED"):
        return "secret"
    lower = token.lower()
    if lower in TOOL_CATEGORY:
        return "tool:" + TOOL_CATEGORY[lower]
    if _NUMBER.match(token):
        return "num"
    if _IDENT.search(token):
        return "ident"
    return "word"


def _same_type(a: str, b: str) -> bool:
    if a == b:
        return a != "word"
    loose = {"code", "ident"}  # `make ship` vs make-ship, a path in backticks vs one without
    return (a in loose or a.startswith("tool")) and (b in loose or b.startswith("tool"))


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _norm(token: str) -> str:
    lower = token.lower().strip("`\"'")
    lower = _IRREGULAR.get(lower, lower)
    if lower in TOOL_CATEGORY:
        return lower  # "postgres" is a name, not a plural
    if lower.endswith("s") and len(lower) > 4 and not lower.endswith("ss") and lower.isalpha():
        return lower[:-1]
    return lower


def _refines(old: str, new: str) -> bool:
    """20 -> 20.11, 3.11 -> 3.11.4: the new version narrows the old one, both stay true."""
    a, b = old.lower().lstrip("v").rstrip("+"), new.lower().lstrip("v").rstrip("+")
    return b.startswith(a + ".") or a.startswith(b + ".") or (a.endswith(".x") and b.startswith(a[:-1]))


def _content(tokens: list[str]) -> set[str]:
    return {_norm(t) for t in tokens} - GENERIC - NEGATIONS - _AUXILIARIES


def _qualifiers(tokens: list[str]) -> set[str]:
    """The qualifiers a text names, inside identifiers too (config/staging.yaml, acme-prod)."""
    # ".dev" ends host names (example.dev), it names no environment.
    parts = (re.split(r"[\W_]+", _TLD_DEV.sub("", t.lower())) for t in tokens)
    return {part for split in parts for part in split if part in QUALIFIERS}


def supersedes(new: str, old: str) -> Verdict | None:
    """A verdict when ``new`` states a new value for what ``old`` states, else None (the caller
    checks kinds with ``eligible`` and that both share a scope)."""
    new_tokens, old_tokens = _tokens(new), _tokens(old)
    if not new_tokens or not old_tokens or _qualifiers(new_tokens) != _qualifiers(old_tokens):
        return None
    return _explicit_change(new, new_tokens, old_tokens) or _aligned_change(new_tokens, old_tokens)


def _explicit_change(new: str, new_tokens: list[str], old_tokens: list[str]) -> Verdict | None:
    lowered = " ".join(new.lower().split())
    old_norm = [_norm(t) for t in old_tokens]
    for pattern, has_new in _CHANGES:
        found = pattern.search(lowered)
        if found is None:
            continue
        was = [_norm(t) for t in _tokens(found.group("old"))][:4]
        now = [_norm(t) for t in _tokens(found.group("new"))][:4] if has_new else []
        if not was or not _contains(old_norm, was) or (now and _contains(old_norm, now)):
            continue
        if not _comparable(was, now):
            continue  # "from 8080 to nginx": not one thing's two values
        # The same subject: what the old text says besides its value is in the new text too.
        rest = _content(old_tokens) - set(was)
        missing = rest - _content(new_tokens)
        if len(missing) > (1 if len(rest) >= 4 else 0):
            continue
        extra = _content(new_tokens) - set(was) - _content(old_tokens)
        if not has_new and any(_kind(word) == "word" for word in extra):
            continue  # "no longer" about something the old text does not say
        return Verdict(" ".join(was), " ".join(now), "change")
    return None


def _comparable(was: list[str], now: list[str]) -> bool:
    """Values of one type, where both sides have a type (plain words have none)."""
    old_kinds = {_kind(t) for t in was} - {"word"}
    new_kinds = {_kind(t) for t in now} - {"word"}
    return not old_kinds or not new_kinds or any(_same_type(a, b) for a in old_kinds for b in new_kinds)


def _contains(tokens: list[str], part: list[str]) -> bool:
    return any(tokens[i : i + len(part)] == part for i in range(len(tokens) - len(part) + 1))


def _aligned_change(new_tokens: list[str], old_tokens: list[str]) -> Verdict | None:
    a, b = [_norm(t) for t in old_tokens], [_norm(t) for t in new_tokens]
    changes: list[tuple[str, str]] = []  # one allowed: two changed values are two subjects
    negated = False
    opcodes = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for index, (op, i1, i2, j1, j2) in enumerate(opcodes):
        if op == "equal":
            continue
        was = [t for t in a[i1:i2] if t not in FILLER]
        now = [t for t in b[j1:j2] if t not in FILLER]
        if not was and not now:
            continue
        words = was + now
        if all(t in NEGATIONS | _AUXILIARIES for t in words) and not set(words) <= _AUXILIARIES:
            # inserted on one side only: the statement turned over ("never" for "always" too)
            negated = negated != (not was or not now)
            continue
        if len(was) != 1 or len(now) != 1:
            return None  # words inserted, deleted, or a phrase rewritten
        old_raw = next(t for t in old_tokens[i1:i2] if _norm(t) == was[0])
        new_raw = next(t for t in new_tokens[j1:j2] if _norm(t) == now[0])
        if not _is_value_change(old_raw, new_raw, a[:i1]):
            return None
        # An unchanged value after the changed one: the changed one named the subject.
        later = [t for o, k1, k2, _, _ in opcodes[index + 1 :] if o == "equal" for t in old_tokens[k1:k2]]
        if any(_kind(t) != "word" for t in later):
            return None
        changes.append((old_raw, new_raw))
    if len(changes) == 1 and not negated:
        return Verdict(changes[0][0], changes[0][1], "value")
    if negated and not changes:
        return Verdict(" ".join(old_tokens), " ".join(new_tokens), "negation")
    return None


def _is_value_change(old: str, new: str, before: list[str]) -> bool:
    old_kind, new_kind = _kind(old), _kind(new)
    if old.lower() in QUALIFIERS or new.lower() in QUALIFIERS:
        return False
    if old_kind == new_kind == "word":
        return any(word in VALUE_SLOTS for word in [t for t in before if t not in FILLER][-3:])
    if old.isdigit() and new.isdigit():
        previous = [t for t in before if t not in FILLER][-1:]
        if not previous or previous[0].lower() not in NUMBER_SLOTS:
            return False
    if not _same_type(old_kind, new_kind):
        return False
    if "code" in (old_kind, new_kind) and not _same_program(old, new):
        return False  # `pytest` and `ruff check .`: two commands a project runs, both true
    return not (old_kind == "num" and _refines(old, new))


def _same_program(old: str, new: str) -> bool:
    a, b = old.strip('`"').split()[0].lower(), new.strip('`"').split()[0].lower()
    return a == b or (a in TOOL_CATEGORY and TOOL_CATEGORY[a] == TOOL_CATEGORY.get(b))
