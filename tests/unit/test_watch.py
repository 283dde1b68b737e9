"""The live table's frames (the terminal test drives it under tmux: tests/integration/test_usage_retry.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from mcp_server import watch
from mcp_server.models import AgentInfo, AgentList, TaskUsage, UsageTotals

NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def listing(*phases: str) -> AgentList:
    usage = TaskUsage(steps=2, tool_calls=1, input_tokens=100, output_tokens=20, cost=0.5)
    agents = [AgentInfo(task_id=f"T{i}", environment="dev", job=f"j{i}", phase=p, step="agent", usage=usage,  # type: ignore[arg-type]
                        last_log_line="x" * 300) for i, p in enumerate(phases)]
    counts = {p: phases.count(p) for p in set(phases)}
    return AgentList(environments=["dev"], agents=agents, counts=counts, totals=UsageTotals.of(agents))


def test_a_plain_frame_has_no_escape_sequences_and_the_totals() -> None:
    lines = watch.frame(listing("running", "failed"), None, False, NOW)
    assert lines[0].startswith("agentic-runner: dev at 12:00:05 UTC: ")
    assert lines[1].split()[:11] == ["TASK", "ENV", "PHASE", "BRANCH", "AGE", "DURATION", "NODE", "TRY", "STEP",
                                    "TOKENS", "COST"]
    assert lines[2].split()[:3] == ["T0", "dev", "running"] and lines[3].split()[2] == "failed"
    assert lines[4] == "total: 4 steps, 2 tool calls, 240 tokens, $1.0000"
    assert not any("\x1b" in line for line in lines)


def test_a_terminal_frame_is_cut_to_the_width_and_coloured_by_phase() -> None:
    lines = watch.frame(listing("running", "budget_exceeded"), 80, True, NOW)
    assert "\x1b[36mrunning\x1b[0m" in lines[2] and "\x1b[35mbudget_exceeded\x1b[0m" in lines[3]
    assert all(len(line.replace(watch.RESET, "").replace("\x1b[36m", "").replace("\x1b[35m", "")) <= 80
               for line in lines)


def test_watch_ends_when_every_task_has_ended_and_says_whether_all_succeeded() -> None:
    frames = iter([listing("running"), listing("succeeded", "stalled")])
    out = io.StringIO()
    code = watch.watch(lambda: next(frames), "json", 0.2, out, keys_from=io.StringIO())
    assert code == 1
    docs = [AgentList.model_validate_json(line) for line in out.getvalue().splitlines()]
    assert [[a.phase for a in d.agents] for d in docs] == [["running"], ["succeeded", "stalled"]]
    frames = iter([listing("succeeded")])
    assert watch.watch(lambda: next(frames), "table", 0.2, io.StringIO(), keys_from=io.StringIO()) == 0
