"""Figures of the whole path on the test control plane's real node (`python -m bench --real-node`).

- the time from `spawn_task_pod` (over MCP stdio) to the task's pod Running on the node, and to its
  `agent` container started, as the kubelet reports it;
- one task's whole log as `stream_task_logs` delivered it, each line with its delivery latency: from
  the time the kubelet stamped on the line to its arrival at the MCP client (both clocks are this
  machine's), polling with wait_seconds 2;
- the node's part of a warm `scripts/testenv.sh up` is in the `up` figure (`--testenv-ups`).

The agent image is built (scripts/build-image.sh, warm) and imported into the node first.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import anyio

from tests.e2e.conftest import IMAGE, IMAGE_REPOSITORY, IMAGE_TAG
from tests.support.mcp_client import connect
from tests.support.real_node import LogRecorder, deploy
from tests.support.runner_harness import REPO_ROOT
from tests.support.scripted_model import Turn, bash, edit, read
from tests.support.testenv import TestEnv

SCRIPT = [
    Turn(text="Reading README.md first.", tool_calls=(read("README.md"),)),
    Turn(tool_calls=(bash("ls -la && git log --oneline | head -3", "look around"),)),
    Turn(tool_calls=(edit("README.md", "hello world", "hello bench"),)),
    Turn(text="Changed the greeting in README.md to 'hello bench'."),
]


def _agent_started(pod: dict) -> datetime | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status["name"] == "agent":
            stamp = (status.get("state", {}).get("running") or status.get("state", {}).get("terminated") or {})
            started = stamp.get("startedAt")
            return datetime.fromisoformat(started) if started else None
    return None


async def _one_task(testenv: TestEnv, namespace: str, workdir: Path) -> None:
    with ExitStack() as stack:
        world = deploy(stack, testenv, namespace, (IMAGE_REPOSITORY, IMAGE_TAG), workdir, SCRIPT)
        async with connect(world.env()) as mcp:
            start = time.perf_counter()
            handle = (await mcp.call("spawn_task_pod", {"task_id": "T001", "description": "Say hello bench"})).ok
            spawned = time.perf_counter() - start
            running_at = None
            while running_at is None and time.perf_counter() - start < 120:
                pods = world.cluster.pods(handle["job"])
                if pods and pods[0]["status"].get("phase") == "Running":
                    running_at = time.perf_counter() - start
                else:
                    await anyio.sleep(0.05)
            recorder = LogRecorder(mcp, ["T001"])
            await recorder.run()
        (pod,) = world.cluster.pods(handle["job"])
        job = world.cluster.get("job", handle["job"])
        created = datetime.fromisoformat(job["metadata"]["creationTimestamp"])
        started = _agent_started(pod)
    print(f"  spawn_task_pod returned after {spawned * 1000:.0f} ms; pod Running after "
          f"{running_at if running_at is None else round(running_at, 2)} s (polled every 50 ms)")
    if started is not None:
        print(f"  agent container started {(started - created).total_seconds():.0f} s after the Job's creation "
              "(both in whole seconds, as the API server stamps them)")
    latencies = [r.latency_seconds for r in recorder.received]
    print(f"  the task's whole log as stream_task_logs delivered it ({len(latencies)} lines, "
          f"{recorder.calls} calls of wait_seconds 2):")
    for received in recorder.received:
        text = received.line["text"]
        shown = text if len(text) <= 150 else text[:147] + "..."
        print(f"    +{received.latency_seconds * 1000:6.0f} ms  {shown}")
    print(f"  delivery latency: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


def bench_real_node(testenv: TestEnv) -> None:
    print("the whole path on the real node (MCP stdio -> Job -> kubelet -> agent image -> logs -> result)")
    build = subprocess.run([str(REPO_ROOT / "scripts" / "build-image.sh"), IMAGE], capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"scripts/build-image.sh failed:\n{build.stderr[-3000:]}")
    start = time.perf_counter()
    testenv.import_image(IMAGE)
    print(f"  import-image {IMAGE}: {time.perf_counter() - start:.1f} s (0 when imported already)")
    name = f"bench-node-{uuid.uuid4().hex[:6]}"
    testenv.kubectl("create", "namespace", name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(_one_task, testenv, name, Path(tmp))
    finally:
        testenv.kubectl("delete", "namespace", name, "--wait=false", check=False)
