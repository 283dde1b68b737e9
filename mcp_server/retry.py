"""A new attempt of a task that ended badly (failed, timed_out, budget_exceeded, stalled).

The new attempt gets the previous one's task context (model, agent, budgets, documents), attempt
number + 1 (its label `agentic-sdlc.dev/attempt` and its Job name end in `-a<n>`, so racing retries
name one Job and the backend's spawn is idempotent for it), and in its prompt the previous
attempt's error and the end of its log. It works on the same task branch: the runner continues
the branch's pushed head (the previous attempt's WIP commit included). `fresh` starts from the base
branch instead, on a branch of its own (`<task branch>-attempt-<n>`), since the runner never forces
a push. The previous attempts stay in the cluster (until their clean-up) behind the latest one,
which is the task that list_agents, get_task_status and the spec-kit files show.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_server import naming
from mcp_server.backends.base import Backend
from mcp_server.errors import InvalidInput
from mcp_server.models import RETRYABLE_PHASES, RetryRequest, StreamPosition, TaskHandle, TaskRef, TaskSpec, TaskStatus

NOTES_MARKER = "\n\n## Previous attempt"
"""Where the notes about earlier attempts begin in a retried task's description."""
LOG_TAIL_LINES = 40
LINE_MAX = 300
NOTES_MAX_BYTES = 6 * 1024


def check_retryable(status: TaskStatus) -> None:
    if status.phase in RETRYABLE_PHASES:
        return
    why = {
        "pending": "it has not finished (pending)",
        "running": "it is still running",
        "succeeded": "it succeeded",
        "cancelled": "it was cancelled",
    }.get(status.phase, f"it is {status.phase}")
    raise InvalidInput(
        "task_id",
        f"task {status.task_id} (attempt {status.attempt}) cannot be retried: {why}",
        "a task that failed, timed out, passed its budget or stalled (spawn_task_pod starts a new one)",
    )


def log_tail(backend: Backend, ref: TaskRef, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of the task's log (its latest attempt), each shortened, for the next prompt."""
    texts: list[str] = []
    for task in backend.log_streams([ref]):
        for stream in task.streams:
            read = backend.read_stream(stream.name, StreamPosition())
            texts += [line.text for line in read.lines]
    return [_readable(text) for text in texts[-lines:]]


def _readable(text: str) -> str:
    """A runner line as its message, an OpenCode event as its kind and text; cut to LINE_MAX."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "phase" in data and "msg" in data:
        text = f"[{data['phase']}] {data['msg']}"
    elif isinstance(data, dict) and "type" in data:
        part = data.get("part") if isinstance(data.get("part"), dict) else {}
        detail = part.get("text") or part.get("tool") or part.get("reason") or ""
        text = f"(opencode {data['type']}) {detail}".rstrip()
    text = " ".join(text.split())
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…"


def notes(status: TaskStatus, tail: list[str], fresh: bool) -> str:
    result = status.result
    error = (result.error if result is not None else None) or status.reason or status.phase
    where = (
        "This attempt starts again from the base branch (fresh): do not rely on the previous attempt's work."
        if fresh
        else f"Its work so far is on the task branch {status.branch} (a WIP commit, if it made changes), "
        "which is checked out for you: continue from it, do not start over."
    )
    head = (
        f"{NOTES_MARKER} ({status.attempt}) ended: {status.phase}\n\n"
        f"Error: {error}\n\n{where}\n\nThe end of its log:\n\n"
    )
    body = "\n".join(tail)
    while tail and len((head + body).encode()) > NOTES_MAX_BYTES:
        tail = tail[1:]
        body = "\n".join(tail)
    return head + "```\n" + body.replace("```", "'''") + "\n```\n"


def next_spec(backend: Backend, req: RetryRequest, status: TaskStatus) -> TaskSpec:
    """The spec of the task's next attempt."""
    ref = TaskRef(task_id=status.task_id, base_branch=status.base_branch)
    given = backend.task_spec(ref)
    context = given.context()
    attempt = status.attempt + 1
    original = context.description.split(NOTES_MARKER, 1)[0]
    branch = context.task_branch
    if req.fresh:
        branch = naming.validate_branch(f"{context.task_branch}-attempt-{attempt}", "task_branch")
    update: dict[str, Any] = {
        "description": original + notes(status, log_tail(backend, ref), req.fresh),
        "task_branch": branch,
        "deadline": None,  # the backend sets the new attempt's own
    }
    if req.max_cost is not None:
        update["max_cost"] = req.max_cost
    if req.max_tokens is not None:
        update["max_tokens"] = req.max_tokens
    timeout = req.timeout_minutes if req.timeout_minutes is not None else given.timeout_minutes
    fields = {**context.model_dump(), **update}
    earlier = [u for u in (status.previous_usage, status.usage) if u is not None]
    previous = earlier[0].plus(earlier[1]) if len(earlier) == 2 else (earlier[0] if earlier else None)
    return TaskSpec(**fields, attempt=attempt, previous_usage=previous, timeout_minutes=timeout,
                    ssh_secret=given.ssh_secret, title=status.description or original.splitlines()[0][:500])


def retry(backend: Backend, req: RetryRequest) -> tuple[TaskHandle, TaskStatus]:
    """Start the next attempt (or return it when a racing retry made it): its handle, and the
    status of the attempt it follows. A task that is not retryable is refused, nothing created."""
    status = backend.status(TaskRef(task_id=req.task_id, base_branch=req.base_branch))
    check_retryable(status)
    handle = backend.spawn(next_spec(backend, req, status))
    return handle, status
