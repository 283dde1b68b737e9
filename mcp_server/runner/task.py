"""One task, start to finish: setup -> clone (or worktree) -> branch -> agent -> commit -> push -> done.

Every step logs a JSON line with its phase. Once the checkout exists, the agent's work is committed
(marked WIP when the task was stopped or the agent failed) and pushed to the task branch, never
forced and never to another ref. Every way out ends in a `TaskResult`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_server import worktrees
from mcp_server.errors import ConfigError
from mcp_server.runner import gitrepo, oom, reaper
from mcp_server.runner.agent import AgentOutcome, AgentRun, opencode_command, opencode_env
from mcp_server.runner.context import RunnerContext
from mcp_server.runner.gitrepo import Git, GitAuth, GitError
from mcp_server.runner.limits import AgentLimits
from mcp_server.runner.output import Output
from mcp_server.runner.prompt import render_prompt
from mcp_server.runner.result import ResultStatus, TaskResult, TaskUsage
from mcp_server.runner.settings import Settings
from mcp_server.runner.stop import StopControl
from mcp_server.runner.usage import Budget

SUBJECT_MAX = 72


@dataclass
class Checkout:
    path: Path
    git: Git
    base_sha: str
    remote_task_sha: str | None
    cleanup: Callable[[], None] | None = None


@dataclass
class Progress:
    """What is known so far; turned into the result at the end."""

    checkout: Checkout | None = None
    outcome: AgentOutcome | None = None
    commits: int = 0
    head_sha: str | None = None
    files: list[str] = field(default_factory=list)
    pushed: bool = False
    errors: list[str] = field(default_factory=list)
    oom_error: str | None = None
    usage: TaskUsage | None = None


class TaskRunner:
    def __init__(self, settings: Settings, ctx: RunnerContext, out: Output, stop: StopControl) -> None:
        self.settings = settings
        self.ctx = ctx
        self.out = out
        self.stop = stop
        self.progress = Progress()

    # -- the steps ---------------------------------------------------------------------------

    def run(self) -> TaskResult:
        ctx, out = self.ctx, self.out
        started = time.monotonic()
        out.log("setup", f"task {ctx.task_id}: branch {ctx.task_branch} from {ctx.base_branch} of {ctx.repo}",
                task_id=ctx.task_id, branch=ctx.task_branch, base=ctx.base_branch,
                environment=ctx.environment, git_auth=self.settings.git_auth,
                deadline=ctx.deadline.isoformat() if ctx.deadline else None)
        auth = GitAuth()
        reaper.become_subreaper()
        try:
            auth = gitrepo.prepare_auth(self.settings)
            out.set_redactor(out.redact.with_values(auth.secrets))
            self._opencode_version()
            self.progress.checkout = self._checkout(auth)
            if not self.stop.requested:
                self.progress.outcome = self._agent(self.progress.checkout)
            self._commit(self.progress.checkout)
            self._push(self.progress.checkout)
        except (ConfigError, GitError, worktrees.WorktreeError) as exc:
            self._fail(exc)
        finally:
            auth.close()
            if self.progress.checkout is not None and self.progress.checkout.cleanup is not None:
                self._cleanup(self.progress.checkout.cleanup)
        result = self._result()
        out.log("done", f"task {ctx.task_id} {result.status}: {result.commits} commit(s) on {ctx.task_branch}"
                + (", pushed" if result.pushed else ", not pushed"), status=result.status,
                head_sha=result.head_sha, error=result.error, seconds=round(time.monotonic() - started, 1))
        return result

    def _opencode_version(self) -> None:
        try:
            proc = subprocess.run([self.settings.opencode_bin, "--version"], capture_output=True, text=True,
                                  timeout=60, env=dict(self.settings.environ))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"OpenCode cannot be run (AGENTIC_OPENCODE_BIN={self.settings.opencode_bin}): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        self.out.log("setup", f"OpenCode {proc.stdout.strip() or '(unknown version)'}",
                     opencode=self.settings.opencode_bin)

    def _checkout(self, auth: GitAuth) -> Checkout:
        if self.settings.worktree_repo is not None:
            return self._worktree(auth, self.settings.worktree_repo)
        s, ctx, out = self.settings, self.ctx, self.out
        author = (s.author_name, s.author_email)
        s.workspace.mkdir(parents=True, exist_ok=True)
        dest = s.workspace / gitrepo.checkout_dir_name(ctx.repo)
        if dest.exists() and any(dest.iterdir()):
            raise ConfigError(f"the checkout directory {dest} in AGENTIC_WORKSPACE is not empty; the runner "
                              "clones into a fresh workspace (an emptyDir)")
        git = Git(s.workspace, s.environ, auth, out.redact, author)
        out.log("clone", f"cloning {ctx.base_branch} of {ctx.repo}"
                + (f" (depth {s.clone_depth})" if s.clone_depth else ""), dest=str(dest))
        gitrepo.clone(git, ctx.repo, ctx.base_branch, dest, s.clone_depth, self.stop.event)
        git = git.at(dest)
        git.run("remote", "set-url", "--push", "origin", gitrepo.NO_PUSH_URL)
        base_sha = git.run("rev-parse", "HEAD").strip()
        out.log("clone", f"cloned {ctx.base_branch} at {base_sha[:12]}", base_sha=base_sha)
        remote_sha = gitrepo.remote_branch_sha(git, "origin", ctx.task_branch, self.stop.event)
        if remote_sha is not None:
            ref = f"refs/remotes/origin/{ctx.task_branch}"
            git.run("fetch", "--no-tags", "origin", f"+refs/heads/{ctx.task_branch}:{ref}",
                    action=f"fetch of {ctx.task_branch}", cancel=self.stop.event)
            git.run("switch", "--quiet", "--no-track", "-c", ctx.task_branch, ref)
            out.log("branch", f"continuing the existing task branch {ctx.task_branch} at {remote_sha[:12]}",
                    branch=ctx.task_branch)
        else:
            git.run("switch", "--quiet", "-c", ctx.task_branch)
            out.log("branch", f"created {ctx.task_branch} at {base_sha[:12]}", branch=ctx.task_branch)
        return Checkout(dest, git, base_sha, remote_sha)

    def _worktree(self, auth: GitAuth, repo: Path) -> Checkout:
        s, ctx, out = self.settings, self.ctx, self.out
        author = (s.author_name, s.author_email)
        git = Git(repo, s.environ, auth, out.redact, author)
        start = worktrees.base_ref(repo, ctx.base_branch)
        if start is None:
            raise ConfigError(f"the base branch {ctx.base_branch} is not in the repository {repo} (neither "
                              f"a local branch nor origin/{ctx.base_branch}); create or fetch it first")
        base_sha = git.run("rev-parse", start).strip()
        out.log("clone", f"making a worktree of {repo} for {ctx.task_branch}", repo=str(repo))
        tree = worktrees.add(repo, ctx.base_branch, ctx.task_branch, ctx.task_id, base_sha)
        git = git.at(tree.path)
        checkout = Checkout(tree.path, git, base_sha, None, cleanup=lambda: worktrees.remove(repo, tree.path))
        self.progress.checkout = checkout  # removed at the end even if the next steps fail
        out.log("clone", f"worktree {tree.path} from {ctx.base_branch} at {base_sha[:12]}",
                path=str(tree.path))
        checkout.remote_task_sha = gitrepo.remote_branch_sha(git, ctx.repo, ctx.task_branch, self.stop.event)
        verb = "continuing" if tree.head != base_sha else "created"
        out.log("branch", f"{verb} {ctx.task_branch} at {str(tree.head)[:12]}", branch=ctx.task_branch)
        return checkout

    def _agent(self, checkout: Checkout) -> AgentOutcome:
        s, ctx, out = self.settings, self.ctx, self.out
        model = ctx.model or s.opencode_model
        agent = ctx.agent or s.opencode_agent
        command = opencode_command(s.opencode_bin, checkout.path, model, agent)
        limits = self._limits(model)
        run = AgentRun(command, opencode_env(s.environ, checkout.path, s.opencode_config), checkout.path, out,
                       observe=limits.observe)
        self.stop.on_stop(run.stop)
        out.log("agent", f"running OpenCode: model {model or '(OpenCode default)'}, agent {agent}",
                model=model, agent=agent)
        cgroup = oom.own_memory_cgroup()
        kills_before = cgroup.oom_kills() if cgroup is not None else None
        with limits:
            outcome = run.run(render_prompt(ctx, checkout.path))
        self.progress.usage = limits.usage
        self._notice_oom_kills(cgroup, kills_before, outcome)
        left = reaper.end_leftovers()
        if left:
            out.log("agent", f"ended {len(left)} process(es) the agent left running", level="warning", pids=left)
        if outcome.stopped:
            out.log("agent", "OpenCode stopped", level="warning", events=outcome.events)
        elif outcome.error:
            out.log("agent", f"OpenCode failed: {outcome.error}", level="error", events=outcome.events)
        else:
            out.log("agent", f"OpenCode finished ({outcome.events} events)", events=outcome.events)
        return outcome

    def _limits(self, model: str | None) -> AgentLimits:
        """The task's budget and idle limit: its context's, else the environment's (chart) defaults."""
        s, ctx = self.settings, self.ctx
        budget = Budget(ctx.max_cost if ctx.max_cost is not None else s.max_cost,
                        ctx.max_tokens if ctx.max_tokens is not None else s.max_tokens)
        idle = ctx.idle_timeout_seconds if ctx.idle_timeout_seconds is not None else s.idle_timeout_seconds
        self.out.log("agent", "limits: " + ", ".join([
            f"max_cost ${budget.max_cost:g}" if budget.max_cost is not None else "no cost budget",
            f"max_tokens {budget.max_tokens}" if budget.max_tokens is not None else "no token budget",
            f"idle limit {idle:g}s" if idle else "no idle limit"]),
            max_cost=budget.max_cost, max_tokens=budget.max_tokens, idle_timeout_seconds=idle)
        return AgentLimits(self.out, self.stop, model, budget, idle)

    def _notice_oom_kills(self, cgroup: oom.MemoryCgroup | None, before: int | None, outcome: AgentOutcome) -> None:
        """The kernel's OOM killer ended OpenCode or one of its commands: the task failed for that."""
        after = cgroup.oom_kills() if cgroup is not None else None
        if cgroup is None or before is None or after is None or after <= before:
            return
        opencode_killed = outcome.exit_code == -signal.SIGKILL
        message = oom.describe_kills(after - before, cgroup.limit_bytes(), opencode_killed)
        self.progress.oom_error = message
        self.out.log("agent", message, level="error", oom_kills=after - before, opencode_killed=opencode_killed)

    def _commit(self, checkout: Checkout) -> None:
        ctx, out, p = self.ctx, self.out, self.progress
        title = " ".join(ctx.description.split()) or f"task {ctx.task_id}"
        agent_failed = p.outcome is None or p.outcome.error or p.oom_error
        unfinished = self.stop.reason or ("failed" if agent_failed else None)
        prefix = f"WIP {ctx.task_id}" if unfinished else ctx.task_id
        subject = f"{prefix}: {title}"
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1].rstrip() + "…"
        body = (f"Task {ctx.task_id} of {ctx.base_branch}, by the agentic-sdlc runner"
                + (f" (stopped: {unfinished})" if unfinished else "") + ".\n\n"
                f"Agentic-Task: {ctx.task_id}\nAgentic-Base: {ctx.base_branch}")
        if gitrepo.commit_all(checkout.git, subject, body):
            out.log("commit", f"committed the agent's changes: {subject}")
        else:
            out.log("commit", "nothing left to commit")
        p.commits = gitrepo.commits_since(checkout.git, checkout.base_sha)
        p.head_sha = gitrepo.head_sha(checkout.git)
        p.files = gitrepo.files_changed(checkout.git, checkout.base_sha) if p.commits else []
        out.log("commit", f"{p.commits} commit(s) on {ctx.task_branch}, {len(p.files)} file(s) changed",
                commits=p.commits, head_sha=p.head_sha)

    def _push(self, checkout: Checkout) -> None:
        ctx, out, p = self.ctx, self.out, self.progress
        if p.commits == 0:
            out.log("push", "nothing to push: the task branch has no commits of its own")
            return
        if p.head_sha is not None and p.head_sha == checkout.remote_task_sha:
            out.log("push", f"{ctx.task_branch} is up to date on the remote")
            p.pushed = True
            return
        give_up_at = None
        if self.stop.at_monotonic is not None:
            give_up_at = self.stop.at_monotonic + self.settings.grace_seconds - 2
        out.log("push", f"pushing {ctx.task_branch} ({p.head_sha and p.head_sha[:12]})")
        gitrepo.push(checkout.git, ctx.repo, ctx.task_branch, self.settings.push_attempts, give_up_at,
                     lambda msg: out.log("push", msg, level="warning"))
        p.pushed = True
        out.log("push", f"pushed {ctx.task_branch}")

    # -- failure paths -----------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        phase = "push" if isinstance(exc, GitError) and exc.action.startswith("push") else "done"
        message = self.out.redact(str(exc))
        self.progress.errors.append(message)
        self.out.log(phase, message, level="error")

    def _cleanup(self, cleanup: Callable[[], None]) -> None:
        try:
            cleanup()
            self.out.log("done", "worktree removed; the branch stays")
        except worktrees.WorktreeError as exc:
            self.out.log("done", f"could not remove the worktree: {exc}", level="warning")

    def _result(self) -> TaskResult:
        ctx, p = self.ctx, self.progress
        outcome = p.outcome
        errors = list(p.errors)
        status: ResultStatus
        if self.stop.reason is not None:
            status = self.stop.reason
            errors.insert(0, f"stopped: {self.stop.detail}")
        elif p.oom_error is not None:
            status = "failed"
            errors.insert(0, p.oom_error)
            if outcome is not None and outcome.error:
                errors.append(outcome.error)
        elif errors:
            status = "failed"
        elif outcome is not None and outcome.error:
            status = "failed"
            errors.append(outcome.error)
        elif p.commits == 0:
            status = "no_changes"
        else:
            status = "succeeded"
        summary = outcome.summary if outcome is not None else ""
        return TaskResult(
            task_id=ctx.task_id, status=status, branch=ctx.task_branch, base=ctx.base_branch,
            commits=p.commits, head_sha=p.head_sha, pushed=p.pushed, files_changed=p.files,
            summary=self.out.redact(summary), error=self.out.redact("; ".join(errors)) if errors else None,
            usage=p.usage,
        )


def run_task(settings: Settings, ctx: RunnerContext, out: Output, stop: StopControl) -> TaskResult:
    return TaskRunner(settings, ctx, out, stop).run()
