"""Merge-back: the succeeded task branches of a feature merged into the feature branch, in the
feature's dependency order (waves or phases, then `depends on`, then tasks.md order), never forced.

`plan_merge` is pure: which task merges, which is skipped and why. `GitMerge` runs it in the
repository the server runs in, which must be on the feature branch with no uncommitted changes to
tracked files outside the feature's spec-kit state (`.async_state/`, `tasks_meta.json`, written by
the server itself): each task's pushed head is fetched from the remote, merged with `--no-ff`
(already merged ones are left), and the first conflict stops everything with the files named and
the merge aborted, so the working tree is as clean as before. Then the feature branch is pushed
(fast-forward only).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_server import naming, speckit
from mcp_server.errors import InvalidInput, RunnerError
from mcp_server.models import MergeEntry, TaskStatus
from mcp_server.planning import Ordering

STATE_PATHS = (".async_state", "tasks_meta.json", "tasks_meta.json.lock")


def plan_merge(
    doc: speckit.TasksDoc, dag_waves: list[list[str]] | None, tasks: Mapping[str, TaskStatus]
) -> list[MergeEntry]:
    """Every agent task of the feature in dependency order, with what merge does with it."""
    ordering = Ordering.of(doc, dag_waves)
    ordered = [t for group in ordering.groups for t in group]
    position = {t.task_id: k for k, t in enumerate(ordered)}

    def depth(task: speckit.SpecTask, seen: frozenset[str] = frozenset()) -> int:
        deps = [d for d in task.depends_on if d in position and d not in seen]
        by_id = doc.by_id()
        return max((depth(by_id[d], seen | {task.task_id}) + 1 for d in deps), default=0)

    key = {t.task_id: (ordering.group_of()[t.task_id], depth(t), position[t.task_id]) for t in ordered}
    entries = []
    for task in sorted((t for t in ordered if t.task_id in tasks), key=lambda t: key[t.task_id]):
        status = tasks[task.task_id]
        result = status.result
        entry = MergeEntry(
            task_id=task.task_id,
            branch=status.branch or "",
            head_sha=result.head_sha if result is not None else None,
            action="merge",
        )
        if status.phase != "succeeded":
            entry.action, entry.detail = "skip", f"the task is {status.phase}, not succeeded"
        elif result is not None and result.status == "no_changes":
            entry.action, entry.detail = "skip", "the agent made no changes"
        elif result is not None and not result.pushed:
            entry.action, entry.detail = "skip", "the task branch was not pushed"
        elif not entry.branch:
            entry.action, entry.detail = "skip", "the task has no branch"
        entries.append(entry)
    return entries


class MergeFailed(RunnerError):
    exit_code = 1


@dataclass(frozen=True)
class Git:
    root: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise MergeFailed(f"git {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()


def _dirty(git: Git, feature_rel: str) -> list[str]:
    """Tracked files with changes, other than the feature's spec-kit state."""
    lines = git.run("status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    state = tuple(f"{feature_rel}/{p}" for p in STATE_PATHS)
    paths = [line[3:].split(" -> ")[-1] for line in lines if line.strip()]
    return [p for p in paths if not p.startswith(state)]


@dataclass
class GitMerge:
    """Runs a merge plan in the repository at `root`."""

    root: Path
    remote: str = "origin"

    def check(self, base_branch: str, feature_rel: str) -> Git:
        git = Git(self.root)
        current = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        if current != base_branch:
            raise InvalidInput(
                "base_branch",
                f"the repository is on {current or 'no branch'!r}, not on the feature branch {base_branch!r}",
                f"check out {base_branch} first (git switch {base_branch}), or name the branch you are on",
            )
        dirty = _dirty(git, feature_rel)
        if dirty:
            raise InvalidInput(
                "repository",
                f"it has uncommitted changes ({', '.join(dirty[:10])})",
                "a clean working tree: commit or stash them first",
            )
        if git.run("rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False).returncode == 0:
            raise InvalidInput("repository", "a merge is in progress", "finish or abort it first (git merge --abort)")
        return git

    def run(self, git: Git, entries: list[MergeEntry], base_branch: str, push: bool) -> tuple[bool, str | None]:
        """Merge the entries in order (in place); returns (pushed, the first conflict's task id)."""
        conflict = None
        merged_any = False
        for entry in entries:
            if entry.action != "merge":
                continue
            naming.validate_branch(entry.branch, "task branch")
            fetched = git.run("fetch", "--no-tags", self.remote, f"refs/heads/{entry.branch}", check=False)
            if fetched.returncode != 0:
                entry.action, entry.detail = "skip", f"the remote has no branch {entry.branch}"
                continue
            tip = git.out("rev-parse", "FETCH_HEAD")
            target = entry.head_sha or tip
            if git.run("merge-base", "--is-ancestor", target, tip, check=False).returncode != 0:
                entry.action, entry.detail = "skip", (
                    f"the agent's head {target[:12]} is not on {entry.branch} at the remote any more"
                )
                continue
            if git.run("merge-base", "--is-ancestor", target, "HEAD", check=False).returncode == 0:
                entry.action, entry.detail = "merged", "already merged"
                continue
            message = f"Merge {entry.task_id} ({entry.branch}) into {base_branch}"
            merged = git.run("merge", "--no-ff", "--no-edit", "-m", message, target, check=False)
            if merged.returncode != 0:
                files = git.out("diff", "--name-only", "--diff-filter=U").splitlines()
                git.run("merge", "--abort", check=False)
                if not files:  # not a conflict: git refused (no identity, local changes in the way, ...)
                    raise MergeFailed(
                        f"merging {entry.task_id} ({entry.branch}) failed, nothing of it was merged: "
                        f"{(merged.stderr or merged.stdout).strip()}"
                    )
                entry.action, entry.conflicts = "conflict", files
                entry.detail = f"conflicts in {', '.join(files)}"
                conflict = entry.task_id
                break
            entry.action, entry.detail = "merged", f"merged as {git.out('rev-parse', 'HEAD')[:12]}"
            merged_any = True
        pushed = False
        if push and merged_any:
            result = git.run("push", "--porcelain", self.remote, f"HEAD:refs/heads/{base_branch}", check=False)
            if result.returncode != 0:
                raise MergeFailed(
                    f"the merges are on your local {base_branch}, but pushing it to {self.remote} was refused "
                    f"({result.stderr.strip()}); pull, then push it yourself (never forced)."
                )
            pushed = True
        return pushed, conflict
