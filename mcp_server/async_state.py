"""The `<feature>/.async_state/` hand-off files of spec-kit's implement flow (the fork's
`tasks-meta-utils.sh`): `delegation_prompts/<id>.md` is written by `dispatch-async` when a task is
handed over (its `check-status` answers `no_job` without it); `delegation_completed/<id>.txt` makes
`check-status` answer `completed`, `delegation_errors/<id>.txt` `failed`, neither `running`.

What goes into the completion and error files is a function of the task's status alone (no clock,
no host), so two servers that see the same task write the same bytes; a file is rewritten only when
its text changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_server import naming
from mcp_server.models import TaskStatus
from mcp_server.tasks_meta import write_atomic

STATE_DIR = ".async_state"
PROMPTS, COMPLETED, ERRORS = "delegation_prompts", "delegation_completed", "delegation_errors"
PROMPT_MAX_BYTES = 64 * 1024


def failure_reason(status: TaskStatus) -> str:
    """Why a finished task did not succeed, in one line."""
    result = status.result
    if status.phase == "cancelled":
        return "cancelled" + (f": {result.error}" if result is not None and result.error else "")
    if status.phase == "timed_out":
        return "timed out" + (f" ({status.reason})" if status.reason else "")
    if status.phase in ("budget_exceeded", "stalled") and result is not None and result.error:
        return f"{status.phase}: {result.error}"
    if result is not None and result.error:
        return result.error
    return status.reason or status.phase


def summary_of(status: TaskStatus) -> str:
    result = status.result
    if result is not None and result.summary:
        return result.summary
    if result is not None and result.status == "no_changes":
        return "no changes"
    return f"task {status.task_id} {status.phase}"


def _report(status: TaskStatus) -> str:
    result = status.result
    lines = [f"task: {status.task_id}", f"status: {status.phase}"]
    if result is not None:
        lines.append(f"result: {result.status}")
    lines += [f"branch: {status.branch or ''}", f"base_branch: {status.base_branch or ''}"]
    if result is not None:
        lines += [
            f"head_sha: {result.head_sha or ''}",
            f"commits: {result.commits}",
            f"pushed: {str(result.pushed).lower()}",
            f"files: {', '.join(result.files_changed)}",
        ]
    usage = status.usage
    if usage is not None:
        lines += [
            f"usage: {usage.steps} steps, {usage.tool_calls} tool calls, model {usage.model or ''}",
            f"tokens: {usage.total_tokens} (input {usage.input_tokens}, output {usage.output_tokens}, "
            f"reasoning {usage.reasoning_tokens}, cache read {usage.cache_read_tokens}, "
            f"cache write {usage.cache_write_tokens})",
            f"cost: {usage.cost:.6f} USD",
        ]
    if status.attempt > 1:
        lines.append(f"attempt: {status.attempt}")
    lines += [
        f"environment: {status.environment} (namespace {status.namespace})",
        f"job: {status.job}",
        f"finished_at: {status.finished_at.isoformat() if status.finished_at else ''}",
    ]
    if status.phase == "succeeded":
        lines.append(f"summary: {summary_of(status)}")
    else:
        lines.append(f"reason: {failure_reason(status)}")
        if result is not None and result.summary:
            lines.append(f"summary: {result.summary}")
    return "\n".join(line.replace("\r", " ") for line in lines) + "\n"


@dataclass(frozen=True)
class AsyncState:
    """The `.async_state/` files of one feature directory."""

    feature_dir: Path

    @property
    def root(self) -> Path:
        return self.feature_dir / STATE_DIR

    def _path(self, kind: str, task_id: str, suffix: str) -> Path:
        return self.root / kind / f"{naming.validate_task_id(task_id)}{suffix}"

    def prompt_path(self, task_id: str) -> Path:
        return self._path(PROMPTS, task_id, ".md")

    def completed_path(self, task_id: str) -> Path:
        return self._path(COMPLETED, task_id, ".txt")

    def error_path(self, task_id: str) -> Path:
        return self._path(ERRORS, task_id, ".txt")

    def ensure_dirs(self) -> None:
        """The three directories, as the fork's `_ensure_async_dirs` makes them."""
        for kind in (PROMPTS, COMPLETED, ERRORS):
            (self.root / kind).mkdir(parents=True, exist_ok=True)

    def prompt(self, task_id: str) -> str | None:
        """The delegation prompt spec-kit wrote for the task (cut to PROMPT_MAX_BYTES with a note),
        or None when there is none (or it is not a readable UTF-8 regular file)."""
        path = self.prompt_path(task_id)
        try:
            if path.is_symlink() or not path.is_file():
                return None
            data = path.read_bytes()
        except OSError:
            return None
        text = data[:PROMPT_MAX_BYTES].decode("utf-8", errors="ignore")
        if len(data) > PROMPT_MAX_BYTES:
            text += (
                f"\n\n[The delegation prompt was cut here: it has {len(data)} bytes, at most "
                f"{PROMPT_MAX_BYTES} are handed over. Read the rest in {path.name} under "
                f"{STATE_DIR}/{PROMPTS}/ of the feature directory.]\n"
            )
        return text.strip() or None

    def write_prompt_if_absent(self, text: str, task_id: str) -> bool:
        """Write the task's delegation prompt unless spec-kit (or anyone) wrote one already."""
        path = self.prompt_path(task_id)
        if path.exists() or path.is_symlink():
            return False
        self.ensure_dirs()
        write_atomic(path, text)
        return True

    def _set(self, path: Path, text: str | None) -> bool:
        """Make `path` hold `text` (None: not exist). Returns whether anything changed."""
        if text is None:
            if path.exists() or path.is_symlink():
                path.unlink()
                return True
            return False
        try:
            if not path.is_symlink() and path.read_text(encoding="utf-8") == text:
                return False
        except OSError:
            pass
        self.ensure_dirs()
        if path.is_symlink():
            path.unlink()
        write_atomic(path, text)
        return True

    def record(self, status: TaskStatus) -> bool:
        """The task's completion or error file as its status says (a task that runs has neither).
        Returns whether a file changed."""
        report = _report(status) if status.finished else None
        succeeded = status.phase == "succeeded"
        changed = self._set(self.completed_path(status.task_id), report if succeeded else None)
        return self._set(self.error_path(status.task_id), None if succeeded else report) or changed

    def check_status(self, task_id: str) -> str:
        """What the fork's `check-status <id> <feature>` answers: no_job, completed, failed, running."""
        if not self.prompt_path(task_id).is_file():
            return "no_job"
        if self.completed_path(task_id).is_file():
            return "completed"
        if self.error_path(task_id).is_file():
            return "failed"
        return "running"


def delegation_prompt(task_id: str, description: str, feature_dir: str, branch: str, base_branch: str) -> str:
    """A delegation request in the shape of the fork's `delegation-template.md`, for a task that was
    handed to an agent without `dispatch-async` (so `check-status` knows the task)."""
    return (
        "# Delegation Request\n\n"
        f"**Task ID:** {task_id}\n"
        "**Agent Type:** agentic-runner\n\n"
        f"## Description\n{description}\n\n"
        f"## Context\nThe feature's documents are in {feature_dir}. The agent works on the branch "
        f"{branch}, made from the feature branch {base_branch}.\n\n"
        "## Requirements\nDo this task only; the other tasks of the feature are done elsewhere.\n\n"
        "## Execution Instructions\nCommit the work; the runner pushes the task branch.\n"
    )
