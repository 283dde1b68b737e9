"""`list_agents_1000_ms`, `list_agents_1000_requests`: `list_agents` over MCP stdio with 1,000
running tasks in the namespace, beside kubernetes-mcp-server's `pods_list_in_namespace` and the two
raw lists (the namespace's task Jobs and pods) it cannot do with less; the requests one call makes
are counted from the API server's audit log (testenv/audit-policy.yaml), not estimated.

The tasks: one spawned through the server, the others raw POSTs of a copy of its Job; two extra
kwok nodes take the pods (the test control plane's own two have room for 110 each)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from bench.rawkube import RawKube, job_copy
from bench.results import Figure, median_ms
from bench.world import World
from mcp_server import naming
from tests.support.audit import AuditLog, count_by_kind
from tests.support.runner_env import FEATURE
from tests.support.testenv import TestEnv

LIST_TARGET_RATIO = 1.2
BENCH_NODES = ("kwok-bench-0", "kwok-bench-1")


@contextmanager
def bench_nodes(testenv: TestEnv, pods_each: int) -> Iterator[None]:
    """Kwok nodes with room for `pods_each` pods each (kwok manages every node labelled type=kwok)."""
    for node in BENCH_NODES:
        testenv.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Node
metadata:
  name: {node}
  annotations: {{node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}}
  labels: {{type: kwok, kubernetes.io/hostname: {node}, kubernetes.io/os: linux, kubernetes.io/arch: amd64}}
status:
  allocatable: {{cpu: "4000", memory: 16Ti, pods: "{pods_each}"}}
  capacity: {{cpu: "4000", memory: 16Ti, pods: "{pods_each}"}}
""")
    try:
        yield
    finally:
        testenv.kubectl("delete", "node", *BENCH_NODES, "--wait=false", check=False)


def populate(world: World, count: int) -> float:
    """`count` running tasks in the namespace; the seconds it took."""
    start = time.perf_counter()
    admin = RawKube(world.testenv.kubeconfig("admin"))
    template = admin.list(world.jobs_path, naming.selector("dev"))["items"][0]

    def post(i: int) -> None:
        admin.post(world.jobs_path, job_copy(template, naming.job_name(f"L{i:04d}", FEATURE), f"L{i:04d}"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, range(1, count)))
    admin.close()
    world.wait_pods_running(count, logs=False)  # list_agents reads no logs
    return time.perf_counter() - start


async def measure(world: World, count: int, repeat: int) -> list[Figure]:
    with bench_nodes(world.testenv, count // 2 + 60):
        async with world.connect() as mcp:
            assert (await mcp.call("spawn_task_pod", {"task_id": "L0000", "description": "the first task"})).ok
        setup_s = populate(world, count)
        audit = AuditLog.of(world.testenv.state_dir)
        async with world.connect() as mcp:
            warm = (await mcp.call("list_agents", {})).ok
            assert len(warm["agents"]) == count, len(warm["agents"])
            mark = audit.mark()
            assert (await mcp.call("list_agents", {})).ok
            time.sleep(0.5)  # the audit backend has written the call's last entries
            requests = audit.since(mark, user="developer", namespace=world.namespace)
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                listed = (await mcp.call("list_agents", {})).ok
                samples.append(time.perf_counter() - start)
                assert len(listed["agents"]) == count
        raw = world.raw()
        selector = naming.selector("dev")
        two_lists = []
        for _ in range(repeat + 1):
            start = time.perf_counter()
            jobs = raw.list(world.jobs_path, selector)["items"]
            pods = raw.list(world.pods_path, selector)["items"]
            two_lists.append(time.perf_counter() - start)
            assert len(jobs) == count and len(pods) >= count
        raw.close()
        kmcp = []
        async with world.connect_kmcp() as client:
            for i in range(repeat + 1):
                start = time.perf_counter()
                result = await client.call("pods_list_in_namespace", {"namespace": world.namespace})
                if i:
                    kmcp.append(time.perf_counter() - start)
                assert not result.is_error, result.text
    value, lists_ms, kmcp_ms = median_ms(samples), median_ms(two_lists[1:]), median_ms(kmcp)
    kinds = count_by_kind(requests)
    log_reads = kinds.get("get pods/log", 0)
    others = {k: v for k, v in kinds.items() if k not in ("list jobs", "list pods")}
    return [
        Figure(
            name=f"list_agents_{count}_ms", value=value, unit="ms", n=repeat,
            target=f"<= {LIST_TARGET_RATIO}x the two raw lists ({lists_ms * LIST_TARGET_RATIO:.0f} ms)",
            meets=value <= lists_ms * LIST_TARGET_RATIO,
            anchors={"two_raw_lists_ms": lists_ms, "kubernetes_mcp_server_pods_list_ms": kmcp_ms},
            note=f"{count} running tasks (setup {setup_s:.0f} s); list_agents over MCP stdio, medians",
        ),
        Figure(
            name=f"list_agents_{count}_requests", value=len(requests), unit="requests", n=1,
            target="lists only: one list per kind (and page), no per-pod log reads",
            meets=not others and log_reads == 0,
            anchors={kind.replace(" ", "_"): float(n) for kind, n in kinds.items()},
            note="counted in the API server's audit log (user developer, the namespace) for one call",
        ),
    ]
