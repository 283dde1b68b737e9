"""Tasks as local processes of the same runner, each in its own git worktree of the developer's
repository (`.agentic-sdlc/worktrees/<base>-<task>`, see `mcp_server.worktrees`).

Each task has a small state directory `.agentic-sdlc/state/<environment>/<job>/`:

    spec.json      the task as spawned (TaskSpec + created_at + deadline); never a secret
    context.json   the task context the runner reads (AGENTIC_TASK_CONTEXT_FILE)
    process.json   the supervisor's pid and process start time (to tell a reused pid apart)
    runner.json    the runner's pid and when it started (written by the supervisor)
    log            the runner's stdout, each line prefixed with an RFC 3339 timestamp
    result.json    the runner's result JSON (AGENTIC_RESULT_FILE)
    exit.json      the runner's exit code and when it ended (written last)
    cancel.json    while a cancel is under way: the pid and start time of the process cancelling
    opencode.db    the agent's OpenCode session database (OPENCODE_DB)

A task runs under a detached supervisor (`python -m mcp_server.backends.local supervise <dir>`) that
starts the runner (`python -m mcp_server.runner run-task` with AGENTIC_WORKTREE_REPO set), stamps
its lines into `log`, forwards SIGTERM (cancel) and writes `exit.json`. The supervisor does not
depend on the server: restart the server and every task is still there, read back from these files,
the worktrees and the branches. The runner gets the server's environment (the developer's git
credentials, LLM keys, OpenCode login), never written to disk.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_server import logs, naming, worktrees
from mcp_server.backends.base import cleanup_choice
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.errors import ConfigError, Conflict, InvalidInput, TaskNotFound
from mcp_server.models import (
    CANCELLING,
    FINISHED_PHASES,
    CancelResult,
    CleanupItem,
    CleanupResult,
    LogBatch,
    LogLine,
    Phase,
    StreamPosition,
    TaskHandle,
    TaskLogState,
    TaskRef,
    TaskResult,
    TaskSpec,
    TaskStatus,
)

STATE_DIR = Path(".agentic-sdlc") / "state"
NAMESPACE = "local"
DEFAULT_TIMEOUT_MINUTES = 120
CANCEL_WAIT_SECONDS = 40.0
RESULT_PHASES: dict[str, Phase] = {
    "succeeded": "succeeded",
    "no_changes": "succeeded",
    "failed": "failed",
    "timed_out": "timed_out",
    "cancelled": "cancelled",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) and None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] == "Z":
        return None
    return fields[19]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "start_time": _start_time(os.getpid())}


def _lives(record: Mapping[str, Any] | None) -> bool:
    """The process a record `{"pid", "start_time"}` names still runs (not a reused pid)."""
    if not record:
        return False
    pid = int(record["pid"])
    _reap(pid)
    return _start_time(pid) == record.get("start_time")


class TaskFiles:
    """The state directory of one task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def job(self) -> str:
        return self.path.name

    def spec(self) -> dict[str, Any] | None:
        return _read_json(self.path / "spec.json")

    def process(self) -> dict[str, Any] | None:
        return _read_json(self.path / "process.json")

    def exit(self) -> dict[str, Any] | None:
        return _read_json(self.path / "exit.json")

    def result(self) -> TaskResult | None:
        try:
            text = (self.path / "result.json").read_text()
        except OSError:
            text = ""
        return logs.parse_result(text) or logs.result_from_lines(self.log_texts()[-5:])

    def log_body(self) -> str:
        try:
            return (self.path / "log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_texts(self) -> list[str]:
        return [line.text for line in logs.parse_timestamped(self.job, self.log_body())]

    def alive(self) -> bool:
        return _lives(self.process())

    def cancelling(self) -> bool:
        """A cancel is under way: the process that started it still runs (one that died midway
        leaves a task that is simply finished)."""
        return _lives(_read_json(self.path / "cancel.json"))


class LocalBackend:
    name = "local"

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
        return naming.DEFAULT_BRANCH_PATTERN

    # -- spawn -----------------------------------------------------------------------------------

    def spawn(self, spec: TaskSpec) -> TaskHandle:
        job = naming.job_name(spec.task_id, spec.base_branch)
        files = TaskFiles(self.state / job)
        if files.path.is_dir():
            return self._existing(files, spec)
        self._check_repository(spec.base_branch)
        self.state.mkdir(parents=True, exist_ok=True)
        try:
            files.path.mkdir()
        except FileExistsError:
            return self._existing(files, spec)
        created = _now()
        minutes = spec.timeout_minutes or DEFAULT_TIMEOUT_MINUTES
        deadline = created + timedelta(minutes=minutes)
        context = {**spec.context().model_dump(mode="json"), "deadline": deadline.isoformat()}
        _write_json(files.path / "context.json", context)
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
            [sys.executable, "-m", "mcp_server.backends.local", "supervise", str(files.path)],
            cwd=self.repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _write_json(files.path / "process.json", {"pid": proc.pid, "start_time": _start_time(proc.pid)})
        # spec.json last: its presence says the task is fully set up
        _write_json(
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
        if existing.get("repo") != spec.repo:
            raise Conflict(
                f"task {spec.task_id} on {spec.base_branch!r} exists already for another "
                "repository; cancel it first or use another task id."
            )
        return self._handle(files, created=False)

    def _handle(self, files: TaskFiles, created: bool) -> TaskHandle:
        return TaskHandle.from_status(self._status(files, last_line=False), created=created)

    # -- reading ---------------------------------------------------------------------------------

    def _tasks(self) -> list[TaskFiles]:
        if not self.state.is_dir():
            return []
        found = [TaskFiles(p) for p in self.state.iterdir() if p.is_dir() and (p / "spec.json").is_file()]
        found.sort(key=lambda f: (f.spec() or {}).get("created_at", ""), reverse=True)
        return found

    def _status(self, files: TaskFiles, last_line: bool = True) -> TaskStatus:
        spec = files.spec() or {}
        alive = files.alive()
        exit_info = files.exit()  # after alive(): a run that just ended has written it
        result = files.result() if exit_info is not None else None
        texts = files.log_texts()
        now = _now()
        created = _parse(spec.get("created_at"))
        finished = _parse(exit_info.get("finished_at")) if exit_info else None
        started = _parse((_read_json(files.path / "runner.json") or {}).get("started_at")) or created
        phase: Phase
        reason = None
        if exit_info is not None:
            phase = RESULT_PHASES.get(result.status, "failed") if result else "failed"
            reason = "DeadlineExceeded" if phase == "timed_out" else None
            if result is None:
                reason = "NoResult"
            if files.cancelling():  # as a Job being deleted: cancelled, whatever the run ended with
                phase, reason = "cancelled", CANCELLING
        elif alive:
            phase = "running"
        elif files.process() is None:
            phase = "pending"
        else:
            phase, reason = "failed", "ProcessLost"
        step = None
        for text in reversed(texts):
            step = logs.runner_step(text)
            if step:
                break
        pid = (files.process() or {}).get("pid")
        return TaskStatus(
            task_id=spec.get("task_id", ""),
            environment=self.environment,
            namespace=self.namespace,
            job=files.job,
            backend="local",
            base_branch=spec.get("base_branch"),
            branch=spec.get("task_branch"),
            repo=spec.get("repo"),
            description=spec.get("description"),
            phase=phase,
            step=step,
            reason=reason,
            created_at=created,
            started_at=started,
            finished_at=finished,
            age_seconds=(now - created).total_seconds() if created else None,
            duration_seconds=((finished or now) - started).total_seconds() if started else None,
            node=os.uname().nodename,
            pods=[f"pid-{pid}"] if pid else [],
            exit_code=exit_info.get("exit_code") if exit_info else None,
            last_log_line=(texts[-1] if texts else None) if last_line else None,
            result=result,
        )

    def list_tasks(self) -> list[TaskStatus]:
        return [self._status(files) for files in self._tasks()]

    def _matching(self, ref: TaskRef) -> list[TaskFiles]:
        found = []
        for files in self._tasks():
            spec = files.spec() or {}
            if spec.get("task_id") == ref.task_id and ref.base_branch in (None, spec.get("base_branch")):
                found.append(files)
        return found

    def _one(self, ref: TaskRef) -> TaskFiles | None:
        found = self._matching(ref)
        if len(found) > 1:
            branches = sorted((f.spec() or {}).get("base_branch", "?") for f in found)
            raise InvalidInput(
                "base_branch",
                f"task {ref.task_id} exists on several feature branches ({', '.join(branches)}) and none was given",
                f"one of {', '.join(branches)}",
            )
        return found[0] if found else None

    def status(self, ref: TaskRef) -> TaskStatus:
        files = self._one(ref)
        if files is None:
            on = f" on base branch {ref.base_branch!r}" if ref.base_branch else ""
            raise TaskNotFound(
                f"no task {ref.task_id}{on} in the local environment {self.environment!r} "
                f"(state in {self.state}). list_agents shows the tasks that exist."
            )
        return self._status(files)

    def read_logs(
        self, refs: Sequence[TaskRef] | None, positions: Mapping[str, StreamPosition], max_lines: int
    ) -> LogBatch:
        tasks = self._tasks()
        if refs is not None:
            tasks = [t for t in tasks if any(_matches(t, ref) for ref in refs)]
        statuses = {t.job: self._status(t, last_line=False) for t in tasks}
        streams: dict[str, list[logs.RawLine]] = {}
        complete: dict[str, bool] = {}
        for files in tasks:
            position = positions.get(files.job, StreamPosition())
            if position.done:
                continue
            finished = statuses[files.job].phase in FINISHED_PHASES  # checked before reading: no line lost
            streams[files.job] = logs.after_position(logs.parse_timestamped(files.job, files.log_body()), position)
            complete[files.job] = finished
        delivered, more = logs.merge_streams(streams, max_lines)
        new_positions = dict(positions)
        if refs is None:
            names = {t.job for t in tasks}
            new_positions = {k: v for k, v in new_positions.items() if k in names}
        for job, lines in streams.items():
            mine = [line for line in delivered if line.stream == job]
            done = complete[job] and len(mine) == len(lines)
            new_positions[job] = logs.advance(positions.get(job, StreamPosition()), mine, done)
        out = [
            LogLine(
                task_id=statuses[line.stream].task_id,
                job=line.stream,
                stream=line.stream,
                time=line.time,
                text=line.text,
            )
            for line in delivered
        ]
        states = [
            TaskLogState.from_status(s, drained=new_positions.get(s.job, StreamPosition()).done)
            for s in statuses.values()
        ]
        return LogBatch(lines=out, positions=new_positions, tasks=states, more=more)

    # -- cancel / cleanup ------------------------------------------------------------------------

    def cancel(self, ref: TaskRef) -> CancelResult:
        files = self._one(ref)
        if files is None:
            return CancelResult.nothing(ref.task_id, self.environment, self.namespace, "local run")
        pid = (files.process() or {}).get("pid")
        was_running = files.exit() is None and files.alive()
        with contextlib.suppress(OSError):  # gone meanwhile: the removal below says so
            _write_json(files.path / "cancel.json", _this_process())
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
        if spec.get("base_branch") and spec.get("task_id"):
            name = worktrees.worktree_name(spec["base_branch"], spec["task_id"])
            with contextlib.suppress(worktrees.WorktreeError):
                for tree in worktrees.list_task_worktrees(self.repo):
                    if tree.path.name == name:
                        worktrees.remove(self.repo, tree.path)
        shutil.rmtree(files.path, ignore_errors=True)

    def cleanup(self, older_than_seconds: float | None, dry_run: bool) -> CleanupResult:
        tasks = {files.job: files for files in self._tasks()}
        statuses = [self._status(files, last_line=False) for files in tasks.values()]
        taken, kept = cleanup_choice(statuses, older_than_seconds, _now())
        if not dry_run:
            for status in taken:
                self._remove(tasks[status.job])
        return CleanupResult.of(
            dry_run,
            [CleanupItem.from_status(status) for status in taken],
            kept,
            f"the local environment {self.environment!r}",
        )


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _matches(files: TaskFiles, ref: TaskRef) -> bool:
    spec = files.spec() or {}
    return spec.get("task_id") == ref.task_id and ref.base_branch in (None, spec.get("base_branch"))


# -- the supervisor --------------------------------------------------------------------------------


def supervise(task_dir: Path) -> int:
    """Run the runner for the task in `task_dir`: stamp its lines into `log`, forward SIGTERM and
    SIGINT, write `exit.json` when it ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server.runner", "run-task"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    _write_json(task_dir / "runner.json", {"pid": proc.pid, "started_at": _now().isoformat()})

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    assert proc.stdout is not None
    with open(task_dir / "log", "a", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(f"{_stamp(_now())} {line.rstrip(chr(10))}\n")
            log.flush()
    code = proc.wait()
    _write_json(task_dir / "exit.json", {"exit_code": code, "finished_at": _now().isoformat()})
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "supervise":
        sys.stderr.write("usage: python -m mcp_server.backends.local supervise TASK_STATE_DIR\n")
        raise SystemExit(2)
    raise SystemExit(supervise(Path(sys.argv[2])))
