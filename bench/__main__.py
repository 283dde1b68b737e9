"""`python -m bench` (`make bench`): issue 12's figures on the real test control plane, each beside
its anchor, printed as a table and written to bench/results.json (bench/results.py):

- start-up to tools/list (bench/startup.py), beside the bare `mcp` SDK server and kubernetes-mcp-server;
- one spawn and a burst of 50 (bench/spawning.py), beside a raw POST, kubernetes-mcp-server's create
  and `helm template | kubectl apply`;
- list_agents with 1,000 running tasks and the API requests it makes, counted in the API server's
  audit log (bench/listing.py), beside the two raw lists and kubernetes-mcp-server's pods_list;
- the log relay under 20 pods x 200 lines/s x 30 s (bench/relay.py), beside kubernetes-mcp-server's
  pods_log, and the server's peak RSS;
- the agent image's size (bench/image.py; goal <= 400 MB), beside OpenCode's binary alone.

Then, as before: the size of a stream_task_logs cursor per followed pod, the test control plane's
warm start, and the whole path on the real node (bench/real_node.py). Sizes and repeats are options
(`python -m bench --help`).

The control plane is started if needed (scripts/testenv.sh) and kept when AGENTIC_TESTENV_KEEP is set
or when it was running already; each figure uses a namespace of its own and deletes it.
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

from bench import image, listing, relay, results, spawning, startup
from bench.real_node import bench_real_node
from bench.results import Figure
from bench.world import World, kubernetes_mcp_server, world
from mcp_server.config import load_settings
from mcp_server.logs.cursor import encode_cursor
from mcp_server.logs.positions import Resume
from mcp_server.models import StreamPosition
from mcp_server.service import RunnerService
from tests.support.mcp_client import connect
from tests.support.runner_env import server_env
from tests.support.testenv import REPO_ROOT, TESTENV_SCRIPT, TestEnv


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


def bench_cursor() -> None:
    print("stream_task_logs cursor size by followed pods still being read (the input limit is 65,536)")
    for pods in (1, 10, 100, 1000):
        positions = {
            f"agentic-t{i:04d}-0123456789-abcde": StreamPosition(
                after=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{i * 7919 % 10**9:09d}Z", count=1 + i % 3
            )
            for i in range(pods)
        }
        cursor = encode_cursor("dev", Resume(positions))
        print(f"  {pods:5d} pods: {len(cursor):6d} characters ({len(cursor) / pods:5.1f} per pod)")


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


def opencode_binary_mb() -> float:
    """OpenCode's standalone binary alone (scripts/install-opencode.sh's cache), the image's floor."""
    version = (REPO_ROOT / "container" / "opencode.version").read_text().strip()
    path = Path.home() / ".cache" / "agentic-sdlc" / "opencode" / version / "bin" / "opencode"
    return round(path.stat().st_size / 1e6, 1) if path.exists() else 0.0


def image_figure(size: image.ImageSize) -> Figure:
    floor = opencode_binary_mb()
    return Figure(name="image_mb", value=round(size.mb, 1), unit="MB", n=1, target=f"<= {image.GOAL_MB:.0f} MB",
                  meets=size.mb <= image.GOAL_MB, anchors={"opencode_binary_alone_mb": floor} if floor else {},
                  note=f"{size.image}, uncompressed, all layers (podman image inspect)")


