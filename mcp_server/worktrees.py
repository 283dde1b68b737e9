"""git worktrees of the developer's repository, one per local task:
`<repo>/.agentic-sdlc/worktrees/<base branch>-<task id>` (sanitized), on the task's own branch.

Tasks on the same feature branch run side by side, each in its own worktree; a worktree is removed
when its task ends and its branch stays for review. Creation and removal hold a lock in the common
git directory, so parallel tasks never race on git's own lock files. `.agentic-sdlc/` is added to
the repository's `info/exclude` (never to a tracked file), so `git status` of the main checkout
stays clean.
"""

from __future__ import annotations

import fcntl
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mcp_server.naming import short_hash

WORKTREES_DIR = Path(".agentic-sdlc") / "worktrees"
EXCLUDE_LINE = "/.agentic-sdlc/"


class WorktreeError(Exception):
    """A worktree could not be made or removed; the message says which and why."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str | None
    head: str | None


def worktree_name(base_branch: str, task_id: str) -> str:
    """`<base>-<task>` with every character outside [A-Za-z0-9._-] turned into '-'; when that
    changed anything, a short hash of the original keeps distinct pairs apart."""
    raw = f"{base_branch}-{task_id}"
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")
    if clean != raw:
        clean = f"{clean[:80]}-{short_hash(base_branch, task_id, length=6)}"
    return clean


def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=dict(env) if env is not None else None
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise WorktreeError(f"git {args[0]} in {repo} failed: {detail[0]}")
    return proc.stdout


def toplevel(repo: Path) -> Path:
    return Path(_git(repo, "rev-parse", "--show-toplevel").strip())


def common_dir(repo: Path) -> Path:
    return Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())


@contextmanager
def locked(repo: Path) -> Iterator[None]:
    lock_path = common_dir(repo) / "agentic-sdlc-worktrees.lock"
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_excluded(repo: Path) -> None:
    exclude = common_dir(repo) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if EXCLUDE_LINE not in lines:
        with exclude.open("a") as handle:
            handle.write(("\n" if lines and lines[-1] else "") + EXCLUDE_LINE + "\n")


def ref_exists(repo: Path, ref: str) -> bool:
    proc = subprocess.run(["git", "-C", str(repo), "show-ref", "--verify", "--quiet", ref], capture_output=True)
    return proc.returncode == 0


def branch_exists(repo: Path, branch: str) -> bool:
    return ref_exists(repo, f"refs/heads/{branch}")


def base_ref(repo: Path, base_branch: str) -> str | None:
    """Where a task on `base_branch` starts: the local branch, else origin's; None if neither exists."""
    candidates = (f"refs/heads/{base_branch}", f"refs/remotes/origin/{base_branch}")
    return next((ref for ref in candidates if ref_exists(repo, ref)), None)


def add(repo: Path, base_branch: str, task_branch: str, task_id: str, start_point: str) -> Worktree:
    """Make the task's worktree. An existing task branch is checked out as it is (a task that is
    run again continues its work); otherwise the branch is made at `start_point`."""
    root = toplevel(repo)
    path = root / WORKTREES_DIR / worktree_name(base_branch, task_id)
    with locked(root):
        _ensure_excluded(root)
        if path.exists():
            raise WorktreeError(
                f"the worktree {path} exists already: is task {task_id} on {base_branch} "
                "still running? (`git worktree list` shows it)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if branch_exists(root, task_branch):
            _git(root, "worktree", "add", "--quiet", str(path), task_branch)
        else:
            _git(root, "worktree", "add", "--quiet", "-b", task_branch, str(path), start_point)
    head = _git(path, "rev-parse", "HEAD").strip()
    return Worktree(path=path, branch=task_branch, head=head)


def remove(repo: Path, path: Path) -> None:
    """Remove a worktree (also with uncommitted changes: the runner committed what mattered) and
    prune git's bookkeeping. The branch stays."""
    root = toplevel(repo)
    with locked(root):
        if path.exists():
            _git(root, "worktree", "remove", "--force", str(path))
        _git(root, "worktree", "prune")


def list_task_worktrees(repo: Path) -> list[Worktree]:
    """The worktrees under .agentic-sdlc/worktrees/ of the repository."""
    root = toplevel(repo)
    base = (root / WORKTREES_DIR).resolve()
    found: list[Worktree] = []
    current: dict[str, str] = {}
    for line in [*_git(root, "worktree", "list", "--porcelain").splitlines(), ""]:
        if line:
            key, _, value = line.partition(" ")
            current[key] = value
            continue
        if "worktree" in current and Path(current["worktree"]).resolve().is_relative_to(base):
            branch = current.get("branch", "").removeprefix("refs/heads/") or None
            found.append(Worktree(path=Path(current["worktree"]), branch=branch, head=current.get("HEAD")))
        current = {}
    return found
