"""The table of agents that `agentic-runner list` prints and `list --watch` redraws: one row per
task (phase, step, age, attempt, usage so far or final, last line or result) and the usage totals."""

from __future__ import annotations

from mcp_server.models import AgentInfo, AgentList, TaskUsage

HEADER = ["TASK", "ENV", "PHASE", "BRANCH", "AGE", "DURATION", "NODE", "TRY", "STEP", "TOKENS", "COST",
          "LAST LINE / RESULT"]


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def cut(text: str | None, size: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= size else text[: size - 1] + "…"


def tokens(usage: TaskUsage | None) -> str:
    if usage is None:
        return "-"
    n = usage.total_tokens
    return f"{n / 1_000_000:.1f}M" if n >= 1_000_000 else f"{n / 1000:.1f}k" if n >= 10_000 else str(n)


def cost(usage: TaskUsage | None) -> str:
    return "-" if usage is None else f"${usage.cost:.4f}"


def row(a: AgentInfo, last_width: int = 60) -> list[str]:
    return [
        a.task_id,
        a.environment,
        a.phase,
        a.branch or "-",
        age(a.age_seconds),
        age(a.duration_seconds),
        a.node or "-",
        str(a.attempt),
        a.step or "-",
        tokens(a.usage),
        cost(a.usage),
        cut(a.result_summary or a.last_log_line, last_width),
    ]


def totals_lines(result: AgentList) -> list[str]:
    """`total: ...` and one line per environment and feature, when any usage is known."""
    t = result.totals
    if not t.by_environment:
        return []

    def fig(u: TaskUsage) -> str:
        return f"{u.steps} steps, {u.tool_calls} tool calls, {tokens(u)} tokens, {cost(u)}"

    lines = [f"total: {fig(t.all)}"]
    lines += [f"  environment {name}: {fig(u)}" for name, u in sorted(t.by_environment.items())]
    lines += [f"  feature {name}: {fig(u)}" for name, u in sorted(t.by_feature.items())]
    return lines


def render(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in rows]
