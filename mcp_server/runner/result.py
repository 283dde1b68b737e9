"""The runner's result JSON (docs/contracts.md, "Runner output").

Written to `AGENTIC_RESULT_FILE` (the container's termination message) and as the last stdout line
behind `AGENTIC_RESULT: `. The kubelet keeps at most 4096 bytes of a termination message, so
`to_json()` shortens `summary`, then `files_changed`, then `error` until the document fits.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_server.naming import RESULT_MARKER

ResultStatus = Literal[
    "succeeded", "failed", "no_changes", "timed_out", "cancelled", "budget_exceeded", "stalled"
]

TERMINATION_MESSAGE_LIMIT = 4096
SUMMARY_MAX = 2000
ERROR_MAX = 1000

# Exit codes: 0 only for succeeded and no_changes (contract); the others tell the reason apart.
EXIT_CODES: dict[str, int] = {
    "succeeded": 0,
    "no_changes": 0,
    "failed": 1,
    "timed_out": 124,
    "cancelled": 130,
    "budget_exceeded": 3,
    "stalled": 4,
}


class TaskUsage(BaseModel):
    """What the agent used, summed over OpenCode's `step_finish` events: tokens by kind, the cost
    OpenCode computed from the model's configured prices (USD), steps and tool calls."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    steps: int = Field(0, ge=0, description="Agent steps (model turns) that finished.")
    tool_calls: int = Field(0, ge=0)
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    reasoning_tokens: int = Field(0, ge=0)
    cache_read_tokens: int = Field(0, ge=0)
    cache_write_tokens: int = Field(0, ge=0)
    cost: float = Field(0.0, ge=0, description="USD, as OpenCode computed it.")

    @property
    def total_tokens(self) -> int:
        """Every token the model read or wrote: what `max_tokens` limits."""
        return (self.input_tokens + self.output_tokens + self.reasoning_tokens
                + self.cache_read_tokens + self.cache_write_tokens)

    def plus(self, other: TaskUsage) -> TaskUsage:
        """The sum of two (a feature's, an environment's total); the model kept when both agree."""
        return TaskUsage(
            model=self.model if self.model == other.model else None,
            steps=self.steps + other.steps,
            tool_calls=self.tool_calls + other.tool_calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost=round(self.cost + other.cost, 10),
        )


class TaskResult(BaseModel):
    """Exactly the fields of the contract. `task_id`, `branch`, `base` are empty strings only when
    the task context itself could not be read."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    status: ResultStatus
    branch: str
    base: str
    commits: int = Field(0, ge=0, description="Commits on the task branch that are not on the base.")
    head_sha: str | None = None
    pushed: bool = False
    files_changed: list[str] = Field(default_factory=list)
    summary: str = ""
    error: str | None = None
    usage: TaskUsage | None = Field(None, description="What the agent used (null when OpenCode did not run).")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON of at most `limit` bytes (UTF-8): summary first, then the file list (ending in
        a "... N more" item) and last the error are shortened until it fits."""
        summary = _cut(self.summary, SUMMARY_MAX) or ""
        error = _cut(self.error, ERROR_MAX)
        files = self.files_changed
        shown = list(files)

        def render() -> str:
            update = {"summary": summary, "error": error, "files_changed": shown}
            return _dumps(self.model_copy(update=update))

        text = render()
        while len(text.encode()) > limit and summary:
            summary = _cut(summary, max(0, len(summary) - (len(text.encode()) - limit) - 8)) or ""
            text = render()
        keep = len(files)
        while len(text.encode()) > limit and keep > 0:
            keep //= 2
            shown = [*files[:keep], f"... {len(files) - keep} more"]
            text = render()
        while len(text.encode()) > limit and error:
            error = _cut(error, len(error) // 2) if len(error) > 16 else None
            text = render()
        return text

    def marker_line(self) -> str:
        return RESULT_MARKER + self.to_json()


def _dumps(result: TaskResult) -> str:
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    if limit < 2:
        return ""
    return text[: limit - 1].rstrip() + "…"
