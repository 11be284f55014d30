"""Anchors in a real git repository: captured on lines, a symbol or a whole file, and re-checked
as the code is edited, committed, moved, renamed and deleted; paths that must not be anchored;
specs that must be refused with the field and the limit named."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from clarity.memory import anchors
from clarity.memory.anchor_repo import AnchorRefused, head_commit, paths_in_text, rename_map
from clarity.memory.anchors import MAX_ANCHOR_BYTES, Anchor, capture, check, parse_anchor_spec

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
CART = """\
import json


def total(items):
    return sum(item.price for item in items)


@cached
def add_item(cart, item):
    cart.append(item)
    return cart


class Cart:
    def __init__(self):
        self.items = []

    def size(self):
        return len(self.items)
"""
HOUR_NS = 3_600_000_000_000


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with src/cart.py committed, its mtime an hour old (written long before the
    anchor, as code usually is: see ``age``)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "shop"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "src" / "cart.py").write_text(CART)
    (root / "src" / "cart.ts").write_text("export function addItem(cart, item) {\n  cart.push(item);\n}\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    age(root / "src" / "cart.py")
    return root


def age(path: Path, by_ns: int = HOUR_NS) -> None:
    """Set the file's mtime back, as if written ``by_ns`` ago."""
    mtime = path.stat().st_mtime_ns - by_ns
    os.utime(path, ns=(mtime, mtime))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# -- capture -------------------------------------------------------------------------------------


