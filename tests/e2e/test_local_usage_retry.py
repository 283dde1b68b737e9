"""Usage, budgets, the idle limit and retry on the local backend, through the service (the calls the
MCP tools and the CLI make): the real runner in worktrees of a developer's clone, the real OpenCode,
a scripted model with configured prices, a real bare remote whose branch history is the oracle."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server import cli
from mcp_server.errors import InvalidInput
from mcp_server.models import FINISHED_PHASES, ListAgentsRequest, RetryRequest, SpawnTaskRequest, TaskRequest
from tests.e2e import test_local_backend as local_e2e
from tests.e2e.test_local_backend import make_service, wait_for
from tests.support.git_remotes import BareRemote
from tests.support.scripted_model import (
    Prices,
    Script,
    ScriptedModel,
    Turn,
    Usage,
    conversation_text,
    edit,
    read,
    write,
)

pytestmark = pytest.mark.e2e
developer_repo = local_e2e.developer_repo  # the fixtures of test_local_backend (runner_env uses `model` below)
runner_env = local_e2e.runner_env

PRICES = Prices(input=3.0, output=15.0)
CLOSING = Path("/tmp/usage-closing.txt")
STEP = Usage(1000, 100)  # 4500 micro-USD a step at these prices


def select(body: dict) -> Script:
    text = conversation_text(body)
    if "## Task T005" in text and "## Previous attempt (1)" in text:
        return [Turn(tool_calls=(edit("NOTES.md", "work in progress", "finished"),), usage=STEP),
                Turn(text="T005 finished on the second attempt.", usage=STEP)]
    if "## Task T005" in text:
        return [Turn(tool_calls=(write("NOTES.md", "work in progress\n"),), usage=STEP),
                *[Turn(tool_calls=(read("NOTES.md"),), usage=STEP) for _ in range(40)]]
    if "## Task T006" in text:
        return [Turn(tool_calls=(write("docs/T006.md", "half\n"),), usage=STEP), Turn(text="never", delay=600)]
    if "## Task T007" in text:
        return [Turn(tool_calls=(write("docs/T007.md", "done\n"),), usage=Usage(500, 50)),
                Turn(text="T007 done.", usage=Usage(700, 20, cached=200))]
    raise AssertionError("a request for no known task")


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(select, prices=PRICES) as server:
        yield server


@pytest.fixture
def limits_env(runner_env: dict[str, str]) -> dict[str, str]:
    """test_local_backend's runner env (with this module's `model`) and a short idle limit."""
    return {**runner_env, "AGENTIC_IDLE_TIMEOUT_SECONDS": "8"}


def finished(service, task_id: str):  # type: ignore[no-untyped-def]
    return wait_for(lambda: (s := service.status(TaskRequest(task_id=task_id))).phase in FINISHED_PHASES and s,
                    what=f"{task_id} to finish")


def test_budget_stop_then_retry_continues_the_branch_and_a_stall_pushes_its_work(
    developer_repo: Path, remote: BareRemote, limits_env: dict[str, str], model: ScriptedModel
) -> None:
    service, _backend = make_service(developer_repo, limits_env)
    spawn = service.spawn_task
    spawn(SpawnTaskRequest(task_id="T005", description="Write NOTES.md and finish it", max_cost=0.012))
    spawn(SpawnTaskRequest(task_id="T006", description="Write docs/T006.md"))
    spawn(SpawnTaskRequest(task_id="T007", description="Write docs/T007.md"))

    first = finished(service, "T005")
    assert (first.phase, first.attempt) == ("budget_exceeded", 1), first
    assert first.result is not None and first.result.pushed
    assert first.result.error == "stopped: cost $0.0135 passed the budget max_cost $0.012"
    assert first.usage is not None and (first.usage.steps, first.usage.cost) == (3, pytest.approx(0.0135))
    branch = "agentic/001-feature/T005"
    assert remote.log(branch)[0].startswith("WIP T005: ")

    stalled = finished(service, "T006")
    assert stalled.phase == "stalled" and stalled.result is not None and stalled.result.pushed
    assert "(idle limit 8s)" in (stalled.result.error or "")
    assert remote.show("agentic/001-feature/T006", "docs/T006.md") == "half\n"
    done = finished(service, "T007")
    assert done.phase == "succeeded" and done.usage is not None
    assert done.usage.cost == pytest.approx((500 * 3 + 50 * 15 + 500 * 3 + 20 * 15) / 1e6)

    with pytest.raises(InvalidInput, match="task T007 \\(attempt 1\\) cannot be retried: it succeeded"):
        service.retry(RetryRequest(task_id="T007"))
    assert [a.task_id for a in service.list_agents(ListAgentsRequest()).agents].count("T007") == 1

    handle = service.retry(RetryRequest(task_id="T005", max_cost=1.0))
    assert (handle.attempt, handle.created, handle.branch) == (2, True, branch)
    again = finished(service, "T005")
    assert (again.phase, again.attempt) == ("succeeded", 2), again
    # the branch's history: the first attempt's WIP commit, then the new work on top of it
    assert [line.split(":")[0] for line in remote.log(branch)[:2]] == ["T005", "WIP T005"]
    assert remote.show(branch, "NOTES.md") == "finished\n"
    retried_prompt = next(conversation_text(b) for b in model.recorded.all()
                          if "## Previous attempt (1)" in conversation_text(b))
    assert "Error: stopped: cost $0.0135 passed the budget max_cost $0.012" in retried_prompt

    listing = service.list_agents(ListAgentsRequest())
    rows = {a.task_id: a for a in listing.agents}
    assert sorted(rows) == ["T005", "T006", "T007"] and rows["T005"].attempt == 2
    # the first attempt's usage travels with the task: the totals count every attempt
    previous = rows["T005"].previous_usage
    assert previous is not None and (previous.steps, previous.cost) == (3, pytest.approx(0.0135))
    assert rows["T005"].usage is not None and rows["T005"].usage.steps == 2
    total = sum(u.cost for a in listing.agents for u in (a.usage, a.previous_usage) if u is not None)
    assert listing.totals.all.cost == pytest.approx(total) == pytest.approx(0.0135 + 0.009 + 0.0045 + 0.00405)
    out = io.StringIO()
    cli.print_agents(listing, out)
    with CLOSING.open("a") as handle_file:
        handle_file.write("# agentic-runner list (local backend): T005 budget-stopped then retried, T006 stalled, "
                          "T007 succeeded\n" + out.getvalue() + "\n")
