"""What log lines mean: the runner's own step lines and its result line (`AGENTIC_RESULT: {...}`),
and the result JSON of a termination message. Read tolerantly: a newer runner may add keys."""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from mcp_server.naming import RESULT_MARKER
from mcp_server.runner.result import TaskResult


def runner_step(text: str) -> str | None:
    """The `phase` of one of the runner's own JSON lines (setup, clone, ..., done), else None."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("phase"), str) and "msg" in data:
        return data["phase"]
    return None


def parse_result(text: str | None) -> TaskResult | None:
    """The runner's result JSON (termination message or the text after the log marker), tolerantly."""
    if not text:
        return None
    text = text.strip()
    if text.startswith(RESULT_MARKER.strip()):
        text = text[len(RESULT_MARKER.strip()) :].strip()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            return None
        # Keys a newer runner may add are ignored; the contract's own fields must be valid.
        return TaskResult.model_validate({k: v for k, v in data.items() if k in TaskResult.model_fields})
    except (ValueError, ValidationError):
        return None


def result_from_lines(texts: Iterable[str]) -> TaskResult | None:
    """The last `AGENTIC_RESULT: {...}` line of a log, parsed."""
    found = None
    for text in texts:
        if text.startswith(RESULT_MARKER):
            found = parse_result(text[len(RESULT_MARKER) :]) or found
    return found


