"""Worktrees of a real repository: names, creation from a start point, parallel creation, removal
(the branch stays), and the exclude entry that keeps `git status` clean."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mcp_server import worktrees
from tests.support.git_remotes import BASE_BRANCH, git, make_bare_remote


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    remote = make_bare_remote(tmp_path / "remotes")
    work = tmp_path / "dev"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(work))
    return work


def test_names_are_sanitized_and_distinct() -> None:
    assert worktrees.worktree_name("001-feature", "T012") == "001-feature-T012"
    a = worktrees.worktree_name("feature/x", "T1")
    b = worktrees.worktree_name("feature-x", "T1")
    assert a.startswith("feature-x-T1-") and b == "feature-x-T1" and a != b
    assert "/" not in worktrees.worktree_name("a/b/../c", "T9")


def test_three_tasks_on_one_branch_get_three_worktrees(repo: Path) -> None:
    base = git("rev-parse", BASE_BRANCH, cwd=repo).strip()
    ids = ["T001", "T002", "T003"]
    with ThreadPoolExecutor(3) as pool:
        trees = list(pool.map(lambda t: worktrees.add(repo, BASE_BRANCH, f"agentic/{BASE_BRANCH}/{t}", t, base), ids))
    assert [t.path.name for t in trees] == [f"001-feature-{t}" for t in ids]
    assert all(t.head == base for t in trees)
    listed = worktrees.list_task_worktrees(repo)
    assert sorted(t.branch or "" for t in listed) == [f"agentic/001-feature/{t}" for t in ids]
    assert git("status", "--porcelain", cwd=repo) == ""  # .agentic-sdlc/ is excluded, not tracked
    assert "/.agentic-sdlc/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()

    (trees[0].path / "scratch.txt").write_text("uncommitted")
    for tree in trees:
        worktrees.remove(repo, tree.path)
    assert worktrees.list_task_worktrees(repo) == []
    assert not any(t.path.exists() for t in trees)
    branches = git("branch", "--format=%(refname:short)", cwd=repo).split()
    assert {f"agentic/001-feature/{t}" for t in ids} <= set(branches)


def test_an_existing_task_branch_is_reused_and_a_busy_worktree_refused(repo: Path) -> None:
    base = git("rev-parse", BASE_BRANCH, cwd=repo).strip()
    tree = worktrees.add(repo, BASE_BRANCH, "agentic/001-feature/T001", "T001", base)
    (tree.path / "new.txt").write_text("x")
    git("add", "-A", cwd=tree.path)
    git("commit", "-q", "-m", "work", cwd=tree.path)
    head = git("rev-parse", "HEAD", cwd=tree.path).strip()
    with pytest.raises(worktrees.WorktreeError, match="exists already: is task T001 on 001-feature still running"):
        worktrees.add(repo, BASE_BRANCH, "agentic/001-feature/T001", "T001", base)
    worktrees.remove(repo, tree.path)
    again = worktrees.add(repo, BASE_BRANCH, "agentic/001-feature/T001", "T001", base)
    assert again.head == head  # continues the branch, not a new one from base
    worktrees.remove(repo, again.path)
