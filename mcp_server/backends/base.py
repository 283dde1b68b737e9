"""Where a task runs: the protocol every backend implements, and the rules all backends share.

A backend serves ONE environment (its namespace / working directory). `mcp_server.service` builds one
per environment from the configuration (`backend: kubernetes|local`) and calls only these methods.
A backend class takes `(environment: config.EnvironmentSettings, settings: config.Settings)`:
`kubernetes.KubernetesBackend`, `local.LocalBackend`. Every method is synchronous (the MCP server
runs them in worker threads) and raises only `mcp_server.errors.RunnerError` subclasses:
`TaskNotFound`, `Forbidden`, `InvalidInput`, `Conflict`, `BackendUnavailable` (a passing failure:
the caller may retry; the backend decides which failures are passing).

Contract of each method:

- `branch_pattern()`: the pattern of task branch names, e.g. `agentic/{base_branch}/{task_id}`.
- `default_base_branch()`: the base branch to use when a task names none and the repository the
  server runs in is on no branch (the chart's `task.baseBranch`), or None.
- `repo_hosts()`: the repo host rules spawn checks a task's repo against (`mcp_server.repohosts`),
  or None where the developer's own machine does the git work (the local backend).
- `git_secrets()`: the git Secrets a task may select (`spec.ssh_secret`), the default first; empty
  when the environment has none to choose from.
- `spawn(spec)`: start the task. Idempotent: if the task (same `task_id` on the same
  `base_branch`) exists already, return its handle with `created=False` and start nothing, also when
  several identical calls race. `spec.task_branch` is already rendered and validated.
  `spec.timeout_minutes=None` means the environment's default.
- `list_tasks()`: every task of the environment, newest first, each with the last log line the
  backend holds without reading (none for a task nobody followed). One list request per kind of
  object, never a request per task.
- `list_page(limit, token)`: a page of at most `limit` tasks from `token` (the previous page's
  `next_token`) on, newest first within the page, with the token of the next page (None after the
  last); a token it did not hand out is refused with `InvalidInput` on `continue_token`.
- `status(ref)`: one task in full, with its result parsed from the runner's result JSON (termination
  message / result file, the log marker `AGENTIC_RESULT: ` as fallback). `TaskNotFound` if no task
  matches; `InvalidInput` on `base_branch` if the id exists on several feature branches (`pick_one`).
- `log_streams(refs)` and `read_stream(stream, position, limit=, fresh=)`: the raw log streams for
  the relay (`mcp_server.logs.relay`, which merges and tracks positions once for every backend).
- `cancel(ref)`: stop and delete the task (its Job and pods / its process). Idempotent: a task that
  is gone already gives a result with nothing deleted.
- `cleanup(older_than_seconds, dry_run)`: delete finished tasks finished longer ago than
  `older_than_seconds` (`None`: all finished ones); with `dry_run` only say what would go.
  Which tasks it takes is `cleanup_choice`, the same for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from mcp_server.errors import Conflict, InvalidInput
from mcp_server.logs.relay import LogSource
from mcp_server.models import (
    BackendName,
    CancelResult,
    CleanupResult,
    TaskHandle,
    TaskRef,
    TaskSpec,
    TaskStatus,
)
from mcp_server.repohosts import HostRule

T = TypeVar("T")

CONTINUE_ALLOWED = "the `continue_token` of the previous list_agents result of the same environment, or empty"


@dataclass(frozen=True)
class TaskPage:
    """One page of a listing: its tasks, the token of the next page (None: it was the last) and,
    when the backend knows it, how many tasks come after this page."""

    tasks: list[TaskStatus]
    next_token: str | None
    remaining: int | None = None


@runtime_checkable
class Backend(LogSource, Protocol):
    name: BackendName
    environment: str
    namespace: str
    spawn_parallelism: int
    """How many spawns of a burst (spawn_async_tasks) may run at once (1: one after the other)."""

    def branch_pattern(self) -> str: ...

    def default_base_branch(self) -> str | None: ...

    def repo_hosts(self) -> tuple[HostRule, ...] | None: ...

    def git_secrets(self) -> tuple[str, ...]: ...

    def spawn(self, spec: TaskSpec) -> TaskHandle: ...

    def list_tasks(self, read_tails: bool = False) -> list[TaskStatus]: ...

    def list_page(self, limit: int | None, token: str | None, read_tails: bool = False) -> TaskPage: ...

    def status(self, ref: TaskRef) -> TaskStatus: ...

    def cancel(self, ref: TaskRef) -> CancelResult: ...

    def cleanup(self, older_than_seconds: float | None, dry_run: bool) -> CleanupResult: ...

    def task_spec(self, ref: TaskRef) -> TaskSpec:
        """What the task's latest attempt was given (its context, time limit and git Secret): what a
        retry starts from."""
        ...


def page_of(tasks: Sequence[TaskStatus], limit: int | None, token: str | None) -> TaskPage:
    """A page of a listing that is read whole anyway (a local state directory): the token is the
    position of the page's first task, as `o<n>`."""
    start = 0
    if token:
        if not (token.startswith("o") and token[1:].isdigit() and int(token[1:]) <= len(tasks)):
            raise InvalidInput("continue_token", "it is not a continue token of this list", CONTINUE_ALLOWED)
        start = int(token[1:])
    end = len(tasks) if limit is None else min(len(tasks), start + limit)
    more = end < len(tasks)
    return TaskPage(list(tasks[start:end]), f"o{end}" if more else None, len(tasks) - end if more else None)


def check_same_repo(spec: TaskSpec, existing_repo: str | None) -> None:
    """An existing task of the same id and base branch is the same task only for the same repository."""
    if existing_repo != spec.repo:
        raise Conflict(
            f"task {spec.task_id} on {spec.base_branch!r} exists already for another "
            "repository; cancel it first or use another task id."
        )


def pick_one(ref: TaskRef, found: Sequence[T], base_branch: Callable[[T], str | None]) -> T | None:
    """The one task `ref` names among `found` (its matches), None when there is none; refused on
    `base_branch` when the id exists on several feature branches and `ref` names none."""
    if len(found) > 1:
        branches = sorted(base_branch(item) or "?" for item in found)
        raise InvalidInput(
            "base_branch",
            f"task {ref.task_id} exists on several feature branches ({', '.join(branches)}) and none was given",
            f"one of {', '.join(branches)}",
        )
    return found[0] if found else None


def cleanup_choice(
    statuses: Iterable[TaskStatus], older_than_seconds: float | None, now: datetime
) -> tuple[list[TaskStatus], int]:
    """The tasks a cleanup takes, and how many it keeps.

    It takes every finished task (succeeded, failed, timed out or cancelled) that finished at least
    `older_than_seconds` before `now` (`None`: every finished one), except a task whose cancel is
    under way (`TaskStatus.cancelling`: a Job being deleted, a local run being stopped), which goes
    by itself and is the cancel's to report. It keeps the others: pending, running, younger ones.
    """
    chosen: list[TaskStatus] = []
    kept = 0
    for status in statuses:
        old_enough = older_than_seconds is None or (
            status.finished_at is not None and (now - status.finished_at).total_seconds() >= older_than_seconds
        )
        if status.finished and not status.cancelling and old_enough:
            chosen.append(status)
        else:
            kept += 1
    return chosen, kept
