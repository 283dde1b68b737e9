"""Tasks as local processes of the same runner, each in its own git worktree of the developer's
repository (`.agentic-sdlc/worktrees/<base>-<task>`, see `mcp_server.worktrees`).

Each task has a state directory `.agentic-sdlc/state/<environment>/<job>/` (`local_state`) and runs
under a detached supervisor (`local_supervisor`) that starts the runner (`python -m
mcp_server.runner run-task` with AGENTIC_WORKTREE_REPO set), stamps its lines into the task's log,
forwards SIGTERM (cancel) and records the exit. Restart the server and every task is still there,
read back from these files, the worktrees and the branches. The runner gets the server's
environment (the developer's git credentials, LLM keys, OpenCode login), never written to disk.
Task defaults (timeout) are the chart's values (`mcp_server.defaults`), as for a cluster.

Mapping to the Kubernetes backend: job name -> state directory name (the same deterministic
`naming.job_name`), pod -> the supervisor process (`pid-<n>`), namespace -> "local",
activeDeadlineSeconds -> the `deadline` in the task context (the runner stops itself),
Job deletion (cancel) -> SIGTERM, wait for the runner to push its work, delete the state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from mcp_server import naming, worktrees
from mcp_server.backends import local_podman
from mcp_server.backends.base import TaskPage, check_same_repo, cleanup_choice, page_of, pick_one
from mcp_server.backends.local_state import TaskFiles, TaskSnapshot, start_time, this_process, write_json
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.defaults import chart_defaults
from mcp_server.errors import ConfigError, Conflict, InvalidInput, TaskNotFound
from mcp_server.logs.positions import parse_timestamped
from mcp_server.logs.relay import LogStream, StreamRead, TaskStreams
from mcp_server.logs.results import runner_step
from mcp_server.models import (
    CANCELLING,
    CancelResult,
    CleanupItem,
    CleanupResult,
    Phase,
    StreamPosition,
    TaskHandle,
    TaskRef,
    TaskSpec,
    TaskStatus,
)
from mcp_server.runner.contract import TaskContext
from mcp_server.runner.result import TaskUsage
from mcp_server.runner.usage import usage_from_lines
from mcp_server.timeutil import now, parse_time

STATE_DIR = Path(".agentic-sdlc") / "state"
NAMESPACE = "local"
CANCEL_WAIT_SECONDS = 40.0
LOG_LIMIT_BYTES = 4 * 1024 * 1024
RESULT_PHASES: dict[str, Phase] = {
    "succeeded": "succeeded",
    "no_changes": "succeeded",
    "failed": "failed",
    "timed_out": "timed_out",
    "cancelled": "cancelled",
    "budget_exceeded": "budget_exceeded",
    "stalled": "stalled",
}


class LocalBackend:
    name = "local"
    spawn_parallelism = 1  # worktrees of one repository are made one after the other

    def __init__(
        self, environment: EnvironmentSettings, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> None:
        self.env = environment
        self.settings = settings
        self.environment = environment.name
        self.namespace = NAMESPACE
        self.repo = settings.repo_root
        self.state = self.repo / STATE_DIR / environment.name
        self._environ = dict(os.environ if environ is None else environ)

    def branch_pattern(self) -> str:
        return chart_defaults().branch_pattern

    def default_base_branch(self) -> str | None:
        return None  # a local task always runs in a repository: its current branch is the default

    def repo_hosts(self) -> None:
        return None  # the developer's own machine and git credentials do the git work

    def git_secrets(self) -> tuple[str, ...]:
        return ()  # no Secrets here: the local backend pushes with the developer's own credentials

    # -- spawn -----------------------------------------------------------------------------------

    def spawn(self, spec: TaskSpec) -> TaskHandle:
        job = naming.job_name(spec.task_id, spec.base_branch, spec.attempt)
        files = TaskFiles(self.state / job)
        if files.path.is_dir():
            return self._existing(files, spec)
        self._check_repository(spec.base_branch)
        if (self._environ.get("AGENTIC_LOCAL_SANDBOX") or "").strip().lower() == "podman":
            local_podman.check(self._environ)  # podman, helm, the chart, the image: before anything is made
        self.state.mkdir(parents=True, exist_ok=True)
        try:
            files.path.mkdir()
        except FileExistsError:
            return self._existing(files, spec)
        created = now()
        seconds = spec.timeout_minutes * 60 if spec.timeout_minutes else chart_defaults().timeout_seconds
        deadline = created + timedelta(seconds=seconds)
        context = {**spec.context().model_dump(mode="json"), "deadline": deadline.isoformat()}
        write_json(files.path / "context.json", context)
        (files.path / "log").touch()
        env = {
            **self._environ,
            "AGENTIC_TASK_CONTEXT_FILE": str(files.path / "context.json"),
            "AGENTIC_RESULT_FILE": str(files.path / "result.json"),
            "AGENTIC_WORKSPACE": str(files.path),
            "AGENTIC_WORKTREE_REPO": str(self.repo),
            # OpenCode's session database per task: parallel first runs on one shared database race
            # on its schema migration ("CREATE TABLE ... already exists"). Auth and config stay shared.
            "OPENCODE_DB": str(files.path / "opencode.db"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_server.backends.local_supervisor", str(files.path)],
            cwd=self.repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        write_json(files.path / "process.json", {"pid": proc.pid, "start_time": start_time(proc.pid)})
        # spec.json last: its presence says the task is fully set up
        write_json(
            files.path / "spec.json",
            {
                **spec.model_dump(mode="json"),
                "created_at": created.isoformat(),
                "deadline": deadline.isoformat(),
                "job": job,
            },
        )
        return self._handle(files, created=True)

    def _check_repository(self, base_branch: str) -> None:
        """Refuse, before anything is made, a task the runner could not start: the worktree needs a
        git repository that has the base branch (local, or as origin/<base>)."""
        try:
            root = worktrees.toplevel(self.repo)
        except worktrees.WorktreeError:
            raise ConfigError(
                f"the local backend runs tasks in worktrees of a git repository, and {self.repo} "
                "is not one. Run the server inside your repository (or set AGENTIC_REPO_ROOT), "
                "or configure a cluster."
            ) from None
        if worktrees.base_ref(root, base_branch) is None:
            raise InvalidInput(
                "base_branch",
                f"{base_branch!r} is neither a branch of the repository {root} nor origin/{base_branch}",
                "an existing branch (git fetch it first)",
            )

    def _existing(self, files: TaskFiles, spec: TaskSpec) -> TaskHandle:
        existing = None
        for _ in range(50):  # a concurrent spawn may still be writing it
            existing = files.spec()
            if existing is not None:
                break
            time.sleep(0.1)
        if existing is None:
            raise Conflict(
                f"task {spec.task_id} on {spec.base_branch!r} is being set up by another call or "
                f"its state directory {files.path} is broken; retry, or remove that directory"
            )
        if existing.get("task_id") != spec.task_id or existing.get("base_branch") != spec.base_branch:
            raise Conflict(
                f"the local task {files.job!r} exists but is not task {spec.task_id} on "
                f"{spec.base_branch!r}; clean it up or use another task id."
            )
        check_same_repo(spec, existing.get("repo"))
        return self._handle(files, created=False)

    def _handle(self, files: TaskFiles, created: bool) -> TaskHandle:
        return TaskHandle.from_status(self._status(files, last_line=False), created=created)

    # -- reading ---------------------------------------------------------------------------------

    def _tasks(self, all_attempts: bool = False) -> list[tuple[TaskFiles, dict]]:
        """Every fully set up task with its spec, newest first (each spec.json read once); of a
        retried task only its latest attempt unless `all_attempts`."""
        if not self.state.is_dir():
            return []
        found = []
        for path in self.state.iterdir():
            files = TaskFiles(path)
            spec = files.spec() if path.is_dir() else None
            if spec is not None:
                found.append((files, spec))
        found.sort(key=lambda item: item[1].get("created_at", ""), reverse=True)
        return found if all_attempts else _latest_attempts(found)

    def _status(self, files: TaskFiles, last_line: bool = True, spec: dict | None = None) -> TaskStatus:
        snap = files.snapshot(spec)
        tail = files.tail_texts() if last_line or snap.exit is not None else []
        return _status_of(self, files, snap, tail, last_line)

    def list_tasks(self, read_tails: bool = False) -> list[TaskStatus]:
        """`read_tails` changes nothing here: a local task's status always reads its log's end."""
        return [self._status(files, spec=spec) for files, spec in self._tasks()]

    def list_page(self, limit: int | None, token: str | None, read_tails: bool = False) -> TaskPage:
        return page_of(self.list_tasks(), limit, token)

    def _one(self, ref: TaskRef) -> tuple[TaskFiles, dict] | None:
        found = [item for item in self._tasks() if ref.matches(item[1].get("task_id"), item[1].get("base_branch"))]
        return pick_one(ref, found, lambda item: item[1].get("base_branch"))

    def status(self, ref: TaskRef) -> TaskStatus:
        one = self._one(ref)
        if one is None:
            on = f" on base branch {ref.base_branch!r}" if ref.base_branch else ""
            raise TaskNotFound(
                f"no task {ref.task_id}{on} in the local environment {self.environment!r} "
                f"(state in {self.state}). list_agents shows the tasks that exist."
            )
        return self._status(one[0], spec=one[1])

    def task_spec(self, ref: TaskRef) -> TaskSpec:
        """What the task's latest run was given (its spec.json): what a retry starts from."""
        one = self._one(ref)
        if one is None:
            self.status(ref)  # raises TaskNotFound, worded as status does
            raise AssertionError("unreachable")
        fields = {*TaskContext.model_fields, "timeout_minutes", "ssh_secret"}
        return TaskSpec.model_validate({k: v for k, v in one[1].items() if k in fields})

    # -- logs ------------------------------------------------------------------------------------

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        """Each selected task with its one stream, its log file (named like the task's job)."""
        tasks = self._tasks()
        if refs is not None:
            tasks = [t for t in tasks if any(r.matches(t[1].get("task_id"), t[1].get("base_branch")) for r in refs)]
        selected = []
        for files, spec in tasks:
            status = self._status(files, last_line=False, spec=spec)  # before reading: no line lost
            selected.append(TaskStreams(status, (LogStream(files.job, ended=status.finished),)))
        return selected

    def read_stream(
        self, stream: str, position: StreamPosition, *, limit: int | None = None, fresh: bool = False
    ) -> StreamRead:
        """The task's log from the byte offset of `position` on (the whole log for a position
        without one, e.g. from an older cursor), at most LOG_LIMIT_BYTES. A file read costs no
        request: every read is fresh, and the relay takes its `limit` of the lines."""
        files = TaskFiles(self.state / stream)
        offset = position.offset or 0
        body, cut = files.read_log(offset, LOG_LIMIT_BYTES)
        return StreamRead(parse_timestamped(stream, body, cut, offset=offset), cut)

    # -- cancel / cleanup ------------------------------------------------------------------------

    def cancel(self, ref: TaskRef) -> CancelResult:
        one = self._one(ref)
        if one is None:
            return CancelResult.nothing(ref.task_id, self.environment, self.namespace, "local run")
        files = one[0]
        pid = (files.process() or {}).get("pid")
        was_running = files.exit() is None and files.alive()
        with contextlib.suppress(OSError):  # gone meanwhile: the removal below says so
            write_json(files.path / "cancel.json", this_process())
        try:
            return self._stop_and_remove(ref, files, pid, was_running)
        finally:  # a cancel that failed midway is no longer under way
            with contextlib.suppress(OSError):
                (files.path / "cancel.json").unlink()

    def _stop_and_remove(self, ref: TaskRef, files: TaskFiles, pid: int | None, was_running: bool) -> CancelResult:
        if was_running and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while files.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if files.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid), signal.SIGKILL)
        spec = files.spec() or {}
        result = files.result() if was_running else None
        self._remove(files)
        task = (spec.get("task_id"), spec.get("base_branch"))
        for older, older_spec in self._tasks(all_attempts=True):  # the earlier attempts go with it
            if (older_spec.get("task_id"), older_spec.get("base_branch")) == task:
                shutil.rmtree(older.path, ignore_errors=True)
        what = f"the local run {files.job}" + (f" (process {pid})" if was_running else "")
        return CancelResult(
            task_id=ref.task_id,
            environment=self.environment,
            namespace=self.namespace,
            deleted_jobs=[files.job],
            deleted_pods=[f"pid-{pid}"] if was_running and pid else [],
            message=f"cancelled task {ref.task_id}: stopped and deleted {what}; its work so far is on the "
            f"branch {spec.get('task_branch', '?')}."
            if was_running
            else f"task {ref.task_id} had finished: deleted {what}.",
            result=result,
        )

    def _remove(self, files: TaskFiles) -> None:
        """Delete a task's state and its worktree if a killed runner left it; the branch stays."""
        spec = files.spec() or {}
        pod = files.path / "pod.json"
        if pod.is_file():  # a podman task whose supervisor was killed: its pod goes too
            with contextlib.suppress(OSError, ValueError, KeyError):
                podman = shutil.which(self._environ.get("AGENTIC_PODMAN") or "podman") or "podman"
                local_podman.remove_pod(podman, str(json.loads(pod.read_text())["pod"]), self._environ)
        if spec.get("base_branch") and spec.get("task_id"):
            name = worktrees.worktree_name(spec["base_branch"], spec["task_id"])
            with contextlib.suppress(worktrees.WorktreeError):
                for tree in worktrees.list_task_worktrees(self.repo):
                    if tree.path.name == name:
                        worktrees.remove(self.repo, tree.path)
        shutil.rmtree(files.path, ignore_errors=True)

    def cleanup(self, older_than_seconds: float | None, dry_run: bool) -> CleanupResult:
        tasks = {files.job: (files, spec) for files, spec in self._tasks(all_attempts=True)}
        statuses = [self._status(files, last_line=False, spec=spec) for files, spec in tasks.values()]
        taken, kept = cleanup_choice(statuses, older_than_seconds, now())
        if not dry_run:
            for status in taken:
                self._remove(tasks[status.job][0])
        return CleanupResult.of(
            dry_run,
            [CleanupItem.from_status(status) for status in taken],
            kept,
            f"the local environment {self.environment!r}",
        )


