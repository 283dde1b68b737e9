"""One task, start to finish: setup -> clone (or worktree) -> branch -> agent -> commit -> push -> done.

Every step logs a JSON line with its phase. Once the checkout exists, the agent's work is committed
(marked WIP when the task was stopped or the agent failed) and handed to the pusher (`pusher`) as a
bundle through the push queue, which pushes it to the task branch, never forced and never to another
ref. Every way out ends in a `TaskResult`.

Where the checkout comes from and who pushes:
- sidecar mode (a pod): `git-clone` left `<workspace>/.agentic/clone.json`; the runner holds no
  credential and pushes through the queue at AGENTIC_PUSH_QUEUE, served by the `git-push` sidecar;
- local backend: a worktree of the developer's repository (AGENTIC_WORKTREE_REPO); the supervisor
  serves the queue when AGENTIC_PUSH_QUEUE is given, else the runner pushes in-process;
- otherwise the runner clones by itself and runs the same pusher in-process.

Checkpoints: at the end of an agent step, once AGENTIC_CHECKPOINT_SECONDS have passed since the last
one, the work so far is committed (`WIP <task>: checkpoint`) and pushed, so a hard kill loses at most
one interval.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_server import worktrees
from mcp_server.errors import ConfigError
from mcp_server.runner import gitrepo, oom, reaper
from mcp_server.runner.agent import AgentOutcome, AgentRun, opencode_command, opencode_env
from mcp_server.runner.context import RunnerContext
from mcp_server.runner.gitclone import adopt, clone_and_branch, load_clone
from mcp_server.runner.gitconfig import CHECKOUT_HYGIENE, config_env
from mcp_server.runner.gitrepo import Git, GitAuth, GitError
from mcp_server.runner.limits import AgentLimits
from mcp_server.runner.output import Output
from mcp_server.runner.prompt import render_prompt
from mcp_server.runner.pushchannel import InProcessChannel, QueueChannel
from mcp_server.runner.pusher import Pusher, PushTarget, check_target
from mcp_server.runner.pushqueue import PushRequest, PushResponse
from mcp_server.runner.result import ResultStatus, TaskResult, TaskUsage
from mcp_server.runner.settings import Settings
from mcp_server.runner.stop import StopControl
from mcp_server.runner.usage import Budget

SUBJECT_MAX = 72
PUSH_WAIT_SECONDS = 600.0
PushChannel = QueueChannel | InProcessChannel


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
    pushed_sha: str | None = None
    fallback_ref: str | None = None
    checkpoints: int = 0
    errors: list[str] = field(default_factory=list)
    oom_error: str | None = None
    usage: TaskUsage | None = None


class TaskRunner:
    def __init__(self, settings: Settings, ctx: RunnerContext, out: Output, stop: StopControl) -> None:
        self._checkpoint_due = threading.Event()
        self._send_lock = threading.RLock()
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
        channel: PushChannel | None = None
        reaper.become_subreaper()
        try:
            clone = load_clone(self.settings.workspace, ctx)
            target = self._target() if clone is None else None
            if target is not None:
                auth = gitrepo.prepare_auth(self.settings, target.repo)
                out.set_redactor(out.redact.with_values(auth.secrets))
            self._opencode_version()
            if clone is not None:
                self.progress.checkout = self._from_clone(clone)
            else:
                self.progress.checkout = self._checkout(auth)
            channel = self._channel(target, auth)
            self._channel_in_use = channel
            if not self.stop.requested:
                self.progress.outcome = self._agent(self.progress.checkout)
            self._wait_for_checkpoint()
            self._commit(self.progress.checkout)
            self._push(self.progress.checkout, channel)
        except (ConfigError, GitError, worktrees.WorktreeError, ValueError) as exc:
            self._fail(exc)
        finally:
            self._wait_for_checkpoint()
            if channel is not None:
                channel.close()
            auth.close()
            if self.progress.checkout is not None and self.progress.checkout.cleanup is not None:
                self._cleanup(self.progress.checkout.cleanup)
        result = self._result()
        out.log("done", f"task {ctx.task_id} {result.status}: {result.commits} commit(s) on {ctx.task_branch}"
                + (", pushed" if result.pushed else ", not pushed"), status=result.status,
                head_sha=result.head_sha, error=result.error, seconds=round(time.monotonic() - started, 1))
        return result

    def _target(self) -> PushTarget:
        s, ctx = self.settings, self.ctx
        local = s.allow_local_repo or s.worktree_repo is not None
        return check_target(ctx.repo, ctx.task_branch, ctx.base_branch, s.repo_hosts_json, cluster=not local)

    def _channel(self, target: PushTarget | None, auth: GitAuth) -> PushChannel:
        """The queue a pusher elsewhere serves (sidecar mode, or the local supervisor's), else a pusher
        of the runner's own with the credentials it cloned with."""
        s = self.settings
        if target is None or "AGENTIC_PUSH_QUEUE" in s.environ:
            if not s.push_queue.is_dir():
                raise ConfigError(f"the push queue {s.push_queue} (AGENTIC_PUSH_QUEUE) is not a directory; in a pod "
                                  "it is the push-queue emptyDir the git-push sidecar serves")
            self.out.log("push", f"pushes go through the queue {s.push_queue}", queue=str(s.push_queue))
            return QueueChannel(s.push_queue)
        home = Path(tempfile.mkdtemp(prefix="agentic-pusher-"))
        return InProcessChannel(Pusher(target, auth, home, s.environ, self.out.redact, s.protected_paths,
                                       s.push_attempts, self.out.log))

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
        _, base_sha, remote_sha = clone_and_branch(git, ctx, dest, s.clone_depth, out, self.stop.event)
        return Checkout(dest, self._checkout_git(dest), base_sha, remote_sha)

    def _checkout_git(self, path: Path) -> Git:
        """git in the agent's checkout for the runner's own calls (commit, bundle): no credential, no
        hooks, no fsmonitor."""
        s = self.settings
        return Git(path, s.environ, GitAuth(env=config_env(CHECKOUT_HYGIENE)), self.out.redact,
                   (s.author_name, s.author_email))

    def _from_clone(self, clone) -> Checkout:  # type: ignore[no-untyped-def]
        """The checkout git-clone made: made this uid's own, no credential anywhere."""
        ctx, out = self.ctx, self.out
        adopt(clone.checkout)
        git = self._checkout_git(clone.checkout)
        head = gitrepo.head_sha(git)
        branch = git.run("rev-parse", "--abbrev-ref", "HEAD").strip()
        if branch != ctx.task_branch:
            raise ConfigError(f"the checkout {clone.checkout} is on {branch!r}, not the task branch "
                              f"{ctx.task_branch!r}")
        out.log("clone", f"working in the checkout git-clone made: {clone.checkout}", checkout=str(clone.checkout))
        out.log("branch", f"on {ctx.task_branch} at {str(head)[:12]}", branch=ctx.task_branch)
        return Checkout(clone.checkout, git, clone.base_sha, clone.remote_task_sha)

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
        checkout = Checkout(tree.path, self._checkout_git(tree.path), base_sha, None,
                            cleanup=lambda: worktrees.remove(repo, tree.path))
        self.progress.checkout = checkout  # removed at the end even if the next steps fail
        out.log("clone", f"worktree {tree.path} from {ctx.base_branch} at {base_sha[:12]}",
                path=str(tree.path))
        if "AGENTIC_PUSH_QUEUE" not in s.environ:  # the supervisor's pusher knows the remote; the runner need not
            checkout.remote_task_sha = gitrepo.remote_branch_sha(git.at(tree.path), ctx.repo, ctx.task_branch,
                                                                 self.stop.event)
        verb = "continuing" if tree.head != base_sha else "created"
        out.log("branch", f"{verb} {ctx.task_branch} at {str(tree.head)[:12]}", branch=ctx.task_branch)
        return checkout

    def _agent(self, checkout: Checkout) -> AgentOutcome:
        s, ctx, out = self.settings, self.ctx, self.out
        model = ctx.model or s.opencode_model
        agent = ctx.agent or s.opencode_agent
        command = opencode_command(s.opencode_bin, checkout.path, model, agent)
        limits = self._limits(model)

        def observe(event: dict[str, Any]) -> None:
            limits.observe(event)  # usage, budgets, the idle watch
            kind = event.get("type")
            if isinstance(kind, str):
                self._maybe_checkpoint(checkout, kind)  # at the end of each agent step

        run = AgentRun(command, opencode_env(s.environ, checkout.path, s.opencode_config), checkout.path, out,
                       observe=observe)
        self.stop.on_stop(run.stop)
        out.log("agent", f"running OpenCode: model {model or '(OpenCode default)'}, agent {agent}",
                model=model, agent=agent)
        self._last_checkpoint = time.monotonic()
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

    # -- checkpoints -------------------------------------------------------------------------

    _last_checkpoint: float = 0.0
    _checkpoint_thread: threading.Thread | None = None
    _channel_in_use: PushChannel | None = None

    def _maybe_checkpoint(self, checkout: Checkout, kind: str) -> None:
        """At the end of an agent step, once AGENTIC_CHECKPOINT_SECONDS have passed since the last
        checkpoint: commit the work so far and push it, in the background, one at a time (a step that
        ends while one is under way is taken up by it when it is done)."""
        if kind != "step_finish" or self.stop.requested or self._channel_in_use is None:
            return
        if time.monotonic() - self._last_checkpoint < self.settings.checkpoint_seconds:
            return
        self._last_checkpoint = time.monotonic()
        self._checkpoint_due.set()
        if self._checkpoint_thread is None or not self._checkpoint_thread.is_alive():
            thread = threading.Thread(target=self._checkpoints, args=(checkout, self._channel_in_use), daemon=True)
            self._checkpoint_thread = thread
            thread.start()

    def _checkpoints(self, checkout: Checkout, channel: PushChannel) -> None:
        while self._checkpoint_due.is_set() and not self.stop.requested:
            self._checkpoint_due.clear()
            try:
                with self._send_lock:
                    committed = gitrepo.commit_all(
                        checkout.git, f"WIP {self.ctx.task_id}: checkpoint",
                        f"Work in progress of task {self.ctx.task_id}, pushed at a checkpoint.")
                if not committed:
                    continue
                self.out.log("commit", "checkpoint: committed the work so far")
                response = self._send(checkout, channel, "checkpoint")
            except (GitError, OSError) as exc:
                self.out.log("push", f"checkpoint failed: {exc}", level="warning")
                continue
            if response is not None and response.pushed:
                self.progress.checkpoints += 1
                self.out.log("push", f"checkpoint pushed: {self.ctx.task_branch} at {response.sha[:12]}",
                             sha=response.sha)
            elif response is not None:
                self.out.log("push", f"checkpoint not pushed: {response.error}", level="warning")

    def _wait_for_checkpoint(self) -> None:
        thread = self._checkpoint_thread
        if thread is not None and thread.is_alive():
            left = self._time_left()
            thread.join(timeout=left if left is not None else PUSH_WAIT_SECONDS)

    def _time_left(self) -> float | None:
        if self.stop.at_monotonic is None:
            return None
        return max(1.0, self.stop.at_monotonic + self.settings.grace_seconds - 2 - time.monotonic())

    # -- push --------------------------------------------------------------------------------

    def _send(self, checkout: Checkout, channel: PushChannel, kind: str) -> PushResponse | None:
        """Bundle HEAD (what the pusher does not have yet) into the queue and wait for the answer; None
        when there is nothing new or no answer came in time."""
        with self._send_lock:
            git, p = checkout.git, self.progress
            sha = gitrepo.head_sha(git)
            known = [x for x in (checkout.base_sha, checkout.remote_task_sha, p.pushed_sha) if x]
            if sha is None or sha in known:
                return None
            n = channel.queue.next_n()
            bundle = channel.queue.bundle_path(n)
            git.run("bundle", "create", "-q", str(bundle), "HEAD", *[f"^{x}" for x in dict.fromkeys(known)],
                    action="bundle of the work")
            with contextlib.suppress(OSError):
                bundle.chmod(0o644)
            left = self._time_left()
            give_up_at = None if left is None else time.monotonic() + left
            # a checkpoint stops waiting when the task stops (the final push then waits its turn)
            cancel = self.stop.event if kind == "checkpoint" else None
            response = channel.send(PushRequest(n, kind, sha),  # type: ignore[arg-type]
                                    left if left is not None else PUSH_WAIT_SECONDS, cancel, give_up_at)
            if response is not None and response.pushed and response.sha == sha:
                p.pushed_sha = sha
            return response

    def _push(self, checkout: Checkout, channel: PushChannel) -> None:
        ctx, out, p = self.ctx, self.out, self.progress
        if p.commits == 0:
            out.log("push", "nothing to push: the task branch has no commits of its own")
            return
        if p.head_sha is not None and p.head_sha in (checkout.remote_task_sha, p.pushed_sha):
            out.log("push", f"{ctx.task_branch} is up to date on the remote")
            p.pushed = True
            return
        out.log("push", f"pushing {ctx.task_branch} ({p.head_sha and p.head_sha[:12]})")
        response = self._send(checkout, channel, "final")
        if response is None:
            raise PushFailed(f"push of {ctx.task_branch} failed: the pusher did not answer in time (is the git-push "
                             "sidecar running?)")
        if response.fallback_ref:
            p.fallback_ref = response.fallback_ref
        if not response.pushed or response.sha != p.head_sha:
            why = response.error or "not pushed"
            raise PushFailed(why if why.startswith("push of ") else f"push of {ctx.task_branch} failed: {why}")
        p.pushed = True
        out.log("push", f"pushed {ctx.task_branch}")

    # -- failure paths -----------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        pushing = isinstance(exc, PushFailed) or (isinstance(exc, GitError) and exc.action.startswith("push"))
        phase = "push" if pushing else "done"
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


class PushFailed(ConfigError):
    """The pusher did not push the work; the message says why (refused paths, a moved branch, ...)."""


def run_task(settings: Settings, ctx: RunnerContext, out: Output, stop: StopControl) -> TaskResult:
    return TaskRunner(settings, ctx, out, stop).run()
