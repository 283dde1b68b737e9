"""The task context the runner reads (docs/contracts.md, "Task context"), checked before anything
is cloned: the runner refuses a context that would make it touch the base branch or leak a secret."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

from pydantic import ConfigDict, ValidationError, field_validator, model_validator

from mcp_server import naming
from mcp_server.errors import ConfigError, InvalidInput
from mcp_server.runner.contract import TaskContext


class RunnerContext(TaskContext):
    """The server's `TaskContext` plus what only the runner needs. Unknown keys are ignored, so an
    older runner image keeps working with a newer server.

    `deadline`: when the task's time is up (UTC, the Job's `activeDeadlineSeconds` counted from its
    creation). A SIGTERM from then on means `timed_out`, before it `cancelled`; the runner also stops
    by itself at the deadline."""

    model_config = ConfigDict(extra="ignore")

    deadline: datetime | None = None

    @field_validator("task_id")
    @classmethod
    def _task_id(cls, value: str) -> str:
        return _check(naming.validate_task_id, value, "task_id")

    @field_validator("base_branch", "task_branch")
    @classmethod
    def _branch(cls, value: str, info) -> str:  # type: ignore[no-untyped-def]
        return _check(naming.validate_branch, value, info.field_name)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return _check(naming.validate_repo_url, value, "repo")

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("invalid deadline: it has no time zone; allowed: an RFC 3339 time such as "
                             "2026-01-01T12:00:00Z")
        return value

    @model_validator(mode="after")
    def _branches(self) -> RunnerContext:
        if self.task_branch == self.base_branch:
            raise ValueError("invalid task_branch: it is the base branch; allowed: a branch of its own "
                             "that contains the task id, e.g. agentic/<base>/<task id>")
        if self.task_id not in self.task_branch:
            raise ValueError("invalid task_branch: it does not contain the task id; allowed: a branch "
                             "that contains the task id, e.g. agentic/<base>/<task id>")
        for item in self.context_files:
            path = PurePosixPath(item.path)
            if path.is_absolute() or ".." in path.parts or not item.path:
                raise ValueError("invalid context_files: a path is absolute or leaves the repository; "
                                 "allowed: paths relative to the repository root")
        return self


def _check(check, value: str, field: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return check(value, field)
    except InvalidInput as exc:
        raise ValueError(exc.message.rstrip(".")) from None


def load_context(path: Path) -> RunnerContext:
    """Read and check the task context file; a ConfigError says what is wrong with it."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the task context {path} (AGENTIC_TASK_CONTEXT_FILE): "
                          f"{exc.strerror or exc}") from None
    try:
        return RunnerContext.model_validate_json(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in error["loc"]) or "(document)"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(message if message.startswith("invalid ") else f"{where}: {message}")
        raise ConfigError(f"the task context {path} is not usable: " + "; ".join(problems)) from None


def partial_ids(path: Path) -> tuple[str, str, str]:
    """task_id, task_branch, base_branch as far as they can be read from a context that failed
    validation (for the result of a task whose context is broken)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", "", ""
    if not isinstance(data, dict):
        return "", "", ""
    pick = [data.get(k) for k in ("task_id", "task_branch", "base_branch")]
    return tuple(v if isinstance(v, str) and len(v) <= 200 else "" for v in pick)  # type: ignore[return-value]
