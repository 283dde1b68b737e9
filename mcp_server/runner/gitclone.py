"""`python -m mcp_server.runner git-clone`: the pod's `git-clone` init container (uid 1001, the git
credential mounted only here and in `git-push`).

It clones the task's repository (checked against the host rules) into the shared workspace with the
isolated config of `gitconfig`, checks out the task branch (the pushed head of an existing remote task
branch, else a new branch from the base), leaves no credential in the checkout (the remote URL has
none, no credential helper is written to its config, the push URL is disabled), makes it writable for
the agent's uid, and writes `<workspace>/.agentic/clone.json`:

    {"checkout": "/workspace/<repo>", "base_sha": "...", "remote_task_sha": "..."|null, "branch": "<task branch>"}

The runner in the agent's container finds that file and works in the checkout without cloning and
without any credential (`load_clone`, `adopt`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_server.errors import ConfigError
from mcp_server.runner import gitrepo
from mcp_server.runner.context import RunnerContext, load_context, partial_ids
from mcp_server.runner.gitconfig import isolated_environ
from mcp_server.runner.gitrepo import Git, GitAuth, GitError
from mcp_server.runner.output import Output
from mcp_server.runner.pusher import check_target
from mcp_server.runner.pushqueue import write_atomic
from mcp_server.runner.redact import Redactor
from mcp_server.runner.result import TaskResult
from mcp_server.runner.settings import DEFAULT_CONTEXT_FILE, DEFAULT_RESULT_FILE, Settings

CLONE_INFO = Path(".agentic") / "clone.json"


@dataclass(frozen=True)
class CloneInfo:
    checkout: Path
    base_sha: str
    remote_task_sha: str | None
    branch: str


def clone_info_path(workspace: Path) -> Path:
    return workspace / CLONE_INFO


def load_clone(workspace: Path, ctx: RunnerContext) -> CloneInfo | None:
    """The clone git-clone made, or None when there is none (the runner then clones by itself).
    ConfigError when the file is there but does not fit this task."""
    path = clone_info_path(workspace)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        info = CloneInfo(Path(data["checkout"]), str(data["base_sha"]),
                         data.get("remote_task_sha") or None, str(data["branch"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"the clone record {path} (written by git-clone) is not readable JSON with checkout, "
                          "base_sha, remote_task_sha and branch") from None
    if info.branch != ctx.task_branch:
        raise ConfigError(f"the clone record {path} is for the branch {info.branch!r}, not the task's "
                          f"{ctx.task_branch!r}")
    if not info.checkout.resolve().is_relative_to(workspace.resolve()):
        raise ConfigError(f"the clone record {path} names a checkout outside AGENTIC_WORKSPACE")
    return info


def adopt(checkout: Path) -> None:
    """Make the checkout's top directory and its .git directory this process's own, so git trusts it
    (git refuses a repository another uid owns: "dubious ownership"). git-clone made everything
    writable for all; the entries are moved (renamed) into fresh directories, nothing is copied."""
    if checkout.stat().st_uid == os.getuid() and (checkout / ".git").stat().st_uid == os.getuid():
        return
    fresh = Path(tempfile.mkdtemp(prefix=f".{checkout.name}-", dir=checkout.parent))
    fresh.chmod(0o755)
    for entry in os.listdir(checkout):
        if entry == ".git":
            (fresh / ".git").mkdir(mode=0o755)
            for inner in os.listdir(checkout / ".git"):
                os.rename(checkout / ".git" / inner, fresh / ".git" / inner)
            (checkout / ".git").rmdir()
        else:
            os.rename(checkout / entry, fresh / entry)
    checkout.rmdir()
    os.rename(fresh, checkout)


def make_writable_for_all(root: Path) -> None:
    """Directories rwx and files rw for everyone (the agent runs under another uid); execute bits kept."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777)
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o777 if mode & 0o111 else 0o666)