def test_capture_by_lines_symbol_and_whole_file(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    by_lines = capture(repo, "src/cart.py", (4, 5))
    assert by_lines is not None
    assert (by_lines.path, by_lines.start, by_lines.end, by_lines.commit) == ("src/cart.py", 4, 5, head)
    by_symbol = capture(repo, str(repo / "src" / "cart.py"), symbol="add_item")  # absolute, inside
    assert by_symbol is not None
    assert (by_symbol.path, by_symbol.start, by_symbol.end) == ("src/cart.py", 8, 11)  # decorator in
    method = capture(repo, "src/cart.py", symbol="size")
    assert method is not None and (method.start, method.end) == (18, 19)
    klass = capture(repo, "src/cart.py", symbol="Cart")
    assert klass is not None and (klass.start, klass.end) == (14, 19)
    ts = capture(repo, "src/cart.ts", symbol="addItem")
    assert ts is not None and (ts.start, ts.end) == (1, 3)
    whole = capture(repo, "./src/cart.py")
    assert whole is not None and (whole.start, whole.end, whole.symbol) == (None, None, None)
    assert whole.size == len(CART)
    assert by_lines.text_hash != whole.text_hash != by_symbol.text_hash


def test_an_anchor_round_trips_as_json_under_its_cap(repo: Path) -> None:
    anchor = capture(repo, "src/cart.py", symbol="add_item")
    assert anchor is not None
    payload = anchor.to_payload()
    assert Anchor.from_payload(payload) == anchor
    long = {**payload, "path": "d/" * 255 + "xy", "symbol": "s" * 128}
    assert Anchor.from_payload(long).path.endswith("xy")  # each field at its limit fits ...
    with pytest.raises(ValidationError, match=rf"over the limit of {MAX_ANCHOR_BYTES} bytes"):  # ... not all
        Anchor.from_payload(
            {**long, "commit": "c" * 64, "sketch": "f" * 128, "start": 9_999_000, "end": 9_999_999}
        )
    with pytest.raises(ValidationError, match="must be relative to the project"):
        Anchor.from_payload({**payload, "path": "../etc/passwd"})
    with pytest.raises(ValidationError, match="give both or neither"):
        Anchor.from_payload({**payload, "end": None})


# -- check ---------------------------------------------------------------------------------------


def test_unchanged_size_and_mtime_answer_without_reading_the_file(repo: Path) -> None:
    """The cheap path: same size and mtime -> unchanged, nothing read. Proved by putting other
    text of the same size in the file and restoring its mtime: a read would see the change."""
    cart = repo / "src" / "cart.py"
    anchor = capture(repo, "src/cart.py", (4, 5))
    assert anchor is not None
    before = cart.stat()
    cart.write_text(CART.replace("sum(item.price", "max(item.price"))
    os.utime(cart, ns=(before.st_atime_ns, before.st_mtime_ns))
    state = check(repo, anchor)
    assert (state.state, state.updated) == ("unchanged", False)
    cart.write_text(CART.replace("sum(item.price", "max(item.price"))  # a real edit: new mtime
    assert check(repo, anchor).state == "changed"


def test_touched_but_same_hashes_once_then_is_cheap_again(repo: Path) -> None:
    cart = repo / "src" / "cart.py"
    anchor = capture(repo, "src/cart.py", symbol="total")
    assert anchor is not None
    age(cart, HOUR_NS // 2)  # touched: new mtime, same text
    state = check(repo, anchor)
    assert (state.state, state.updated) == ("unchanged", True)
    assert state.anchor.mtime_ns == cart.stat().st_mtime_ns
    assert check(repo, state.anchor) == type(state)("unchanged", state.anchor, modified_at=state.modified_at)


def test_a_same_size_edit_in_the_tick_of_capture_is_not_trusted_to_the_stat(repo: Path) -> None:
    """Racy git: a file written just before capture and edited again within one timestamp tick
    keeps size and mtime; such an anchor hashes instead."""
    cart = repo / "src" / "cart.py"
    cart.write_text(CART)  # written now
    anchor = capture(repo, "src/cart.py", (4, 5))
    assert anchor is not None
    before = cart.stat()
    cart.write_text(CART.replace("sum(item.price", "max(item.price"))
    os.utime(cart, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert check(repo, anchor).state == "changed"


def test_lines_moved_within_the_file_follow_the_text(repo: Path) -> None:
    anchor = capture(repo, "src/cart.py", (4, 5))
    assert anchor is not None
    edit(repo / "src" / "cart.py", "import json\n", "import json\nimport os\nimport re\n")
    git(repo, "commit", "-qam", "imports")
    state = check(repo, anchor)
    assert (state.state, state.updated, state.anchor.start, state.anchor.end) == ("moved", True, 6, 7)
    assert check(repo, state.anchor).state == "unchanged"
    by_symbol = capture(repo, "src/cart.py", symbol="size")
    assert by_symbol is not None
    edit(repo / "src" / "cart.py", "class Cart:\n", "class Cart:\n    limit = 3\n")
    state = check(repo, by_symbol)
    assert (state.state, state.anchor.start, state.anchor.end) == (
        "moved",
        by_symbol.start + 1,
        by_symbol.end + 1,
    )


def test_changed_text_reports_a_change_size_and_the_file_time(repo: Path) -> None:
    cart = repo / "src" / "cart.py"
    anchor = capture(repo, "src/cart.py", symbol="add_item")
    whole = capture(repo, "src/cart.py")
    assert anchor is not None and whole is not None
    edit(cart, "    return cart\n", "    return list(cart)\n")
    git(repo, "commit", "-qam", "copy")
    small = check(repo, anchor)
    assert small.state == "changed" and small.change is not None and 0 < small.change < 0.5
    assert small.updated is False and small.anchor == anchor  # keeps what the memory was about
    assert small.modified_at == pytest.approx(cart.stat().st_mtime_ns / 1e9)
    assert check(repo, whole).state == "changed"
    edit(cart, "    cart.append(item)\n    return list(cart)\n", "    raise NotImplementedError\n")
    large = check(repo, anchor)
    assert large.state == "changed" and large.change is not None and large.change > small.change


def test_a_changed_file_is_read_once_per_state_of_the_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state is kept once the file's last write (mtime and ctime, which no tool sets back) is
    older than the racy window, here shortened to 50 ms so the test need not wait two seconds."""
    anchor = capture(repo, "src/cart.py", symbol="total")
    assert anchor is not None
    edit(repo / "src" / "cart.py", "sum(item.price", "sum(item.cost")
    fresh = check(repo, anchor)
    assert fresh.state == "changed" and check(repo, anchor) is not fresh  # written just now: read again
    monkeypatch.setattr(anchors, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    first = check(repo, anchor)
    assert first.state == "changed" and check(repo, anchor) is first  # the state read before
    edit(repo / "src" / "cart.py", "sum(item.cost", "sum(item.price")
    assert check(repo, anchor).state == "unchanged"


def test_gone_when_the_file_or_the_symbol_is_deleted(repo: Path) -> None:
    size = capture(repo, "src/cart.py", symbol="size")
    ts = capture(repo, "src/cart.ts", symbol="addItem")
    assert size is not None and ts is not None
    edit(repo / "src" / "cart.py", "    def size(self):\n        return len(self.items)\n", "")
    git(repo, "rm", "-q", "src/cart.ts")
    git(repo, "commit", "-qam", "remove")
    assert (check(repo, size).state, check(repo, size).detail) == ("gone", "symbol size removed")
    assert (check(repo, ts).state, check(repo, ts).detail) == ("gone", "file deleted")


def test_a_renamed_file_is_followed_through_the_rename_map_or_the_candidates(repo: Path) -> None:
    anchor = capture(repo, "src/cart.py", symbol="total")
    assert anchor is not None and anchor.commit is not None
    git(repo, "mv", "src/cart.py", "src/basket.py")
    git(repo, "commit", "-qm", "rename")
    assert check(repo, anchor).state == "gone"  # nothing says where it went
    renames = rename_map(repo, anchor.commit)
    assert renames == {"src/cart.py": "src/basket.py"}
    via_map = check(repo, anchor, renames=renames)
    assert (via_map.state, via_map.anchor.path, via_map.updated) == ("moved", "src/basket.py", True)
    assert via_map.detail == "renamed from src/cart.py"
    via_list = check(repo, anchor, candidates=["README.md", "src/cart.ts", "src/basket.py"])
    assert (via_list.state, via_list.anchor.path) == ("moved", "src/basket.py")
    assert check(repo, via_map.anchor).state == "unchanged"


def test_a_renamed_and_edited_file_follows_the_map_but_not_a_guess(repo: Path) -> None:
    anchor = capture(repo, "src/cart.py", symbol="total")
    assert anchor is not None and anchor.commit is not None
    git(repo, "mv", "src/cart.py", "src/basket.py")
    edit(repo / "src" / "basket.py", "sum(item.price", "sum(item.cost")
    git(repo, "commit", "-qam", "rename and edit")
    renames = rename_map(repo, anchor.commit)
    followed = check(repo, anchor, renames=renames)
    assert (followed.state, followed.anchor.path) == ("changed", "src/basket.py")
    assert check(repo, anchor, candidates=["src/basket.py"]).state == "gone"


# -- what may not be anchored ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "path", "reason"),
    [
        (None, "../etc/passwd", "outside the project|does not exist"),
        (None, "/etc/hostname", "outside the project"),
        ("symlink", "src/link.py", "outside the project"),
        ("dir", "src", "not a regular file|outside"),
        ("binary", "logo.png", "binary file"),
        ("huge", "dump.sql", r"3\.0 MB, over the limit of 2 MB"),
        ("latin1", "old.txt", "not UTF-8"),
        (None, "src/missing.py", "does not exist"),
    ],
)
def test_paths_that_cannot_be_anchored_are_refused(
    repo: Path, make: str | None, path: str, reason: str
) -> None:
    outside = repo.parent / "secret.txt"
    outside.write_text("password\n")
    if make == "symlink":
        (repo / path).symlink_to(outside)
    elif make == "binary":
        (repo / path).write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    elif make == "huge":
        (repo / path).write_text("x" * (3 * 1024 * 1024))
    elif make == "latin1":
        (repo / path).write_bytes("caf\xe9\n".encode("latin-1"))
    assert capture(repo, path) is None
    with pytest.raises(AnchorRefused, match=rf"^anchor path: .*({reason})"):
        capture(repo, path, strict=True)


def test_a_range_or_a_symbol_that_is_not_there_is_refused(repo: Path) -> None:
    with pytest.raises(
        AnchorRefused, match=r"anchor lines: 18-40 is past the end of src/cart.py \(19 lines\)"
    ):
        capture(repo, "src/cart.py", (18, 40), strict=True)
    with pytest.raises(AnchorRefused, match=r"anchor symbol: 'checkout' is not defined in src/cart\.py"):
        capture(repo, "src/cart.py", symbol="checkout", strict=True)
    with pytest.raises(AnchorRefused, match=r"anchor symbol: .* is not a name of at most 128"):
        capture(repo, "src/cart.py", symbol="a b", strict=True)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("src/cart.ts", ("src/cart.ts", None)),
        ("./src/cart.ts:12", ("src/cart.ts", (12, 12))),
        ("src/cart.ts:12-30", ("src/cart.ts", (12, 30))),
        ("  notes:v2.md  ", ("notes:v2.md", None)),
    ],
)
def test_anchor_specs_parse(spec: str, expected: tuple[str, tuple[int, int] | None]) -> None:
    assert parse_anchor_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "anchor: empty"),
        ("x" * 600, "anchor: 600 characters is over the limit of 536"),
        ("src/cart.ts:0", "anchor lines: 0 is below 1"),
        ("src/cart.ts:30-12", "anchor lines: 30-12 ends before it starts"),
        ("src/cart.ts:1-5000", "anchor lines: 5000 lines is over the limit of 2000"),
        ("src/cart.ts:1-99999999999", "anchor lines: 99999999999 is over the limit of 10000000"),
        ("src/cart.ts:12-", "anchor lines: '12-' is not a line"),
        (":12", "anchor lines: '12' is not a line"),
    ],
)
def test_bad_specs_name_the_field_and_the_limit(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        parse_anchor_spec(spec)


# -- paths mentioned in a memory, the commit ------------------------------------------------------


def test_paths_in_text_finds_project_files_only(repo: Path) -> None:
    (repo / "scripts").mkdir()
    (repo / "scripts" / "x.sh").write_text("echo\n")
    text = (
        f"Fixed `src/cart.py:4-5`, see ./scripts/x.sh and {repo}/src/cart.ts. Not src/gone.py, "
        "not ../etc/passwd, not https://example.com/src/cart.py, not the folder src/, not /etc/hosts, "
        "again (src/cart.py:4-5)."
    )
    assert paths_in_text(repo, text) == ["src/cart.py:4-5", "scripts/x.sh", "src/cart.ts"]
    assert paths_in_text(repo, "src/cart.py scripts/x.sh src/cart.ts", limit=2) == [
        "src/cart.py",
        "scripts/x.sh",
    ]


def test_head_commit_reads_git_without_running_it(repo: Path, tmp_path: Path) -> None:
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD")
    git(repo, "worktree", "add", "-q", "-b", "wip", str(tmp_path / "wip"))
    (tmp_path / "wip" / "n.txt").write_text("n\n")
    git(tmp_path / "wip", "add", ".")
    git(tmp_path / "wip", "commit", "-qm", "wip")
    assert head_commit(tmp_path / "wip") == git(tmp_path / "wip", "rev-parse", "HEAD") != head_commit(repo)
    git(repo, "checkout", "-q", "--detach")
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD")
    assert head_commit(tmp_path / "home") is None
