"""`spawn_overhead_ms`, `spawn_vs_helm_kubectl_speedup`, `burst_50_s`: one `spawn_task_pod` over
MCP stdio to the Job created, beside a raw POST of the same Job, kubernetes-mcp-server's
`resources_create_or_update` of it over MCP, and `helm template | kubectl apply` of a one-Job chart
(bench/anchors/seed-task, the way a first version spawns); then 50 tasks at once through
`spawn_async_tasks`, beside 50 raw POSTs and 50 helm+kubectl runs."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

from bench.rawkube import job_copy
from bench.results import Figure, median_ms
from bench.world import World
from mcp_server import naming
from tests.support.runner_env import FEATURE

SEED_CHART = Path(__file__).resolve().parent / "anchors" / "seed-task"
TASKS_MD_HEADER = "# Tasks: 001 feature\n\n## Phase 1\n"


def _helm_kubectl(world: World, task_id: str) -> float:
    env = world.testenv.environ("admin")  # in a plain namespace, where no Role of the chart's applies
    env["HOME"] = str(world.repo.parent / "home")  # kubectl's discovery cache stays warm between runs
    pipeline = (
        f"helm template {shlex.quote(task_id.lower())} {shlex.quote(str(SEED_CHART))} --set taskId={task_id} "
        f"--set baseBranch={FEATURE} | kubectl apply -n {world.seed_namespace} -f -"
    )
    start = time.perf_counter()
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{pipeline} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return elapsed


async def measure_spawn(world: World, repeat: int, helm_repeat: int) -> list[Figure]:
    async with world.connect() as mcp:
        first_start = time.perf_counter()
        first = (await mcp.call("spawn_task_pod", {"task_id": "W000", "description": "warm up"})).ok
        first_ms = (time.perf_counter() - first_start) * 1000
        spawn = []
        for i in range(repeat):
            start = time.perf_counter()
            result = await mcp.call("spawn_task_pod", {"task_id": f"S{i:03d}", "description": f"task {i}"})
            spawn.append(time.perf_counter() - start)
            assert result.ok["created"], result.text
    raw = world.raw()
    template = raw.request("GET", f"{world.jobs_path}/{first['job']}")
    post = []
    for i in range(repeat):
        body = job_copy(template, naming.job_name(f"R{i:03d}", FEATURE), f"R{i:03d}")
        start = time.perf_counter()
        raw.post(world.jobs_path, body)
        post.append(time.perf_counter() - start)
    dry = []  # the same POST, judged and not stored: the API server's own share of a create
    for i in range(repeat):
        body = job_copy(template, naming.job_name(f"D{i:03d}", FEATURE), f"D{i:03d}")
        start = time.perf_counter()
        raw.post(f"{world.jobs_path}?dryRun=All", body)
        dry.append(time.perf_counter() - start)
    raw.close()
    kmcp = []
    # Its create is a server-side apply (verb patch), which the chart's Role does not grant: the admin.
    async with world.connect_kmcp("admin") as client:
        for i in range(-1, repeat):  # the first one warms it up
            body = job_copy(template, naming.job_name(f"K{i + 1:03d}", FEATURE), f"K{i + 1:03d}")
            body["metadata"]["namespace"] = world.namespace
            start = time.perf_counter()
            result = await client.call("resources_create_or_update", {"resource": json.dumps(body)})
            if i >= 0:
                kmcp.append(time.perf_counter() - start)
            assert not result.is_error, result.text
    _helm_kubectl(world, "H999")  # warm kubectl's discovery cache
    helm = [_helm_kubectl(world, f"H{i:03d}") for i in range(helm_repeat)]
    spawn_ms, post_ms, dry_ms, kmcp_ms, helm_ms = (median_ms(s) for s in (spawn, post, dry, kmcp, helm))
    speedup = round(helm_ms / spawn_ms, 1)
    return [
        Figure(
            name="spawn_overhead_ms", value=spawn_ms, unit="ms", n=repeat,
            target=f"< kubernetes-mcp-server's create over MCP ({kmcp_ms:.0f} ms)", meets=spawn_ms < kmcp_ms,
            anchors={"raw_post_ms": post_ms, "over_raw_post_ms": round(spawn_ms - post_ms, 1),
                     "kubernetes_mcp_server_create_ms": kmcp_ms, "first_spawn_of_the_server_ms": round(first_ms, 1)},
            note="spawn_task_pod over MCP stdio to its answer (the Job created), medians after one warm-up call",
        ),
        Figure(
            name="spawn_vs_helm_kubectl_speedup", value=speedup, unit="x", n=helm_repeat,
            target=">= 10x", meets=speedup >= 10,
            anchors={"helm_template_kubectl_apply_ms": helm_ms, "spawn_task_pod_ms": spawn_ms,
                     "raw_post_ms": post_ms, "raw_post_dry_run_ms": dry_ms,
                     "raw_post_speedup": round(helm_ms / post_ms, 1)},
            note="helm template of a one-Job chart piped into kubectl apply (warm discovery cache); "
                 "raw_post_speedup: the most any client that POSTs the Job could reach here",
        ),
    ]


def write_feature(world: World, count: int) -> str:
    feature = world.repo / "specs" / FEATURE
    (feature / "tasks_dag.json").unlink(missing_ok=True)
    tasks = "".join(f"- [ ] T{i:03d} [P] [ASYNC] Implement part {i} in src/part{i}.py\n" for i in range(1, count + 1))
    (feature / "tasks.md").write_text(TASKS_MD_HEADER + tasks)
    return f"specs/{FEATURE}/tasks.md"


async def measure_burst(world: World, count: int, seed: bool) -> list[Figure]:
    tasks_file = write_feature(world, count)
    async with world.connect() as mcp:
        await mcp.call("list_agents", {})  # the server is up and has its client
        start = time.perf_counter()
        result = (await mcp.call("spawn_async_tasks", {"tasks_file": tasks_file, "max_parallel": 50})).ok
        burst = time.perf_counter() - start
    assert len(result["handles"]) == count, result["message"]
    raw = world.raw()
    template = raw.request("GET", f"{world.jobs_path}/{result['handles'][0]['job']}")
    start = time.perf_counter()
    for i in range(count):
        raw.post(world.jobs_path, job_copy(template, naming.job_name(f"B{i:03d}", FEATURE), f"B{i:03d}"))
    raw_s = time.perf_counter() - start
    raw.close()
    anchors = {"raw_posts_s": round(raw_s, 2)}
    if seed:
        _helm_kubectl(world, "H999")
        start = time.perf_counter()
        for i in range(count):
            _helm_kubectl(world, f"H{i:03d}")
        anchors["helm_template_kubectl_apply_s"] = round(time.perf_counter() - start, 2)
    return [Figure(
        name="burst_50_s" if count == 50 else f"burst_{count}_s", value=round(burst, 2), unit="s", n=1,
        target="<= 3 s", meets=burst <= 3, anchors=anchors,
        note=f"spawn_async_tasks of a tasks.md with {count} open [ASYNC] tasks in one phase (max_parallel 50)",
    )]
