"""What the agent uses, read from OpenCode's own JSON events (`opencode run --format json`).

Each finished model turn is a `step_finish` event whose part carries the turn's tokens and the cost
OpenCode computed from the model's configured prices:

    {"type": "step_finish", ..., "part": {"type": "step-finish", "reason": "tool-calls", "cost": 0.0042,
     "tokens": {"input": 120, "output": 40, "reasoning": 0, "cache": {"read": 0, "write": 0}}}}

and each finished tool call is a `tool_use` event. `UsageMeter` sums them; after every step the
runner logs the sum so far as one of its JSON lines with a `usage` key (`usage_line_fields`), so the
server knows a running task's usage from the end of its log (`usage_from_lines`), and the final sum
goes into the result JSON (`TaskResult.usage`).

A budget (`Budget`: max_cost in USD, max_tokens) is checked after every step: `Budget.passed`
names the figure that went over it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_server.runner.result import TaskUsage

USAGE_KEY = "usage"


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def _amount(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


class UsageMeter:
    """The running sum of one OpenCode run. `observe(event)` returns True when the event finished a
    step (then the sum changed)."""

    def __init__(self, model: str | None) -> None:
        self._usage = TaskUsage(model=model)

    @property
    def usage(self) -> TaskUsage:
        return self._usage.model_copy()

    def observe(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        part = event.get("part") if isinstance(event.get("part"), Mapping) else {}
        u = self._usage
        if kind == "tool_use":
            u.tool_calls += 1
            return False
        if kind != "step_finish":
            return False
        tokens = part.get("tokens") if isinstance(part.get("tokens"), Mapping) else {}
        cache = tokens.get("cache") if isinstance(tokens.get("cache"), Mapping) else {}
        u.steps += 1
        u.input_tokens += _count(tokens.get("input"))
        u.output_tokens += _count(tokens.get("output"))
        u.reasoning_tokens += _count(tokens.get("reasoning"))
        u.cache_read_tokens += _count(cache.get("read"))
        u.cache_write_tokens += _count(cache.get("write"))
        u.cost = round(u.cost + _amount(part.get("cost")), 10)
        return True


@dataclass(frozen=True)
class Budget:
    max_cost: float | None = None
    max_tokens: int | None = None

    def passed(self, usage: TaskUsage) -> str | None:
        """Which figure went over the budget, in words; None while within it."""
        if self.max_cost is not None and usage.cost > self.max_cost:
            return f"cost ${usage.cost:.6g} passed the budget max_cost ${self.max_cost:.6g}"
        if self.max_tokens is not None and usage.total_tokens > self.max_tokens:
            return f"{usage.total_tokens} tokens passed the budget max_tokens {self.max_tokens}"
        return None


def describe(usage: TaskUsage) -> str:
    """One line for humans: `3 steps, 2 tool calls, 1,234 tokens, $0.0123`."""
    return (f"{usage.steps} step(s), {usage.tool_calls} tool call(s), {usage.total_tokens:,} tokens, "
            f"${usage.cost:.4f}")


def usage_line_fields(usage: TaskUsage) -> dict[str, Any]:
    """The extra fields of the runner's cumulative usage line."""
    return {USAGE_KEY: usage.model_dump(mode="json")}


def is_usage_line(text: str) -> bool:
    """Whether a log line may be one of the runner's usage lines (a cheap test, no parsing)."""
    return text.startswith("{") and f'"{USAGE_KEY}"' in text


def usage_of_line(text: str) -> TaskUsage | None:
    """The usage of one of the runner's own JSON lines, when it carries one (read tolerantly)."""
    if not is_usage_line(text):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or "phase" not in data or not isinstance(data.get(USAGE_KEY), dict):
        return None
    try:
        return TaskUsage.model_validate(data[USAGE_KEY])
    except ValueError:
        return None


def usage_from_lines(texts: Iterable[str]) -> TaskUsage | None:
    """The latest usage line among these log lines (the usage so far of a running task)."""
    found = None
    for text in texts:
        found = usage_of_line(text) or found
    return found
