"""`python -m bench` (`make bench`): figures of the server against the real test control plane.

- list_agents latency with N tasks (in process, through the service, and over MCP stdio);
- log relay throughput: lines per second from a pod's log through stream_task_logs;
- the size of a stream_task_logs cursor per followed pod;
- the test control plane's warm start: `scripts/testenv.sh up` with cached binaries, the real node
  included (target: <= 20 s);
- the whole path on the real node (bench/real_node.py): spawn_task_pod to the pod Running, one task's
  whole log as stream_task_logs delivered it with each line's delivery latency;
- the agent image's size (bench/image.py; goal <= 400 MB).

The control plane is started if needed (scripts/testenv.sh) and kept when AGENTIC_TESTENV_KEEP is set
or when it was running already; each run uses a namespace of its own and deletes it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from bench import image
from bench.real_node import bench_real_node
from mcp_server.config import load_settings
from mcp_server.logs.cursor import encode_cursor
from mcp_server.models import ListAgentsRequest, SpawnTaskRequest, StreamLogsRequest, StreamPosition
from mcp_server.service import RunnerService
from tests.support.mcp_client import connect
from tests.support.runner_env import Cluster, install_chart, make_repo, server_env
from tests.support.testenv import TESTENV_SCRIPT, TestEnv


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def describe(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms  min {min(samples) * 1000:7.1f} ms  "
        f"max {max(samples) * 1000:7.1f} ms  (n={len(samples)})"
    )


@contextmanager
def bench_namespace(testenv: TestEnv) -> Iterator[str]:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    testenv.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        testenv.kubectl("delete", "namespace", name, "--wait=false", check=False)


def service_for(testenv: TestEnv, namespace: str, repo: Path) -> tuple[RunnerService, dict[str, str]]:
    env = server_env(testenv, namespace, repo)
    return RunnerService(load_settings({**env, "AGENTIC_KUBECONFIG": env["KUBECONFIG"]})), env


async def list_over_mcp(env: dict[str, str], repeat: int, count: int) -> list[float]:
    samples = []
    async with connect(env) as mcp:
        await mcp.call("list_agents", {})
        for _ in range(repeat):
            start = time.perf_counter()
            result = await mcp.call("list_agents", {})
            samples.append(time.perf_counter() - start)
            assert len(result.ok["agents"]) == count
    return samples


def bench_list(testenv: TestEnv, counts: list[int], repeat: int) -> None:
    print("list_agents latency (developer identity, chart installed, every task running on a kwok node)")
    for count in counts:
        with bench_namespace(testenv) as ns, tempfile.TemporaryDirectory() as tmp:
            install_chart(testenv, ns)
            repo = make_repo(Path(tmp) / "repo")
            service, env = service_for(testenv, ns, repo)
            cluster = Cluster(testenv, ns)
            handles = [
                service.spawn_task(SpawnTaskRequest(task_id=f"T{i:03d}", description=f"task {i}"))
                for i in range(count)
            ]
            for handle in handles:
                pod = cluster.pod_of(handle.job)
                cluster.log(pod, f"{handle.task_id} is working")
            service.list_agents(ListAgentsRequest())  # warm: PodTemplate cache, connection pool
            in_process = timed(lambda: service.list_agents(ListAgentsRequest()), repeat)  # noqa: B023
            with_lines = service.list_agents(ListAgentsRequest())
            assert len(with_lines.agents) == count

            stdio = anyio.run(list_over_mcp, env, repeat, count)
            print(f"  {count:4d} tasks  service: {describe(in_process)}")
            print(f"  {count:4d} tasks  MCP stdio: {describe(stdio)}")


def bench_logs(testenv: TestEnv, lines: int) -> None:
    print(f"log relay throughput ({lines} lines of 100 bytes in one pod's log, max_lines 5000 per call)")
    with bench_namespace(testenv) as ns, tempfile.TemporaryDirectory() as tmp:
        install_chart(testenv, ns)
        repo = make_repo(Path(tmp) / "repo")
        service, env = service_for(testenv, ns, repo)
        cluster = Cluster(testenv, ns)
        handle = service.spawn_task(SpawnTaskRequest(task_id="T001", description="talk a lot"))
        pod = cluster.pod_of(handle.job)
        payload = "x" * 90
        cluster.log(pod, *[f"{i:08d} {payload}" for i in range(lines)])

        async def drain(via_mcp: bool) -> tuple[float, int, int]:
            seen = calls = 0
            cursor = None
            start = time.perf_counter()
            if via_mcp:
                async with connect(env) as mcp:
                    start = time.perf_counter()
                    while seen < lines:
                        args = {"task_ids": ["T001"], "cursor": cursor, "wait_seconds": 0, "max_lines": 5000}
                        chunk = (await mcp.call("stream_task_logs", args)).ok
                        seen, cursor, calls = seen + len(chunk["lines"]), chunk["cursor"], calls + 1
            else:
                while seen < lines:
                    chunk = await service.stream_logs(
                        StreamLogsRequest(task_ids=["T001"], cursor=cursor, wait_seconds=0, max_lines=5000)
                    )
                    seen, cursor, calls = seen + len(chunk.lines), chunk.cursor, calls + 1
            return time.perf_counter() - start, seen, calls

        for label, via in (("service", False), ("MCP stdio", True)):
            elapsed, seen, calls = anyio.run(drain, via)
            rate = seen / elapsed
            print(f"  {label:9s}: {seen} lines in {elapsed:6.2f} s = {rate:8.0f} lines/s ({calls} calls)")


def bench_cursor() -> None:
    print("cursor size (base64 JSON) by followed pods")
    for pods in (1, 10, 100):
        positions = {
            f"agentic-t{i:03d}-0123456789-abcde": StreamPosition(
                after="2026-01-01T00:00:00.123456789Z", count=3
            )
            for i in range(pods)
        }
        cursor = encode_cursor("dev", positions)
        print(f"  {pods:4d} pods: {len(cursor):6d} characters")


def bench_testenv_up(repeat: int) -> None:
    """Warm `up` (binaries cached) to every component ready, in a private state directory so that
    a running shared environment is left alone."""
    print("test control plane: warm `scripts/testenv.sh up` to everything ready (binaries cached)")
    samples: list[float] = []
    node_samples: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-testenv-") as state:
            env = {**os.environ, "AGENTIC_TESTENV_DIR": state}
            start = time.perf_counter()
            proc = subprocess.run([str(TESTENV_SCRIPT), "up"], env=env, capture_output=True, text=True)
            samples.append(time.perf_counter() - start)
            node = re.search(r"real node ready in (\d+)s", proc.stderr)
            if node:
                node_samples.append(float(node.group(1)))
            subprocess.run([str(TESTENV_SCRIPT), "down"], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"scripts/testenv.sh up failed:\n{proc.stderr[-3000:]}")
    print(f"  up: median {statistics.median(samples):5.1f} s  min {min(samples):5.1f} s  "
          f"max {max(samples):5.1f} s  (n={len(samples)})")
    if node_samples:
        print(f"  of which the real node (namespace, containerd, pause image, kubelet to Ready): median "
              f"{statistics.median(node_samples):.0f} s (whole seconds, from the script's log)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="1,10,50", help="task counts for list_agents (default 1,10,50)")
    parser.add_argument("--lines", type=int, default=20000, help="log lines for the relay (default 20000)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--testenv-ups", type=int, default=3, help="warm control-plane starts to time (default 3)")
    tag = os.environ.get("AGENTIC_TEST_IMAGE_TAG") or "dev"
    parser.add_argument("--image", default=f"localhost/agentic-sdlc-agent-runner:{tag}",
                        help="agent image to build and measure (default: the tests' tag); empty: skip")
    parser.add_argument("--real-node", action=argparse.BooleanOptionalAction, default=True,
                        help="the whole path on the real node (default on)")
    args = parser.parse_args()
    if args.image:
        image.report(image.measure(args.image))
    testenv, started = TestEnv.up()  # builds the binaries first if needed, so the timed ups are warm
    try:
        if args.testenv_ups:
            bench_testenv_up(args.testenv_ups)
        bench_cursor()
        bench_list(testenv, [int(n) for n in args.tasks.split(",")], args.repeat)
        bench_logs(testenv, args.lines)
        if args.real_node:
            bench_real_node(testenv)
    finally:
        if started and not os.environ.get("AGENTIC_TESTENV_KEEP"):
            TestEnv.down()


if __name__ == "__main__":
    main()
