"""Project identity on real git repositories made in a temp directory.

Every git worktree of one repository shares one scope; two repositories whose folders have the
same name never do; a directory outside git gets its own scope by path; a moved clone keeps its
scope when its origin is the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clarity import project
from clarity.models import GLOBAL_SCOPE
from clarity.project import normalize_remote, project_scope

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A throwaway global git config, so a developer's settings cannot change the answers.
    monkeypatch.setenv("HOME", str(tmp_path / "git-home"))
    (tmp_path / "git-home").mkdir()
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    project._cache.clear()
    yield
    project._cache.clear()


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def make_repo(path: Path, origin: str | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text(f"# {path.name}\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('hi')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    if origin:
        git(path, "remote", "add", "origin", origin)
    return path


def scope(path: Path) -> str:
    project._cache.clear()
    return project_scope(str(path))


# -- worktrees ---------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [None, "git@github.com:acme/shop.git"])
def test_every_worktree_of_a_repository_shares_one_scope(tmp_path: Path, origin: str | None) -> None:
    repo = make_repo(tmp_path / "shop", origin)
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "elsewhere" / "shop-feature"))
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "review"))
    main = scope(repo)
    assert main.startswith("shop-")
    assert scope(tmp_path / "elsewhere" / "shop-feature") == main
    assert scope(tmp_path / "review") == main
    assert scope(tmp_path / "review" / "src") == main
    assert scope(repo / "src") == main


def test_a_worktree_of_a_moved_repository_without_origin_still_matches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "notes")
    git(repo, "worktree", "add", "-q", "-b", "wip", str(tmp_path / "notes-wip"))
    assert scope(tmp_path / "notes-wip") == scope(repo)


# -- same folder name, different repositories ----------------------------------------------------


def test_same_named_repositories_without_origin_never_share(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "work" / "api")
    second = make_repo(tmp_path / "personal" / "api")
    a, b = scope(first), scope(second)
    assert a != b
    assert a.startswith("api-") and b.startswith("api-")


def test_same_named_repositories_with_different_origins_never_share(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "one" / "api", "https://github.com/acme/api.git")
    second = make_repo(tmp_path / "two" / "api", "https://github.com/other/api.git")
    assert scope(first) != scope(second)


def test_a_git_repository_and_a_plain_folder_of_the_same_name_differ(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "a" / "tool")
    plain = tmp_path / "b" / "tool"
    plain.mkdir(parents=True)
    assert scope(repo) != scope(plain)


# -- outside git ---------------------------------------------------------------------------------


def test_a_directory_outside_git_gets_its_own_scope_by_path(tmp_path: Path) -> None:
    one = tmp_path / "x" / "scratch"
    two = tmp_path / "y" / "scratch"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    assert scope(one) != scope(two)
    assert scope(one) == scope(one)  # stable
    assert scope(one).startswith("scratch-")
    assert scope(one / ".") == scope(one)
    (tmp_path / "link").symlink_to(one)
    assert scope(tmp_path / "link") == scope(one)  # a symlink names the same folder


def test_a_missing_directory_is_global(tmp_path: Path) -> None:
    assert scope(tmp_path / "does-not-exist") == GLOBAL_SCOPE


# -- moves and re-clones -------------------------------------------------------------------------


def test_a_moved_clone_keeps_its_scope_when_the_origin_is_the_same(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream" / "service")
    bare = tmp_path / "remote" / "service.git"
    git(tmp_path, "clone", "-q", "--bare", str(upstream), str(bare))
    clone = tmp_path / "checkouts" / "service"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    before = scope(clone)

    moved = tmp_path / "moved" / "renamed-service"
    moved.parent.mkdir()
    shutil.move(str(clone), str(moved))
    assert scope(moved) == before

    # A second clone of the same origin is the same project too.
    again = tmp_path / "again" / "service"
    git(tmp_path, "clone", "-q", str(bare), str(again))
    assert scope(again) == before


def test_ssh_and_https_spellings_of_one_origin_agree(tmp_path: Path) -> None:
    ssh = make_repo(tmp_path / "a" / "lib", "git@github.com:Acme/Lib.git")
    https = make_repo(tmp_path / "b" / "lib", "https://github.com/acme/lib")
    token = make_repo(tmp_path / "c" / "lib", "https://user:secret@github.com/acme/lib.git/")
    assert scope(ssh) == scope(https) == scope(token)
    assert "secret" not in scope(token)


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme/lib.git",
        "ssh://git@github.com/acme/lib.git",
        "https://github.com/acme/lib",
        "https://github.com/acme/lib.git",
        "http://token@github.com/ACME/lib/",
        "git://github.com/acme/lib.git",
    ],
)
def test_normalize_remote(url: str) -> None:
    assert normalize_remote(url) == "github.com/acme/lib"


def test_a_repository_without_origin_is_named_by_its_other_remote(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "one" / "kit")
    git(first, "remote", "add", "upstream", "https://github.com/acme/kit.git")
    second = make_repo(tmp_path / "two" / "kit", "git@github.com:acme/kit.git")
    assert scope(first) == scope(second)


def test_a_repository_without_any_remote_changes_scope_when_moved(tmp_path: Path) -> None:
    # Documented limit: with no remote, the repository is known by where its git directory is.
    repo = make_repo(tmp_path / "a" / "solo")
    before = scope(repo)
    shutil.move(str(repo), str(tmp_path / "solo-moved"))
    assert scope(tmp_path / "solo-moved") != before


# -- robustness ----------------------------------------------------------------------------------


def test_git_variables_in_the_daemon_environment_do_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = make_repo(tmp_path / "mine")
    other = make_repo(tmp_path / "other")
    expected = scope(mine)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert scope(mine) == expected


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_repository_owned_by_another_user_is_still_one_project(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "mounted", "https://github.com/acme/mounted.git")
    git(repo, "worktree", "add", "-q", "-b", "other", str(tmp_path / "mounted-wt"))
    expected = scope(repo)
    for root, dirs, files in os.walk(tmp_path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), 4321, 4321)
    os.lchown(tmp_path, 4321, 4321)
    # git itself now refuses the repository ("dubious ownership") ...
    refused = subprocess.run(["git", "status"], cwd=repo, capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    # ... but its identity is still read.
    assert scope(repo) == expected
    assert scope(tmp_path / "mounted-wt") == expected


def test_answers_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "cached")
    first = project_scope(str(repo))
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(project, "_git", lambda cwd, *args: calls.append(args))
    assert project_scope(str(repo)) == first
    assert calls == []
