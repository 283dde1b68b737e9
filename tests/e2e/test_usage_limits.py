"""Usage, budgets and the idle limit with the real runner, the real OpenCode binary and a scripted
model whose configured prices make OpenCode compute a cost the test predicts from the scripted
token counts; real git remote. What is checked: the result JSON, the usage lines of the log, the
remote's branch (WIP pushed when the runner stopped the agent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.runner.usage import usage_from_lines
from tests.e2e.conftest import TASK_BRANCH
from tests.support.git_remotes import BareRemote
from tests.support.runner_harness import RunnerRun, task_context
from tests.support.scripted_model import Prices, ScriptedModel, Turn, Usage, edit, read, write

pytestmark = pytest.mark.e2e

PRICES = Prices(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
CLOSING = Path("/tmp/usage-closing.txt")


def predicted(turns: list[Turn]) -> dict[str, float]:
    """What OpenCode reports for these turns: input without the cached part, output without the
    reasoning part, reasoning billed at the output price, cache reads at theirs (USD per 1M)."""
    figures = {"input": 0, "output": 0, "reasoning": 0, "cache_read": 0, "cost": 0.0}
    for turn in turns:
        u = turn.usage or Usage()
        inp, out = u.prompt - u.cached, u.completion - u.reasoning
        figures["input"] += inp
        figures["output"] += out
        figures["reasoning"] += u.reasoning
        figures["cache_read"] += u.cached
        figures["cost"] += (inp * PRICES.input + (out + u.reasoning) * PRICES.output
                            + u.cached * PRICES.cache_read) / 1_000_000
    return figures


def usage_lines(run: RunnerRun) -> list[dict]:
    return [rec["usage"] for rec in run.runner_lines() if "usage" in rec]


def test_usage_is_what_opencode_computed_from_the_configured_prices(remote: BareRemote, harness) -> None:
    script = [
        Turn(text="Reading.", tool_calls=(read("README.md"),), usage=Usage(1000, 200, cached=300, reasoning=50)),
        Turn(tool_calls=(edit("README.md", "hello world", "hello agent"),), usage=Usage(2000, 100)),
        Turn(text="Changed the greeting.", usage=Usage(3000, 10, cached=1000)),
    ]
    with ScriptedModel(script, prices=PRICES) as model:
        run = harness(model).run(task_context(remote.url))
    result = run.result
    assert result is not None and result.status == "succeeded", run.stdout[-3000:]
    want = predicted(script)
    usage = result.usage
    assert usage is not None
    assert (usage.model, usage.steps, usage.tool_calls) == (model.model, 3, 2)
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cache_read_tokens,
            usage.cache_write_tokens) == (want["input"], want["output"], want["reasoning"], want["cache_read"], 0)
    assert usage.cost == pytest.approx(want["cost"], rel=1e-9, abs=1e-12)
    assert usage.total_tokens == 4700 + 260 + 50 + 1300
    # after every step the usage so far, as the server reads it from the log
    assert [u["steps"] for u in usage_lines(run)] == [1, 2, 3]
    assert usage_from_lines(run.lines) == usage
    assert json.loads(run.result_file_text)["usage"] == usage.model_dump(mode="json")


def looping(first: Turn, count: int, **turn: object) -> list[Turn]:
    """A first turn that changes a file, then `count` turns that keep reading it."""
    return [first, *[Turn(tool_calls=(read("README.md"),), **turn) for _ in range(count)]]  # type: ignore[arg-type]


FIRST = Turn(tool_calls=(write("NOTES.md", "work in progress\n"),), usage=Usage(1000, 100))


def assert_wip(run: RunnerRun, remote: BareRemote, status: str) -> None:
    result = run.result
    assert result is not None and result.status == status, run.stdout[-3000:]
    assert run.exit_code == result.exit_code
    assert result.pushed and result.commits == 1 and result.files_changed == ["NOTES.md"]
    assert remote.sha(TASK_BRANCH) == result.head_sha
    assert remote.log(TASK_BRANCH)[0].startswith("WIP T001: ")
    assert f"(stopped: {status})" in remote.log(TASK_BRANCH, "%b")[0]
    assert remote.show(TASK_BRANCH, "NOTES.md") == "work in progress\n"


def test_a_model_that_loops_past_the_cost_budget_is_stopped_with_its_work_pushed(remote: BareRemote, harness) -> None:
    # each step costs 1000 * 3 + 100 * 15 = 4500 micro-USD: the third passes $0.012
    script = looping(FIRST, 40, usage=Usage(1000, 100))
    with ScriptedModel(script, prices=PRICES) as model:
        run = harness(model).run(task_context(remote.url, max_cost=0.012))
    assert_wip(run, remote, "budget_exceeded")
    result = run.result
    assert result is not None and result.usage is not None
    assert result.usage.steps == 3 and result.usage.cost == pytest.approx(0.0135, rel=1e-9)
    assert result.error == "stopped: cost $0.0135 passed the budget max_cost $0.012"
    assert len(model.recorded.all()) < 10  # stopped, not run to the end of its script
    with CLOSING.open("a") as handle:
        handle.write("# the result JSON of a budget stop (tests/e2e/test_usage_limits.py)\n"
                     + run.result_file_text + "\n\n")


def test_the_token_budget_of_the_environment_applies_when_the_task_names_none(remote: BareRemote, harness) -> None:
    script = looping(FIRST, 40, usage=Usage(1000, 100))
    with ScriptedModel(script, prices=PRICES) as model:
        run = harness(model).run(task_context(remote.url), AGENTIC_BUDGET='{"max_cost": 0, "max_tokens": 2500}')
    assert_wip(run, remote, "budget_exceeded")
    assert run.result is not None and run.result.error == "stopped: 3300 tokens passed the budget max_tokens 2500"


def test_a_model_that_stops_answering_is_stalled_with_its_work_pushed(remote: BareRemote, harness) -> None:
    script = [FIRST, Turn(text="never seen", delay=600)]
    with ScriptedModel(script, prices=PRICES) as model:
        run = harness(model).run(task_context(remote.url, idle_timeout_seconds=5))
    assert_wip(run, remote, "stalled")
    assert run.result is not None and (run.result.error or "").startswith("stopped: no OpenCode event for ")
    assert "(idle limit 5s)" in (run.result.error or "")
    assert run.result.usage is not None and run.result.usage.steps == 1


def test_an_agent_that_keeps_producing_events_is_never_stalled(remote: BareRemote, harness) -> None:
    """Six slow answers (2 s each, 12 s in all) under an idle limit of 5 s: every answer's events
    restart the idle clock, so the task runs to its end."""
    script = [*looping(FIRST, 5, delay=2.0), Turn(text="Finished slowly.", delay=2.0)]
    with ScriptedModel(script, prices=PRICES) as model:
        run = harness(model).run(task_context(remote.url, idle_timeout_seconds=5))
    result = run.result
    assert result is not None and result.status == "succeeded", run.stdout[-3000:]
    assert result.usage is not None and result.usage.steps == 7
    assert result.summary == "Finished slowly."
    assert not remote.log(TASK_BRANCH)[0].startswith("WIP")
