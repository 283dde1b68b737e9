"""A thousand pods followed by one stream_task_logs cursor, against the real control plane (kwok pods,
real API server): the cursor stays far inside the tool's 65,536-character input limit, the next call
(also by a new server process) accepts it, and no line is lost or repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from mcp_server.config import load_settings
from mcp_server.models import SpawnTaskRequest
from mcp_server.service import RunnerService
from tests.conftest import wait_until
from tests.support.mcp_client import McpClient, connect
from tests.support.runner_env import EXIT_CODE, Cluster, install_chart, make_repo, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

PODS = 1000
INPUT_LIMIT = 65536


KWOK_NODES = ("kwok-node-0", "kwok-node-1")


@pytest.fixture
def roomy_nodes(testenv: TestEnv, namespace: str) -> Iterator[None]:
    """The test control plane's two kwok nodes room for a thousand agent pods (their capacity, as
    the node reports it), put back afterwards, once the test's Jobs and pods are gone. (Put back
    while the thousand pods still sat on the nodes, the nodes were over capacity and the next test's
    pod stayed unschedulable until the namespace's deletion had drained them.)"""
    core = client.CoreV1Api(testenv.api_client())
    before = {name: core.read_node_status(name).status for name in KWOK_NODES}

    def patch(name: str, capacity: dict[str, str], allocatable: dict[str, str]) -> None:
        core.patch_node_status(name, {"status": {"capacity": capacity, "allocatable": allocatable}})

    for name in KWOK_NODES:
        patch(name, *[{"cpu": "1000", "memory": "2Ti", "pods": "600"}] * 2)
    try:
        yield
    finally:
        try:
            client.BatchV1Api(testenv.api_client()).delete_collection_namespaced_job(
                namespace, propagation_policy="Background"
            )
            wait_until(
                lambda: not core.list_namespaced_pod(namespace, limit=1).items,
                timeout=900, interval=2, message=f"the pods of namespace {namespace} to be deleted",
            )
        finally:
            for name, status in before.items():
                patch(name, dict(status.capacity), dict(status.allocatable))


def running_pods(cluster: Cluster) -> dict[str, str] | None:
    """Job name -> pod name, once every task's pod is Running."""
    pods = {
        p["metadata"]["labels"]["batch.kubernetes.io/job-name"]: p["metadata"]["name"]
        for p in cluster.pods()
        if p.get("status", {}).get("phase") == "Running"
    }
    return pods if len(pods) == PODS else None


async def read_all(mcp: McpClient, cursor: str | None, expected: int) -> tuple[list[dict[str, Any]], str]:
    """stream_task_logs (not waiting) from `cursor` until `expected` lines came; then one more call
    that must bring none."""
    lines: list[dict[str, Any]] = []
    for _ in range(20):
        chunk = (await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 0, "max_lines": 5000})).ok
        lines += chunk["lines"]
        cursor = chunk["cursor"]
        assert len(cursor) < INPUT_LIMIT
        if len(lines) >= expected and not chunk["more"]:
            break
    assert cursor is not None
    return lines, cursor


async def test_a_thousand_followed_pods_keep_one_cursor_that_is_accepted_and_loses_nothing(
    testenv: TestEnv, namespace: str, tmp_path: Path, roomy_nodes: None
) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    env = server_env(testenv, namespace, repo)
    service = RunnerService(load_settings({**env, "AGENTIC_KUBECONFIG": env["KUBECONFIG"]}))
    ids = [f"S{i:04d}" for i in range(PODS)]
    with ThreadPoolExecutor(8) as pool:
        handles = list(
            pool.map(lambda t: service.spawn_task(SpawnTaskRequest(task_id=t, description=f"scale {t}")), ids)
        )
    cluster = Cluster(testenv, namespace)
    pods = wait_until(lambda: running_pods(cluster), timeout=900, interval=2, message=f"{PODS} running pods")
    task_of = {h.job: h.task_id for h in handles}
    testenv.provision_logs(namespace, pods.values())  # the provisioner would take minutes for 1,000
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: cluster.log(pods[job], f"hello from {task_of[job]}"), pods))

    async with connect(env) as mcp:
        first, cursor = await read_all(mcp, None, PODS)
    assert sorted(line["text"] for line in first) == sorted(f"hello from {t}" for t in ids)
    assert all(line["text"] == f"hello from {line['task_id']}" for line in first)
    size_followed = len(cursor)

    # Ten pods say more, half of the pods finish; a new server process goes on from the cursor.
    talking = sorted(pods)[:10]
    for job in talking:
        cluster.log(pods[job], f"more from {task_of[job]}")
    finishing = sorted(pods)[PODS // 2 :]
    admin = testenv.api_client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: _finish(admin, namespace, pods[job]), finishing))
    wait_until(
        lambda: sum(1 for p in cluster.pods() if p.get("status", {}).get("phase") == "Succeeded") == len(finishing),
        timeout=600, interval=2, message="half of the pods to finish",
    )
    async with connect(env) as mcp:
        second, cursor = await read_all(mcp, cursor, len(talking))
        third, _ = await read_all(mcp, cursor, 0)
    assert sorted(line["text"] for line in second) == sorted(f"more from {task_of[j]}" for j in talking)
    assert third == []
    print(json.dumps({"cursor_chars_1000_followed": size_followed, "cursor_chars_after": len(cursor)}))


def _finish(api_client: Any, namespace: str, pod: str) -> None:
    """Make a pod's container exit 0 (the test control plane's kwok stage), as Cluster.finish does."""
    client.CoreV1Api(api_client).patch_namespaced_pod(pod, namespace, {"metadata": {"annotations": {EXIT_CODE: "0"}}})
