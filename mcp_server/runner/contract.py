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
