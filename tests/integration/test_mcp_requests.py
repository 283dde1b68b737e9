"""What the tools ask the API server: list_agents and stream_task_logs make one LIST of Jobs and one
LIST of pods per namespace (never a GET per task object); list_agents reads no log (its last lines are
what the server already holds), stream_task_logs reads per pod."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_server.backends.kubernetes import KubernetesBackend
from mcp_server.config import load_settings
from mcp_server.kube import Access, KubeClient, load_api_client
from mcp_server.models import ListAgentsRequest, SpawnTaskRequest, StreamLogsRequest, TaskRequest
from mcp_server.service import RunnerService
from tests.support.runner_env import Cluster, install_chart, make_repo, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

TASKS = 6


class RecordingClient(KubeClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, access: Access, **kwargs: Any) -> Any:
        self.calls.append((method, path))
        return super().request(method, path, access, **kwargs)


def kinds(calls: list[tuple[str, str]], namespace: str) -> list[str]:
    """Each call as LIST jobs / LIST pods / GET podtemplate / GET log / ... ."""
    out = []
    for method, path in calls:
        rest = re.sub(rf"^/apis?/(batch/)?v1/namespaces/{namespace}/", "", path)
        if rest in ("jobs", "pods"):
            out.append(f"LIST {rest}")
        elif re.fullmatch(r"pods/[^/]+/log", rest):
            out.append("GET log")
        else:
            out.append(f"{method} {rest}")
    return out


def test_list_and_logs_make_one_list_per_kind_and_namespace(testenv: TestEnv, namespace: str, tmp_path: Path) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    env = server_env(testenv, namespace, repo)
    settings = load_settings({**env, "AGENTIC_KUBECONFIG": env["KUBECONFIG"]})
    environment = settings.environment()
    client = RecordingClient(load_api_client(environment.kubeconfig, None))
    service = RunnerService(settings, lambda e, s: KubernetesBackend(e, s, kube=client))
    cluster = Cluster(testenv, namespace)
    for i in range(TASKS):
        handle = service.spawn_task(SpawnTaskRequest(task_id=f"T{i:03d}", description=f"task {i}"))
        cluster.log(cluster.pod_of(handle.job), f"T{i:03d} working")

    # list_agents reads no log: two lists, whatever the number of tasks; no line is held yet
    client.calls.clear()
    listed = service.list_agents(ListAgentsRequest())
    assert len(listed.agents) == TASKS
    assert sorted(kinds(client.calls, namespace)) == ["LIST jobs", "LIST pods"]
    assert {a.last_log_line for a in listed.agents} == {None}

    # wait_seconds 0 reads each pod's log directly, once
    client.calls.clear()
    chunk = anyio.run(lambda: service.stream_logs(StreamLogsRequest(wait_seconds=0)))
    assert len(chunk.lines) == TASKS
    assert sorted(kinds(client.calls, namespace)) == ["GET log"] * TASKS + ["LIST jobs", "LIST pods"]

    # now the server holds each task's last line: the listing shows it, still with two lists only
    client.calls.clear()
    listed = service.list_agents(ListAgentsRequest())
    assert sorted(kinds(client.calls, namespace)) == ["LIST jobs", "LIST pods"]
    assert {a.last_log_line for a in listed.agents} == {f"T{i:03d} working" for i in range(TASKS)}

    client.calls.clear()
    status = service.status(TaskRequest(task_id="T003"))
    assert status.last_log_line == "T003 working"
    assert sorted(kinds(client.calls, namespace)) == ["GET log", "LIST jobs", "LIST pods"]
