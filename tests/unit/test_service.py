"""service.py's rules over an in-memory backend (tests/support/memory_backend.py): what each
operation hands the backend, what it refuses before touching it, and the log relay's wait."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest
from pydantic import ValidationError

from mcp_server.config import load_settings
from mcp_server.errors import BackendUnavailable, Forbidden, InvalidInput, TaskNotFound
from mcp_server.models import (
    ListAgentsRequest,
    SpawnAsyncRequest,
    SpawnTaskRequest,
    StreamLogsRequest,
    TaskRequest,
)
from mcp_server.repohosts import HostRule, allowed_text
from mcp_server.service import RunnerService
from mcp_server.validation import parse
from tests.support.memory_backend import MemoryBackend
from tests.support.runner_env import FEATURE, ORIGIN, make_repo


def service_for(tmp_path: Path, backend: MemoryBackend | None = None) -> tuple[RunnerService, MemoryBackend]:
    repo = make_repo(tmp_path / "repo")
    backend = backend or MemoryBackend()
    settings = load_settings(
        environ={"AGENTIC_REPO_ROOT": str(repo), "AGENTIC_BACKEND": "kubernetes", "HOME": str(tmp_path)}
    )
    return RunnerService(settings, lambda _env, _settings: backend), backend


# -- spawn_task --------------------------------------------------------------------------------


def test_spawn_resolves_repo_branch_description_and_feature_documents(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    handle = service.spawn_task(SpawnTaskRequest(task_id="T002", feature_dir=f"specs/{FEATURE}"))
    spec = backend.tasks[handle.job].spec
    assert (spec.repo, spec.base_branch, spec.task_branch) == (ORIGIN, FEATURE, f"agentic/{FEATURE}/T002")
    assert spec.description == "Implement the parser in src/parser.py"  # its tasks.md line
    assert spec.feature_dir == f"specs/{FEATURE}"
    assert [f.path for f in spec.context_files] == [f"specs/{FEATURE}/{n}" for n in ("spec.md", "plan.md", "tasks.md")]
    assert handle.created


def test_the_cli_and_mcp_give_the_same_prompt_for_the_same_request(tmp_path: Path) -> None:
    """One operation: a given context file and the feature's documents are attached once each."""
    service, backend = service_for(tmp_path)
    handle = service.spawn_task(
        SpawnTaskRequest(
            task_id="T003",
            description="Do T003",
            feature_dir=f"specs/{FEATURE}",
            context_files=[f"specs/{FEATURE}/plan.md", "README.md"],
        )
    )
    paths = [f.path for f in backend.tasks[handle.job].spec.context_files]
    assert paths == [f"specs/{FEATURE}/plan.md", "README.md", f"specs/{FEATURE}/spec.md", f"specs/{FEATURE}/tasks.md"]