def clone_and_branch(git: Git, ctx: RunnerContext, dest: Path, depth: int, out: Output,
                     cancel: threading.Event) -> tuple[Git, str, str | None]:
    """Clone the base branch into `dest`, disable its push URL, and check out the task branch: the
    remote's task branch when it exists (a rerun continues it), else a new one from the base. Returns
    the Git of the checkout, the base commit and the remote task branch's commit (or None)."""
    out.log("clone", f"cloning {ctx.base_branch} of {ctx.repo}" + (f" (depth {depth})" if depth else ""),
            dest=str(dest))
    gitrepo.clone(git, ctx.repo, ctx.base_branch, dest, depth, cancel)
    git = git.at(dest)
    git.run("remote", "set-url", "--push", "origin", gitrepo.NO_PUSH_URL)
    base_sha = git.run("rev-parse", "HEAD").strip()
    out.log("clone", f"cloned {ctx.base_branch} at {base_sha[:12]}", base_sha=base_sha)
    remote_sha = gitrepo.remote_branch_sha(git, "origin", ctx.task_branch, cancel)
    if remote_sha is not None:
        ref = f"refs/remotes/origin/{ctx.task_branch}"
        git.run("fetch", "--no-tags", "origin", f"+refs/heads/{ctx.task_branch}:{ref}",
                action=f"fetch of {ctx.task_branch}", cancel=cancel)
        git.run("switch", "--quiet", "--no-track", "-c", ctx.task_branch, ref)
        out.log("branch", f"continuing the existing task branch {ctx.task_branch} at {remote_sha[:12]}",
                branch=ctx.task_branch)
    else:
        git.run("switch", "--quiet", "-c", ctx.task_branch)
        out.log("branch", f"created {ctx.task_branch} at {base_sha[:12]}", branch=ctx.task_branch)
    return git, base_sha, remote_sha


def clone_for_task(settings: Settings, ctx: RunnerContext, out: Output, cancel: threading.Event) -> CloneInfo:
    target = check_target(ctx.repo, ctx.task_branch, ctx.base_branch, settings.repo_hosts_json,
                          cluster=not settings.allow_local_repo)
    auth = GitAuth()
    home = Path(tempfile.mkdtemp(prefix="agentic-git-clone-"))
    try:
        auth = gitrepo.prepare_auth(settings, target.repo)
        out.set_redactor(out.redact.with_values(auth.secrets))
        git = Git(settings.workspace, isolated_environ(settings.environ, home), auth, out.redact,
                  (settings.author_name, settings.author_email))
        settings.workspace.mkdir(parents=True, exist_ok=True)
        dest = settings.workspace / gitrepo.checkout_dir_name(ctx.repo)
        if dest.exists() and any(dest.iterdir()):
            raise ConfigError(f"the checkout directory {dest} in AGENTIC_WORKSPACE is not empty; git-clone "
                              "clones into a fresh workspace (an emptyDir)")
        git, base_sha, remote_sha = clone_and_branch(git, ctx, dest, settings.clone_depth, out, cancel)
        make_writable_for_all(dest)
        info = CloneInfo(dest, base_sha, remote_sha, ctx.task_branch)
        record = clone_info_path(settings.workspace)
        record.parent.mkdir(mode=0o755, exist_ok=True)
        write_atomic(record, json.dumps({"checkout": str(dest), "base_sha": base_sha,
                                         "remote_task_sha": remote_sha, "branch": ctx.task_branch}).encode())
        return info
    finally:
        auth.close()
        shutil.rmtree(home, ignore_errors=True)


def main(environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    out = Output(Redactor.from_environ(env))
    try:
        settings = Settings.from_environ(env)
        ctx = load_context(settings.context_file)
        info = clone_for_task(settings, ctx, out, threading.Event())
    except (ConfigError, GitError, ValueError, OSError) as exc:
        message = out.redact(str(exc))
        out.log("clone", message, level="error")
        _failed_result(env, message, out)
        return 1
    out.log("clone", f"the checkout {info.checkout} is ready for the agent on {info.branch}",
            checkout=str(info.checkout))
    return 0


def _failed_result(env: Mapping[str, str], message: str, out: Output) -> None:
    """git-clone's own termination message: the task failed before the agent started."""
    task_id, branch, base = partial_ids(Path(env.get("AGENTIC_TASK_CONTEXT_FILE") or DEFAULT_CONTEXT_FILE))
    result = TaskResult(task_id=task_id, status="failed", branch=branch, base=base, error=message)
    with contextlib.suppress(OSError):
        Path(env.get("AGENTIC_RESULT_FILE") or DEFAULT_RESULT_FILE).write_text(out.redact(result.to_json()))
    out.line(result.marker_line())