def issue_figures(testenv: TestEnv, args: argparse.Namespace) -> list[Figure]:
    kmcp = kubernetes_mcp_server()
    figures: list[Figure] = []

    def step(title: str, run: Callable[[World], Any], values: dict[str, Any] | None = None) -> None:
        print(f"-- {title}", flush=True)
        start = time.perf_counter()
        with world(testenv, kmcp, values) as w:
            got = anyio.run(run, w)
        figures.extend(got)
        for f in got:
            print(f"   {f.name} = {f.value} {f.unit}  anchors {f.anchors}  ({'meets' if f.meets else 'MISSES'} "
                  f"{f.target})", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)

    small = {"resources": {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"memory": "64Mi"}}}
    step("start-up to tools/list", lambda w: startup.measure(w, args.startup_repeat))
    # The seed's helm+kubectl Jobs are not in the chart's shape: the admission policy refuses them, so
    # they go to a plain namespace (World.seed_namespace). The project's side is measured without the
    # policy too, so that both sides pay the same API server (the policy's CEL check is the cluster's
    # cost, whichever client creates the Job: compare raw_post_ms of a run with the default values).
    plain = {"admission": {"enabled": False}}
    step("one spawn", lambda w: spawning.measure_spawn(w, args.repeat * 4, args.repeat), plain)
    step(f"burst of {args.burst}", lambda w: spawning.measure_burst(w, args.burst, args.seed_burst), plain)
    if args.list_tasks:
        step(f"list_agents with {args.list_tasks} running tasks",
             lambda w: listing.measure(w, args.list_tasks, args.repeat), small)
    if args.relay_pods:
        step(f"log relay: {args.relay_pods} pods x {args.relay_rate} lines/s x {args.relay_seconds:.0f} s",
             lambda w: relay.measure(w, args.relay_pods, args.relay_rate, args.relay_seconds, args.relay_drain,
                                     args.relay_anchor), small)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="samples per figure (spawn: 4x as many; default 5)")
    parser.add_argument("--startup-repeat", type=int, default=10, help="server starts of each kind (default 10)")
    parser.add_argument("--burst", type=int, default=50, help="tasks of the spawn_async_tasks burst (default 50)")
    parser.add_argument("--seed-burst", action=argparse.BooleanOptionalAction, default=True,
                        help="time the burst as helm+kubectl runs too (default on)")
    parser.add_argument("--list-tasks", type=int, default=1000,
                        help="running tasks for list_agents (default 1000; 0: skip)")
    parser.add_argument("--relay-pods", type=int, default=20, help="pods of the log relay figure (default 20; 0: skip)")
    parser.add_argument("--relay-rate", type=int, default=200, help="lines/s each pod prints (default 200)")
    parser.add_argument("--relay-seconds", type=float, default=30, help="how long the pods print (default 30)")
    parser.add_argument("--relay-drain", type=float, default=60,
                        help="how long the client may drain after the pods stop (default 60)")
    parser.add_argument("--relay-anchor", action=argparse.BooleanOptionalAction, default=True,
                        help="the same load through kubernetes-mcp-server's pods_log (default on)")
    parser.add_argument("--testenv-ups", type=int, default=1, help="warm control-plane starts to time (default 1)")
    parser.add_argument("--results", type=Path, default=results.RESULTS, help="where to write the figures (JSON)")
    tag = os.environ.get("AGENTIC_TEST_IMAGE_TAG") or "dev"
    parser.add_argument("--image", default=f"localhost/agentic-sdlc-agent-runner:{tag}",
                        help="agent image to build and measure (default: the tests' tag); empty: skip")
    parser.add_argument("--real-node", action=argparse.BooleanOptionalAction, default=True,
                        help="the whole path on the real node (default on)")
    args = parser.parse_args()
    figures: list[Figure] = []
    if args.image:
        size = image.measure(args.image)
        image.report(size)
        figures.append(image_figure(size))
    testenv, started = TestEnv.up()  # builds the binaries first if needed, so the timed ups are warm
    try:
        figures = issue_figures(testenv, args) + figures
        results.write(figures, args.results)
        print(f"\nissue 12's figures ({args.results}):")
        print(results.table(figures), flush=True)
        bench_cursor()
        if args.testenv_ups:
            bench_testenv_up(args.testenv_ups)
        if args.real_node:
            bench_real_node(testenv)
    finally:
        if started and not os.environ.get("AGENTIC_TESTENV_KEEP"):
            TestEnv.down()


if __name__ == "__main__":
    main()
