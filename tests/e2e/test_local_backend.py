"""The local backend through the service (the same calls the MCP tools and the CLI make): tasks run as
local processes of the real runner with the real OpenCode in worktrees of a developer's clone.
spawn -> logs -> list -> status -> cancel, three tasks side by side on one feature branch, and a
server restart in the middle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_server import worktrees
from mcp_server.backends.local import LocalBackend
from mcp_server.config import load_settings
from mcp_server.models import (
    FINISHED_PHASES,
    CleanupRequest,
    ListAgentsRequest,
    SpawnTaskRequest,
    StreamLogsRequest,
    TaskRequest,
)
from mcp_server.service import RunnerService
from tests.support.git_remotes import BASE_BRANCH, BareRemote, git
from tests.support.runner_harness import SCRIPTED_API_KEY, offline_env
from tests.support.scripted_model import (
    Script,
    ScriptedModel,
    Turn,
    conversation_text,
    edit,
    read,
    write,
)

pytestmark = pytest.mark.e2e

TASKS = {
    "T001": "Change the greeting in README.md to 'hello agent'",
    "T002": "Write docs/T002.md with a short note",
    "T003": "Make greet() in src/app.py return 'hi'",
}


def scripts(gate: threading.Event) -> dict[str, Script]:
    return {
        "T001": [
            Turn(tool_calls=(read("README.md"),)),
            Turn(tool_calls=(edit("README.md", "hello world", "hello agent"),)),
            Turn(text="T001 done: README.md greets the agent.", gate=gate),
        ],
        "T002": [
            Turn(tool_calls=(write("docs/T002.md", "# T002\n\nA short note.\n"),)),
            Turn(text="T002 done: wrote docs/T002.md.", gate=gate),
        ],
        "T003": [
            Turn(tool_calls=(read("src/app.py"),)),
            Turn(tool_calls=(edit("src/app.py", 'return "hello"', 'return "hi"'),)),
            Turn(text="T003 done: greet() says hi.", gate=gate),
        ],
        "T004": [
            Turn(tool_calls=(write("docs/T004.md", "# T004\n\nhalf done\n"),)),
            Turn(text="Working on the rest...", hold=True),
        ],
    }


def by_task(table: dict[str, Script]):
    def select(body: dict) -> Script:
        text = conversation_text(body)
        for task_id, script in table.items():
            if f"## Task {task_id}" in text:
                return script
        raise AssertionError("a request for no known task")

    return select


@pytest.fixture
def developer_repo(remote: BareRemote, tmp_path: Path) -> Path:
    work = tmp_path / "dev" / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(work))
    return work


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def model(gate: threading.Event) -> Iterator[ScriptedModel]:
    with ScriptedModel(by_task(scripts(gate))) as server:
        yield server


def make_service(repo: Path, runner_env: dict[str, str]) -> tuple[RunnerService, LocalBackend]:
    settings = load_settings(environ={"AGENTIC_BACKEND": "local", "AGENTIC_REPO_ROOT": str(repo)})
    made: list[LocalBackend] = []

    def factory(env, s):  # type: ignore[no-untyped-def]
        made.append(LocalBackend(env, s, environ=runner_env))
        return made[-1]

    service = RunnerService(settings, backend_factory=factory)
    service.backend(None)
    return service, made[0]


@pytest.fixture
def runner_env(tmp_path: Path, opencode_bin: str, model: ScriptedModel) -> dict[str, str]:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    return {
        **offline_env(home),
        "AGENTIC_OPENCODE_BIN": opencode_bin,
        "AGENTIC_OPENCODE_MODEL": model.model,
        "AGENTIC_OPENCODE_CONFIG": json.dumps(model.opencode_config()),
        "SCRIPTED_API_KEY": SCRIPTED_API_KEY,
        "AGENTIC_LLM_ENV": "SCRIPTED_API_KEY",  # the agent gets this key and no other (local_env)
    }


def wait_for(predicate, timeout: float = 240, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_tasks_on_one_branch_run_side_by_side_in_worktrees(
    developer_repo: Path,
    remote: BareRemote,
    runner_env: dict[str, str],
    model: ScriptedModel,
    gate: threading.Event,
) -> None:
    repo = developer_repo
    base_sha = remote.sha(BASE_BRANCH)
    service, backend = make_service(repo, runner_env)

    handles = [
        service.spawn_task(SpawnTaskRequest(task_id=t, description=d, feature_dir="specs/001-feature"))
        for t, d in TASKS.items()
    ]
    assert [(h.task_id, h.branch, h.base_branch, h.created, h.backend) for h in handles] == [
        (t, f"agentic/001-feature/{t}", BASE_BRANCH, True, "local") for t in TASKS
    ]
    again = service.spawn_task(SpawnTaskRequest(task_id="T001", description=TASKS["T001"]))
    assert (again.created, again.job) == (False, handles[0].job)  # idempotent

    # all three agents did their edits and wait at the gate: three worktrees, three branches
    model.recorded.wait_for(3 + 2 + 3)
    trees = worktrees.list_task_worktrees(repo)
    assert sorted(t.path.name for t in trees) == [f"001-feature-{t}" for t in TASKS]
    assert sorted(t.branch or "" for t in trees) == [f"agentic/001-feature/{t}" for t in TASKS]
    listing = service.list_agents(ListAgentsRequest())
    assert sorted((a.task_id, a.phase) for a in listing.agents) == [(t, "running") for t in TASKS]
    assert listing.counts["running"] == 3
    # The developer's checkout is untouched but for the spec-kit hand-off files the server writes
    # (issue 9: tasks_meta.json and .async_state/ of the feature, a projection of the tasks).
    spec_kit = ("?? specs/001-feature/.async_state/", "?? specs/001-feature/tasks_meta.json")
    changed = git("status", "--porcelain", "--untracked-files=all", cwd=repo).splitlines()
    assert [line for line in changed if not line.startswith(spec_kit)] == []
    assert any(line.startswith(spec_kit[0]) for line in changed)

    # a server restart: a new service finds the same tasks from the state directory
    restarted, _ = make_service(repo, runner_env)
    assert sorted(a.task_id for a in restarted.list_agents(ListAgentsRequest()).agents) == sorted(TASKS)
    status = restarted.status(TaskRequest(task_id="T002"))
    assert (status.phase, status.step, status.backend) == ("running", "agent", "local")

    # logs so far, then the rest after the gate opens: no line twice, none missing
    first = anyio.run(lambda: service.stream_logs(StreamLogsRequest(wait_seconds=0)))
    gate.set()
    wait_for(lambda: all(s.phase in FINISHED_PHASES for s in backend.list_tasks()), what="three finished tasks")
    chunks = [first]
    while not chunks[-1].all_finished:
        cursor = chunks[-1].cursor
        chunks.append(anyio.run(lambda c=cursor: restarted.stream_logs(StreamLogsRequest(cursor=c, wait_seconds=2))))
    delivered = [(line.task_id, line.text) for chunk in chunks for line in chunk.lines]
    for task_id in TASKS:
        mine = [text for tid, text in delivered if tid == task_id]
        on_disk = [
            ln.split(" ", 1)[1]
            for ln in (backend.state / handles[list(TASKS).index(task_id)].job / "log").read_text().splitlines()
        ]
        assert mine == on_disk
        assert mine[-1].startswith("AGENTIC_RESULT: ")
        phases = [json.loads(t)["phase"] for t in mine if t.startswith('{"ts"')]
        assert phases[0] == "setup" and phases[-1] == "done" and "push" in phases

    # results: each task pushed its own branch with its own change; worktrees gone, branches stay
    files = {"T001": ["README.md"], "T002": ["docs/T002.md"], "T003": ["src/app.py"]}
    for task_id in TASKS:
        status = service.status(TaskRequest(task_id=task_id))
        assert status.phase == "succeeded" and status.exit_code == 0 and status.result is not None
        assert (status.result.status, status.result.pushed, status.result.commits) == ("succeeded", True, 1)
        assert status.result.files_changed == files[task_id]
        assert status.result.summary.startswith(f"{task_id} done")
        branch = f"agentic/001-feature/{task_id}"
        assert remote.sha(branch) == status.result.head_sha
        assert git("rev-parse", branch, cwd=repo).strip() == status.result.head_sha  # local branch stays
    assert worktrees.list_task_worktrees(repo) == []
    assert not (repo / ".agentic-sdlc" / "worktrees" / "001-feature-T001").exists()
    assert remote.sha(BASE_BRANCH) == base_sha
    assert git("rev-parse", BASE_BRANCH, cwd=repo).strip() == base_sha
    assert remote.show("agentic/001-feature/T003", "src/app.py") == 'def greet() -> str:\n    return "hi"\n'

    # cleanup removes the finished tasks' state; the branches stay
    dry = service.cleanup(CleanupRequest(dry_run=True))
    assert sorted(i.task_id for i in dry.deleted) == sorted(TASKS) and dry.dry_run
    done = service.cleanup(CleanupRequest())
    assert sorted(i.task_id for i in done.deleted) == sorted(TASKS)
    assert service.list_agents(ListAgentsRequest()).agents == []
    assert {f"agentic/001-feature/{t}" for t in TASKS} <= set(remote.branches())


def test_cancel_stops_the_task_and_keeps_its_work_on_the_branch(
    developer_repo: Path,
    remote: BareRemote,
    runner_env: dict[str, str],
    model: ScriptedModel,
) -> None:
    service, backend = make_service(developer_repo, runner_env)
    handle = service.spawn_task(SpawnTaskRequest(task_id="T004", description="Write docs/T004.md"))
    model.recorded.wait_for(2)  # the file is written, the agent waits on the model
    assert service.status(TaskRequest(task_id="T004")).phase == "running"

    result = service.cancel(TaskRequest(task_id="T004"))
    assert result.deleted_jobs == [handle.job] and len(result.deleted_pods) == 1
    assert result.message.startswith("cancelled task T004: stopped and deleted the local run")
    assert "agentic/001-feature/T004" in result.message
    # the runner committed and pushed the work so far before it ended
    assert remote.log("agentic/001-feature/T004")[0].startswith("WIP T004: ")
    assert remote.show("agentic/001-feature/T004", "docs/T004.md") == "# T004\n\nhalf done\n"
    # ... and the cancel returns what it reported
    assert result.result is not None
    assert (result.result.status, result.result.pushed) == ("cancelled", True)
    assert result.result.head_sha == remote.sha("agentic/001-feature/T004")
    assert worktrees.list_task_worktrees(developer_repo) == []
    assert not (backend.state / handle.job).exists()
    assert service.list_agents(ListAgentsRequest()).agents == []
    again = service.cancel(TaskRequest(task_id="T004"))
    assert (again.deleted_jobs, again.message) == (
        [],
        "task T004 has no local run: nothing to cancel (it is gone already).",
    )
