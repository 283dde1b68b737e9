"""Usage from OpenCode's events, budgets, the idle limit, and the server's reading of usage lines."""

from __future__ import annotations

import io
import json
import re
import threading
import time

from mcp_server.runner.limits import AgentLimits
from mcp_server.runner.output import Output
from mcp_server.runner.redact import Redactor
from mcp_server.runner.result import TaskResult, TaskUsage
from mcp_server.runner.stop import StopControl
from mcp_server.runner.usage import Budget, UsageMeter, usage_from_lines


def step(inp: int, out: int, cost: float, reasoning: int = 0, read: int = 0, write: int = 0) -> dict:
    return {"type": "step_finish", "sessionID": "ses_1", "part": {
        "type": "step-finish", "reason": "tool-calls", "cost": cost,
        "tokens": {"input": inp, "output": out, "reasoning": reasoning, "cache": {"read": read, "write": write}}}}


TOOL = {"type": "tool_use", "sessionID": "ses_1", "part": {"tool": "read", "state": {"status": "completed"}}}


def test_the_meter_sums_steps_tokens_cost_and_tool_calls() -> None:
    meter = UsageMeter("scripted/scripted-1")
    assert meter.observe({"type": "step_start", "part": {}}) is False
    assert meter.observe(TOOL) is False
    assert meter.observe(step(100, 20, 0.5, reasoning=3, read=7, write=1)) is True
    assert meter.observe(step(50, 10, 0.25)) is True
    meter.observe({"type": "step_finish", "part": {"tokens": "nonsense", "cost": -4}})  # tolerated: a step, no figures
    assert meter.usage == TaskUsage(model="scripted/scripted-1", steps=3, tool_calls=1, input_tokens=150,
                                    output_tokens=30, reasoning_tokens=3, cache_read_tokens=7,
                                    cache_write_tokens=1, cost=0.75)
    assert meter.usage.total_tokens == 191


def test_budget_names_the_figure_that_passed() -> None:
    usage = TaskUsage(input_tokens=900, output_tokens=200, cost=0.3)
    assert Budget().passed(usage) is None
    assert Budget(max_cost=0.3).passed(usage) is None  # at the budget is within it
    assert Budget(max_cost=0.25).passed(usage) == "cost $0.3 passed the budget max_cost $0.25"
    assert Budget(max_tokens=1000).passed(usage) == "1100 tokens passed the budget max_tokens 1000"


def limits(budget: Budget, idle: float | None) -> tuple[AgentLimits, StopControl, io.StringIO]:
    stream = io.StringIO()
    stop = StopControl()
    return AgentLimits(Output(Redactor.from_environ({}), stream), stop, "m", budget, idle), stop, stream


def test_a_step_past_the_budget_stops_the_task_and_each_step_logs_the_usage_so_far() -> None:
    lim, stop, stream = limits(Budget(max_cost=1.0), None)
    lim.observe(step(10, 5, 0.6))
    assert not stop.requested
    lim.observe(step(10, 5, 0.6))
    assert (stop.reason, stop.detail) == ("budget_exceeded", "cost $1.2 passed the budget max_cost $1")
    lines = stream.getvalue().splitlines()
    assert usage_from_lines(lines) == TaskUsage(model="m", steps=2, input_tokens=20, output_tokens=10, cost=1.2)
    assert [json.loads(line).get("usage", {}).get("steps") for line in lines][:2] == [1, 2]


def test_no_event_for_the_idle_limit_stops_the_task_as_stalled() -> None:
    lim, stop, _ = limits(Budget(), 0.3)
    with lim:
        lim.observe({"type": "step_start", "part": {}})
        assert stop.event.wait(10)
    assert stop.reason == "stalled" and "idle limit 0.3s" in stop.detail


def test_events_keep_an_agent_from_being_stalled() -> None:
    lim, stop, _ = limits(Budget(), 0.5)
    done = threading.Event()
    with lim:
        end = time.monotonic() + 2.0  # four times the idle limit in all
        while time.monotonic() < end:
            lim.observe({"type": "text", "part": {"text": "x"}})
            time.sleep(0.05)
        done.set()
    assert not stop.requested


def test_result_carries_the_usage_and_the_new_statuses() -> None:
    usage = TaskUsage(model="m", steps=1, input_tokens=1, cost=0.1)
    result = TaskResult(task_id="T1", status="budget_exceeded", branch="b/T1", base="b", usage=usage)
    assert result.exit_code == 3
    assert TaskResult(task_id="T1", status="stalled", branch="b/T1", base="b").exit_code == 4
    back = TaskResult.model_validate_json(result.to_json())
    assert back.usage == usage


def test_usage_lines_are_read_tolerantly() -> None:
    assert usage_from_lines(["plain", '{"phase": "agent", "msg": "x", "usage": "no"}', '{"usage": {}}']) is None
    line = '{"phase": "agent", "msg": "usage so far", "usage": {"steps": 2, "cost": 0.5, "future_key": 1}}'
    assert usage_from_lines([line, "later line"]) == TaskUsage(steps=2, cost=0.5)


def test_the_environments_budget_comes_from_agentic_budget_and_bad_ones_are_refused() -> None:
    import pytest

    from mcp_server.errors import ConfigError
    from mcp_server.runner.settings import Settings

    settings = Settings.from_environ({"AGENTIC_BUDGET": '{"max_cost": 2.5, "max_tokens": 200000}'})
    assert (settings.max_cost, settings.max_tokens) == (2.5, 200000)
    assert (Settings.from_environ({"AGENTIC_BUDGET": '{"max_cost": 0}'}).max_cost) is None  # 0: no limit
    assert Settings.from_environ({"AGENTIC_IDLE_TIMEOUT_SECONDS": "30"}).idle_timeout_seconds == 30
    for raw, message in (
        ('{"max_tokens": 1.5}', "invalid AGENTIC_BUDGET: max_tokens is not allowed; allowed: a JSON object"),
        ('{"max_cost": -1}', "invalid AGENTIC_BUDGET: max_cost is not allowed"),
        ('{"tokens": 5}', "invalid AGENTIC_BUDGET: unknown key 'tokens'"),
        ("[1]", "invalid AGENTIC_BUDGET: it is a JSON list; allowed: a JSON object {\"max_cost\""),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.from_environ({"AGENTIC_BUDGET": raw})
