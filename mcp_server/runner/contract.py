"""The task context: the JSON document the server hands to the runner (docs/contracts.md, "Task
context"). It belongs to the runner, like its result (`runner/result.py`): the server side imports
both from here, the runner imports nothing of the server's."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ContextFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path relative to the repository root.")
    content: str


class TaskContext(BaseModel):
    """The task context JSON the runner reads (AGENTIC_TASK_CONTEXT_FILE)."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    description: str
    repo: str
    base_branch: str
    task_branch: str
    environment: str
    model: str | None = None
    agent: str | None = None
    feature_dir: str | None = None
    context_files: list[ContextFile] = Field(default_factory=list)
    deadline: datetime | None = Field(
        None, description="When the task's time is up (the Job's creation + activeDeadlineSeconds).")
    max_cost: float | None = Field(
        None, ge=0, description="Budget in USD (OpenCode's computed cost); null: the environment's default.")
    max_tokens: int | None = Field(
        None, ge=1, description="Budget in tokens (all kinds); null: the environment's default.")
    idle_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop as `stalled` after this long without an OpenCode event; "
        "null: the environment's default.")
