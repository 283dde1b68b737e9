"""Merge-back on a real git remote (the tasks come from the in-memory backend: the cluster's side is
tested in tests/integration/test_speckit_flow.py), and the extension installed into a project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mcp_server.config import load_settings
from mcp_server.errors import InvalidInput
from mcp_server.models import MergeRequest, TaskResult
from mcp_server.service import RunnerService
from mcp_server.speckit_extension.install import install
from tests.integration.test_speckit_flow import FEATURE, IDENTITY, agent_push, make_project
from tests.support.memory_backend import MemoryBackend

pytestmark = pytest.mark.e2e


def world(tmp_path: Path):  # noqa: ANN201
    repo, remote = make_project(tmp_path)
    backend = MemoryBackend()
    environ = {"AGENTIC_REPO_ROOT": str(repo), "AGENTIC_BACKEND": "kubernetes", "HOME": str(tmp_path), **IDENTITY}
    service = RunnerService(load_settings(environ=environ), lambda _e, _s: backend, environ=environ)
    return repo, remote, backend, service


def succeed(backend: MemoryBackend, service: RunnerService, task_id: str, head: str | None) -> None:
    from mcp_server.models import SpawnTaskRequest

    service.spawn_task(SpawnTaskRequest(task_id=task_id, description=f"do {task_id}", feature_dir=f"specs/{FEATURE}"))
    backend.finish(task_id)
    task = next(t for t in backend.tasks.values() if t.spec.task_id == task_id)
    task.status = task.status.model_copy(update={"result": TaskResult(
        task_id=task_id, status="succeeded", branch=f"agentic/{FEATURE}/{task_id}", base=FEATURE,
        commits=1, head_sha=head, pushed=True, summary="done")})


def test_merge_follows_the_dependency_order_and_stops_at_a_conflict_with_a_clean_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    repo, remote, backend, service = world(tmp_path)
    # T004 depends on T001 (and is in phase 2); T002 and T001 both touch src/shared.py: a conflict.
    heads = {
        "T004": agent_push(tmp_path, remote, "T004", "src/name.py", "NAME = 'you'\n"),
        "T002": agent_push(tmp_path, remote, "T002", "src/shared.py", "B = 2\n"),
        "T001": agent_push(tmp_path, remote, "T001", "src/shared.py", "A = 1\n"),
    }
    for task_id, head in heads.items():
        succeed(backend, service, task_id, head)

    plan = service.merge(MergeRequest(dry_run=True))
    assert [(e.task_id, e.action) for e in plan.entries] == [("T001", "merge"), ("T002", "merge"), ("T004", "merge")]
    before = remote.sha(FEATURE)

    result = service.merge(MergeRequest())
    assert [(e.task_id, e.action) for e in result.entries] == [
        ("T001", "merged"), ("T002", "conflict"), ("T004", "merge")
    ]
    assert result.conflict == "T002" and result.entries[1].conflicts == ["src/shared.py"]
    assert "stopped at T002: conflicts in src/shared.py" in result.message
    assert result.pushed is True  # what merged before the conflict, fast-forward
    assert remote.log(FEATURE, "%s")[0] == f"Merge T001 (agentic/{FEATURE}/T001) into {FEATURE}"
    assert remote.log(FEATURE, "%P")[0] == f"{before} {heads['T001']}"
    from tests.support.git_remotes import git

    assert git("status", "--porcelain", "--untracked-files=no", cwd=repo).strip() == ""
    assert not (repo / ".git" / "MERGE_HEAD").exists()

    again = service.merge(MergeRequest(dry_run=True))  # rerun: T001 is merged already
    assert [(e.task_id, e.action) for e in again.entries][0] == ("T001", "merge")


def test_merge_refuses_a_dirty_tree_or_another_branch_and_changes_nothing(tmp_path: Path) -> None:
    repo, remote, backend, service = world(tmp_path)
    succeed(backend, service, "T001", agent_push(tmp_path, remote, "T001", "src/greet.py", "x = 1\n"))
    (repo / "README.md").write_text("local edit\n")
    with pytest.raises(InvalidInput, match=r"invalid repository: it has uncommitted changes \(README.md\)"):
        service.merge(MergeRequest())
    from tests.support.git_remotes import git

    git("checkout", "README.md", cwd=repo)
    git("switch", "-q", "-c", "other", cwd=repo)
    with pytest.raises(InvalidInput, match="invalid base_branch: the repository is on 'other'"):
        service.merge(MergeRequest(feature=f"specs/{FEATURE}", base_branch=FEATURE))
    assert remote.log(FEATURE, "%s") == ["feature: spec, plan, tasks"]


def test_the_extension_installs_as_specify_lays_it_out_and_reinstalls_the_same(tmp_path: Path) -> None:
    project = tmp_path / "project"
    with pytest.raises(InvalidInput, match="is not a spec-kit project"):
        install(project)
    assert not project.exists()
    (project / ".specify").mkdir(parents=True)
    (project / ".specify" / "extensions.yml").write_text(yaml.safe_dump(
        {"installed": ["git"], "hooks": {"before_specify": [{"extension": "git", "command": "speckit.git.feature"}]}}
    ))
    done = install(project)
    assert done.commands == [
        "speckit.agentic-runner.delegate", "speckit.agentic-runner.follow", "speckit.agentic-runner.merge"
    ]
    config = yaml.safe_load((project / ".specify" / "extensions.yml").read_text())
    assert config["installed"] == ["git", "agentic-runner"]
    assert config["hooks"]["before_specify"] == [{"extension": "git", "command": "speckit.git.feature"}]
    assert config["hooks"]["before_implement"] == [{
        "extension": "agentic-runner", "command": "speckit.agentic-runner.delegate", "enabled": True,
        "optional": False, "priority": 10, "prompt": "Execute speckit.agentic-runner.delegate?",
        "description": "Hand the [ASYNC] tasks to agent pods before the main session implements the rest",
        "condition": None,
    }]
    registry = json.loads((project / ".specify" / "extensions" / ".registry").read_text())
    entry = registry["extensions"]["agentic-runner"]
    assert (entry["source"], entry["enabled"], entry["registered_commands"]["opencode"]) == (
        "local", True, done.commands
    )
    command = (project / ".opencode" / "commands" / "speckit.agentic-runner.delegate.md").read_text()
    assert command.startswith("---\ndescription: Hand the feature's open [ASYNC] tasks")
    assert "spawn_async_tasks" in command and "Do NOT implement them" in command
    assert (project / ".specify" / "extensions" / "agentic-runner" / "extension.yml").is_file()
    files = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and p.name != ".registry"}
    install(project)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and p.name != ".registry"} == files
    assert json.loads((project / ".specify" / "extensions" / ".registry").read_text()) == registry
