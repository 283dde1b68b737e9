"""A backend that keeps its tasks in memory: the service's rules tested without a cluster.

It implements the whole `Backend` protocol with plain data: tasks are `TaskStatus` records, each
task has one log stream (a list of timestamped lines the test appends to), and `failures` makes the
next calls of a method raise (e.g. a `BackendUnavailable` while an API server restarts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mcp_server import naming
from mcp_server.backends.base import TaskPage, cleanup_choice, page_of, pick_one
from mcp_server.errors import RunnerError, TaskNotFound
from mcp_server.logs.positions import parse_timestamped
from mcp_server.logs.relay import LogStream, StreamRead, TaskStreams
from mcp_server.models import (
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
from mcp_server.repohosts import HostRule


@dataclass
class MemoryTask:
    spec: TaskSpec
    status: TaskStatus
    log: list[str] = field(default_factory=list)


@dataclass
class MemoryBackend:
    environment: str = "dev"
    namespace: str = "memory"
    name: str = "kubernetes"
    spawn_parallelism: int = 1
    pattern: str = "agentic/{base_branch}/{task_id}"
    base_default: str | None = "main"
    tasks: dict[str, MemoryTask] = field(default_factory=dict)
    failures: dict[str, list[RunnerError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    hosts: tuple[HostRule, ...] | None = None
    secrets: tuple[str, ...] = ()

    def _call(self, method: str) -> None:
        self.calls.append(method)
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    # -- what tests drive ------------------------------------------------------------------------

    def log(self, task_id: str, *texts: str, at: str = "2026-01-01T00:00:{:02d}.000000000Z") -> None:
        task = next(t for t in self.tasks.values() if t.spec.task_id == task_id)
        for text in texts:
            task.log.append(f"{at.format(len(task.log))} {text}")

    def finish(self, task_id: str, phase: Phase = "succeeded") -> None:
        task = next(t for t in self.tasks.values() if t.spec.task_id == task_id)
        task.status = task.status.model_copy(update={"phase": phase, "finished_at": datetime.now(UTC)})

    def drop(self, task_id: str) -> None:
        job = next(j for j, t in self.tasks.items() if t.spec.task_id == task_id)
        del self.tasks[job]

    # -- the protocol ----------------------------------------------------------------------------

    def branch_pattern(self) -> str:
        return self.pattern

    def default_base_branch(self) -> str | None:
        return self.base_default

    def repo_hosts(self) -> tuple[HostRule, ...] | None:
        return self.hosts

    def git_secrets(self) -> tuple[str, ...]:
        return self.secrets

    def spawn(self, spec: TaskSpec) -> TaskHandle:
        self._call("spawn")
        job = naming.job_name(spec.task_id, spec.base_branch)
        existing = self.tasks.get(job)
        if existing is not None:
            return TaskHandle.from_status(existing.status)
        status = TaskStatus(
            task_id=spec.task_id,
            environment=self.environment,
            namespace=self.namespace,
            job=job,
            base_branch=spec.base_branch,
            branch=spec.task_branch,
            repo=spec.repo,
            description=spec.summary,
            feature_dir=spec.feature_dir,
            phase="running",
            created_at=datetime.now(UTC),
        )
        self.tasks[job] = MemoryTask(spec, status)
        return TaskHandle.from_status(status, created=True)

    def list_tasks(self, read_tails: bool = False) -> list[TaskStatus]:
        self._call("list_tasks")
        return [t.status for t in self.tasks.values()]

    def list_page(self, limit: int | None, token: str | None, read_tails: bool = False) -> TaskPage:
        return page_of(self.list_tasks(), limit, token)

    def _matching(self, ref: TaskRef) -> list[MemoryTask]:
        return [t for t in self.tasks.values() if ref.matches(t.spec.task_id, t.spec.base_branch)]

    def status(self, ref: TaskRef) -> TaskStatus:
        self._call("status")
        task = pick_one(ref, self._matching(ref), lambda t: t.spec.base_branch)
        if task is None:
            raise TaskNotFound.in_namespace([ref.task_id], self.environment, self.namespace, ref.base_branch)
        return task.status

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        self._call("log_streams")
        tasks = list(self.tasks.values())
        if refs is not None:
            tasks = [t for t in tasks if any(r.matches(t.spec.task_id, t.spec.base_branch) for r in refs)]
        return [TaskStreams(t.status, (LogStream(t.status.job, ended=t.status.finished),)) for t in tasks]

    def read_stream(
        self, stream: str, position: StreamPosition, *, limit: int | None = None, fresh: bool = False
    ) -> StreamRead:
        self._call("read_stream")
        task = self.tasks.get(stream)
        body = "".join(f"{line}\n" for line in task.log) if task is not None else ""
        return StreamRead(parse_timestamped(stream, body))

    def cancel(self, ref: TaskRef) -> CancelResult:
        self._call("cancel")
        task = pick_one(ref, self._matching(ref), lambda t: t.spec.base_branch)
        if task is None:
            return CancelResult.nothing(ref.task_id, self.environment, self.namespace, "task")
        del self.tasks[task.status.job]
        return CancelResult(
            task_id=ref.task_id,
            environment=self.environment,
            namespace=self.namespace,
            deleted_jobs=[task.status.job],
            deleted_pods=[],
            message=f"cancelled task {ref.task_id}",
        )

    def cleanup(self, older_than_seconds: float | None, dry_run: bool) -> CleanupResult:
        self._call("cleanup")
        taken, kept = cleanup_choice(self.list_tasks(), older_than_seconds, datetime.now(UTC))
        if not dry_run:
            for status in taken:
                del self.tasks[status.job]
        return CleanupResult.of(dry_run, [CleanupItem.from_status(s) for s in taken], kept, "memory")