def _latest_attempts(found: list[tuple[TaskFiles, dict]]) -> list[tuple[TaskFiles, dict]]:
    """Less the runs a later attempt of the same task supersedes (both exist while a retry
    replaces its predecessor)."""
    best: dict[tuple[object, object], int] = {}
    for _files, spec in found:
        key = (spec.get("task_id"), spec.get("base_branch"))
        best[key] = max(best.get(key, 0), int(spec.get("attempt") or 1))
    return [(f, s) for f, s in found if int(s.get("attempt") or 1) == best[(s.get("task_id"), s.get("base_branch"))]]


def _status_of(
    backend: LocalBackend, files: TaskFiles, snap: TaskSnapshot, tail: list[str], last_line: bool
) -> TaskStatus:
    """A task's status from one snapshot of its state files and the end of its log."""
    spec, exit_info = snap.spec, snap.exit
    result = files.result(tail) if exit_info is not None else None
    moment = now()
    created = parse_time(spec.get("created_at"))
    finished = parse_time(exit_info.get("finished_at")) if exit_info else None
    started = parse_time((snap.runner or {}).get("started_at")) or created
    phase: Phase
    reason = None
    if exit_info is not None:
        phase = RESULT_PHASES.get(result.status, "failed") if result else "failed"
        reason = "DeadlineExceeded" if phase == "timed_out" else None
        if result is None:
            reason = "NoResult"
        if snap.cancelling:  # as a Job being deleted: cancelled, whatever the run ended with
            phase, reason = "cancelled", CANCELLING
    elif snap.alive:
        phase = "running"
    elif snap.process is None:
        phase = "pending"
    else:
        phase, reason = "failed", "ProcessLost"
    step = next((s for s in map(runner_step, reversed(tail)) if s), None)
    pid = (snap.process or {}).get("pid")
    return TaskStatus(
        task_id=spec.get("task_id", ""),
        environment=backend.environment,
        namespace=backend.namespace,
        job=files.job,
        backend="local",
        base_branch=spec.get("base_branch"),
        branch=spec.get("task_branch"),
        repo=spec.get("repo"),
        description=spec.get("title") or spec.get("description"),
        feature_dir=spec.get("feature_dir"),
        phase=phase,
        attempt=int(spec.get("attempt") or 1),
        step=step,
        reason=reason,
        created_at=created,
        started_at=started,
        finished_at=finished,
        age_seconds=(moment - created).total_seconds() if created else None,
        duration_seconds=((finished or moment) - started).total_seconds() if started else None,
        node=os.uname().nodename,
        pods=[f"pid-{pid}"] if pid else [],
        exit_code=exit_info.get("exit_code") if exit_info else None,
        last_log_line=(tail[-1] if tail else None) if last_line else None,
        result=result,
        usage=result.usage if result is not None and result.usage is not None else usage_from_lines(tail),
        previous_usage=TaskUsage.model_validate(spec["previous_usage"]) if spec.get("previous_usage") else None,
    )