def test_spawn_without_a_description_is_refused_before_the_backend_is_asked(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    for request in (
        SpawnTaskRequest(task_id="T002"),
        SpawnTaskRequest(task_id="T999", feature_dir=f"specs/{FEATURE}"),
    ):
        with pytest.raises(InvalidInput, match="invalid description: it was not given and no tasks.md line"):
            service.spawn_task(request)
    assert backend.calls == [] and backend.tasks == {}


def test_spawn_outside_a_branch_takes_the_environment_default(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=service.settings.repo_root, check=True)
    handle = service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    assert handle.base_branch == "main"
    backend.base_default = None
    with pytest.raises(InvalidInput, match="invalid base_branch: it was not given and the repository"):
        service.spawn_task(SpawnTaskRequest(task_id="T2", description="d"))
    assert [t.spec.task_id for t in backend.tasks.values()] == ["T1"]


def test_a_branch_switch_is_seen_by_the_next_spawn(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    first = service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    subprocess.run(["git", "checkout", "-q", "-b", "002-other"], cwd=service.settings.repo_root, check=True)
    second = service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    assert (first.base_branch, second.base_branch) == (FEATURE, "002-other")


def test_a_context_too_big_for_the_pod_annotation_creates_nothing(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    big = service.settings.repo_root / "big.md"
    for i in range(4):
        (service.settings.repo_root / f"part{i}.md").write_text("x" * 60_000)
    big.write_text("y")
    with pytest.raises(InvalidInput, match="invalid context_files"):
        service.spawn_task(
            SpawnTaskRequest(task_id="T1", description="d", context_files=[f"part{i}.md" for i in range(4)])
        )
    assert "spawn" not in backend.calls


# -- spawn_async -------------------------------------------------------------------------------


def test_spawn_async_spawns_the_first_wave_and_says_what_waits(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    result = service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", max_parallel=1))
    assert result.waves == [["T002", "T003"], ["T005"]]
    assert [(p.task_id, p.action, p.reason) for p in result.plan] == [
        ("T002", "spawn", None),
        ("T003", "wait", "max_parallel (1) tasks are active"),
        ("T005", "wait", "wave 1 is not finished (T002, T003, T004)"),
    ]
    assert [t.spec.task_id for t in backend.tasks.values()] == ["T002"]
    again = service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", max_parallel=1))
    assert [(p.task_id, p.action) for p in again.plan][0] == ("T002", "exists")
    assert len(backend.tasks) == 1


def test_spawn_async_dry_run_spawns_and_writes_nothing(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    result = service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", dry_run=True))
    assert result.message == (
        "would spawn 2, 0 already exist, 1 waiting (call again when the running tasks have finished)"
    )
    assert "spawn" not in backend.calls
    assert not (service.settings.repo_root / "specs" / FEATURE / ".async_state").exists()


def test_spawn_async_refuses_unknown_task_ids_before_anything(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    with pytest.raises(InvalidInput, match="invalid task_ids: no task T404 in the tasks file"):
        service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", task_ids=["T404"]))
    assert backend.calls == []


# -- read --------------------------------------------------------------------------------------


def test_list_agents_over_all_environments_names_the_ones_it_cannot_read(tmp_path: Path) -> None:
    backend = MemoryBackend()
    service, _ = service_for(tmp_path, backend)
    service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    backend.failures["list_tasks"] = [BackendUnavailable("stg is down")]
    listed = service.list_agents(ListAgentsRequest(all_environments=True))
    assert listed.environments == ["dev", "prod", "stg"]
    assert listed.errors == ["dev: stg is down"]  # one backend serves every name here: the first fails
    assert [a.task_id for a in listed.agents] == ["T1", "T1"]
    backend.failures["list_tasks"] = [BackendUnavailable("down")]
    with pytest.raises(BackendUnavailable):
        service.list_agents(ListAgentsRequest())


def test_status_names_a_missing_task(tmp_path: Path) -> None:
    service, _ = service_for(tmp_path)
    with pytest.raises(TaskNotFound, match="no task T9 in environment 'dev'"):
        service.status(TaskRequest(task_id="T9"))


# -- logs --------------------------------------------------------------------------------------


def stream(service: RunnerService, **values: object):  # noqa: ANN201
    return anyio.run(lambda: service.stream_logs(StreamLogsRequest(**values)))


def test_stream_continues_from_the_cursor_without_loss_or_repeats(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    backend.log("T1", "a", "b")
    first = stream(service, wait_seconds=0)
    backend.log("T1", "c")
    second = stream(service, cursor=first.cursor, wait_seconds=0)
    assert [line.text for line in first.lines] == ["a", "b"]
    assert [line.text for line in second.lines] == ["c"]
    backend.finish("T1")
    last = stream(service, cursor=second.cursor, wait_seconds=1)
    assert last.lines == [] and last.all_finished


def test_stream_of_a_missing_task_is_refused(tmp_path: Path) -> None:
    service, _ = service_for(tmp_path)
    with pytest.raises(TaskNotFound, match="no task T7"):
        stream(service, task_ids=["T7"], wait_seconds=0)


def test_a_passing_failure_is_retried_and_raised_only_when_nothing_was_read(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    backend.log("T1", "a")
    backend.failures["log_streams"] = [BackendUnavailable("restarting")] * 2
    chunk = stream(service, wait_seconds=2)
    assert [line.text for line in chunk.lines] == ["a"]
    backend.failures["log_streams"] = [BackendUnavailable("restarting")] * 100
    with pytest.raises(BackendUnavailable, match="restarting"):
        stream(service, wait_seconds=1)
    backend.failures["log_streams"] = [Forbidden("list", "pods", "memory")]
    with pytest.raises(Forbidden):  # a real denial is not retried
        stream(service, wait_seconds=30)


def test_a_task_that_vanishes_mid_wait_is_reported_cancelled(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path)
    service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    backend.log("T1", "a")
    real = backend.log_streams
    seen = {"n": 0}

    def vanishing(refs):  # noqa: ANN001, ANN202
        seen["n"] += 1
        if seen["n"] == 2:
            backend.drop("T1")
        return real(refs)

    backend.log_streams = vanishing  # type: ignore[method-assign]
    chunk = stream(service, wait_seconds=5)
    assert [(t.task_id, t.phase, t.finished) for t in chunk.tasks] == [("T1", "cancelled", True)]
    assert chunk.all_finished


# -- repo hosts and the git Secret of a task (issue 10) ------------------------------------------

RULES = (HostRule("git.example.com"), HostRule("127.0.0.1", insecure=True))


@pytest.mark.parametrize(("repo", "problem"), [
    ("https://evil.example/org/repo.git", "the host evil.example is not one of the configured repo hosts"),
    ("http://git.example.com/org/repo.git",
     "http:// is not allowed for the host git.example.com, which is not marked insecure"),
    ("file:///srv/git/repo.git", "file:// names a path on the machine, which a pod cannot clone"),
])
def test_a_repo_the_environment_does_not_allow_creates_nothing(tmp_path: Path, repo: str, problem: str) -> None:
    service, backend = service_for(tmp_path, MemoryBackend(hosts=RULES))
    with pytest.raises(InvalidInput) as refused:
        service.spawn_task(SpawnTaskRequest(task_id="T1", description="d", repo=repo))
    assert str(refused.value) == f"invalid repo: {problem}; allowed: {allowed_text(RULES, cluster=True)}."
    with pytest.raises(InvalidInput, match="invalid repo: "):
        service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", repo=repo))
    assert backend.calls == [] and backend.tasks == {}


def test_the_origin_is_checked_like_a_given_repo(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path, MemoryBackend(hosts=(HostRule("github.com"),)))
    with pytest.raises(InvalidInput, match="invalid repo: the host git.example.com is not one of the configured"):
        service.spawn_task(SpawnTaskRequest(task_id="T1", description="d"))
    assert backend.calls == []


def test_a_repo_on_an_allowed_host_is_spawned(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path, MemoryBackend(hosts=RULES))
    handle = service.spawn_task(SpawnTaskRequest(task_id="T1", description="d",
                                                 repo="http://127.0.0.1:9418/repo.git"))
    assert backend.tasks[handle.job].spec.repo == "http://127.0.0.1:9418/repo.git"


def test_a_remote_helper_is_refused_at_the_edge_for_every_backend() -> None:
    """ext:: runs a command wherever git clones: refused by the request model itself, before any
    backend (also the local one, where no host rules apply)."""
    for url in ("ext::sh%-c%id", "fd::3", "https::github.com/org/repo"):
        with pytest.raises(InvalidInput) as refused:
            parse(SpawnTaskRequest, {"task_id": "T1", "description": "d", "repo": url})
        assert str(refused.value).startswith(
            "invalid repo: it names a git remote helper (such as ext:: or fd::); allowed: ")


def test_a_listed_ssh_secret_goes_to_the_backend_and_not_into_the_task_context(tmp_path: Path) -> None:
    service, backend = service_for(tmp_path, MemoryBackend(secrets=("team-git", "deploy-key-a")))
    handle = service.spawn_task(SpawnTaskRequest(task_id="T1", description="d", ssh_secret="deploy-key-a"))
    spec = backend.tasks[handle.job].spec
    assert spec.ssh_secret == "deploy-key-a"
    assert "ssh_secret" not in spec.context().model_dump()
    async_service, async_backend = service_for(tmp_path / "b", MemoryBackend(secrets=("team-git", "deploy-key-a")))
    async_service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", ssh_secret="deploy-key-a"))
    assert {t.spec.ssh_secret for t in async_backend.tasks.values()} == {"deploy-key-a"}


@pytest.mark.parametrize(("secrets", "allowed"), [
    (("team-git", "deploy-key-a"), "one of team-git, deploy-key-a"),
    ((), "none: this environment lists no git Secret a task may select (chart values git.secrets, with git.auth ssh)"),
])
def test_an_ssh_secret_the_environment_does_not_list_creates_nothing(
        tmp_path: Path, secrets: tuple[str, ...], allowed: str) -> None:
    service, backend = service_for(tmp_path, MemoryBackend(secrets=secrets))
    for request in (SpawnTaskRequest(task_id="T1", description="d", ssh_secret="agentic-llm"),
                    SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md", ssh_secret="agentic-llm")):
        with pytest.raises(InvalidInput) as refused:
            (service.spawn_task if isinstance(request, SpawnTaskRequest) else service.spawn_async)(request)
        assert str(refused.value) == (
            f"invalid ssh_secret: the git Secret agentic-llm is not one environment 'dev' lists; allowed: {allowed}.")
    assert backend.calls == [] and backend.tasks == {}


def test_an_ssh_secret_that_is_not_a_secret_name_is_refused_at_the_edge() -> None:
    with pytest.raises(ValidationError, match="it is not a Secret name"):
        SpawnTaskRequest(task_id="T1", ssh_secret="../../etc")
