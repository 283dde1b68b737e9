"""The spec-kit files as a projection of the cluster: every operation that observes tasks (logs,
list, status, spawn_async, cancel, `speckit sync`) hands what it saw to `Projector.observe`, which
makes each task's feature directory say what the cluster says, at once:

- `tasks_meta.json`: `in_progress` (with `started_at`) while it runs, `completed` (`completed_at`,
  `result_summary`) or `failed` (`completed_at`, `failure_reason`) once it ended, the project's own
  facts under `agentic_runner`; a task the fork's `add-task` did not register gets an entry;
- `.async_state/`: `delegation_completed/<id>.txt` or `delegation_errors/<id>.txt` once it ended
  (neither while it runs), and a delegation prompt when spec-kit wrote none (so `check-status`
  knows the task).

Everything written is derived from the task's status (times are the cluster's), so a second
server, or a second call, writes the same or nothing. A run's end is written into tasks_meta.json
once: what the main session records after it (a failed task done by hand, the fork's
`complete-task`) stays until the task runs again. Only tasks of this repository (the Job's repo
is this checkout's origin) whose feature directory exists inside it are projected: a Job of another
repository, or one whose annotation points elsewhere, is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mcp_server import naming, repo
from mcp_server.async_state import AsyncState, delegation_prompt, failure_reason, summary_of
from mcp_server.errors import InvalidInput
from mcp_server.models import FINISHED_PHASES, TaskStatus
from mcp_server.tasks_meta import OWN_KEY, TasksMeta, iso, locked, registration
from mcp_server.timeutil import now


def own_facts(status: TaskStatus) -> dict[str, Any]:
    """What tasks_meta.json keeps of a task under `agentic_runner`."""
    result = status.result
    facts: dict[str, Any] = {
        "job": status.job,
        "backend": status.backend,
        "environment": status.environment,
        "namespace": status.namespace,
        "branch": status.branch,
        "base_branch": status.base_branch,
        "phase": status.phase,
        "created_at": iso(status.created_at),
        "attempt": status.attempt,
    }
    if status.usage is not None and status.finished:  # not the usage so far: no rewrite per step
        facts["usage"] = status.usage.model_dump(mode="json")
    if result is not None:
        facts.update(
            result=result.status, head_sha=result.head_sha, commits=result.commits, pushed=result.pushed
        )
    return facts


def meta_change(status: TaskStatus) -> dict[str, Any]:
    """The upstream fields a task's status sets in its tasks_meta.json entry."""
    if not status.finished:
        return {"status": "in_progress", "completed_at": None}
    ended = iso(status.finished_at)
    if status.phase == "succeeded":
        return {"status": "completed", "completed_at": ended, "result_summary": summary_of(status)}
    return {"status": "failed", "completed_at": ended, "failure_reason": failure_reason(status)}


@dataclass(frozen=True)
class Projector:
    """Projects observed tasks into the spec-kit files of the repository at `root`. `origin` gives
    the repository's clone URL (None when it has none: then only local tasks are projected)."""

    root: Path
    origin: Callable[[], str | None]

    def feature_dir(self, status: TaskStatus) -> Path | None:
        """The task's feature directory in this checkout, or None when it is not ours to write."""
        if not status.feature_dir:
            return None
        try:
            naming.validate_task_id(status.task_id)
            path = repo.inside(self.root, status.feature_dir, "feature_dir")
        except InvalidInput:
            return None
        if not path.is_dir():
            return None
        origin = self.origin()
        if origin is None:
            return path if status.backend == "local" else None
        return path if status.repo == origin else None

    def project(self, status: TaskStatus) -> bool:
        """Make the task's spec-kit files say what `status` says. Returns whether a file changed.
        Under the feature's tasks_meta.json lock: an older observation of a run (running) never
        overwrites a newer one (finished) that another writer recorded meanwhile."""
        feature = self.feature_dir(status)
        if feature is None:
            return False
        meta = TasksMeta(feature)
        with locked(meta.path):
            return self._project(status, feature, meta)

    def _project(self, status: TaskStatus, feature: Path, meta: TasksMeta) -> bool:
        entry = meta.tasks().get(status.task_id, {})
        seen = entry.get(OWN_KEY) if isinstance(entry.get(OWN_KEY), dict) else {}
        same_run = seen.get("job") == status.job and seen.get("created_at") == iso(status.created_at)
        if same_run and seen.get("phase") in FINISHED_PHASES and not status.finished:
            return False
        # This end of this run is in the file already: what tasks_meta.json says of the task now is
        # someone else's word (the main session did a failed task by hand) and stays.
        projected = (same_run and status.finished and seen.get("phase") == status.phase
                     and ("result" in seen) == (status.result is not None))
        state = AsyncState(feature)
        changed = state.write_prompt_if_absent(
            delegation_prompt(
                status.task_id,
                status.description or status.task_id,
                status.feature_dir or "",
                status.branch or "",
                status.base_branch or "",
            ),
            status.task_id,
        )
        changed = state.record(status) or changed
        change = {} if projected else meta_change(status)
        if not entry.get("started_at"):
            change["started_at"] = iso(status.started_at or status.created_at)
        if entry.get("execution_mode") not in ("ASYNC", "SYNC"):
            change["execution_mode"] = "ASYNC"
        return (
            meta.update(
                status.task_id,
                change,
                register=registration(status.description or "", "", "ASYNC"),
                own=own_facts(status),
                now=now(),
                lock=False,
            )
            or changed
        )

    def observe(self, statuses: Iterable[TaskStatus]) -> list[str]:
        """Project every task; the ids of those whose files changed."""
        return [status.task_id for status in statuses if self.project(status)]


def register_doc_tasks(meta: TasksMeta, tasks: Iterable[Any], moment: datetime) -> None:
    """Give every task of tasks.md that tasks_meta.json does not know an entry as the fork's
    `add-task` makes it (with its execution mode; `[X]` ones as completed), so the fork's `summary`
    counts the whole feature and says all_done only when all of it is."""
    known = meta.tasks()
    for task in tasks:
        if task.task_id in known:
            continue
        change = {"status": "completed"} if task.done else {}
        meta.update(
            task.task_id,
            change,
            register=registration(task.description, "", task.execution_mode),
            now=moment,
        )


class ObservingSource:
    """A backend as the log relay's `LogSource` that projects every task it lists whose run or
    phase changed since it last did (so a task's end reaches the spec-kit files while a log call
    still waits for lines)."""

    def __init__(self, backend: Any, projector: Projector) -> None:
        self._backend = backend
        self._projector = projector
        self._seen: dict[str, tuple[Any, ...]] = {}

    def log_streams(self, refs: Any) -> Any:
        tasks = self._backend.log_streams(refs)
        for task in tasks:
            status = task.status
            key = (status.job, status.created_at, status.phase, status.result is not None)
            if self._seen.get(status.job) != key:
                self._seen[status.job] = key
                self._projector.observe([status])
        return tasks

    def read_stream(self, stream: str, position: Any, **options: Any) -> Any:
        return self._backend.read_stream(stream, position, **options)
