"""`startup_tools_list_ms`: from starting a stdio server's process to the answer of `tools/list`
(initialize + tools/list, over real stdio), for the project's server beside the bare `mcp` SDK server
and kubernetes-mcp-server; the samples interleave the three so that load drifts hit them alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.results import Figure, median_ms
from bench.world import World

GOAL_RATIO = 1.15


async def _once(open_client: Callable[[], Any]) -> float:
    start = time.perf_counter()
    async with open_client() as client:
        await client.tools()
        elapsed = time.perf_counter() - start
    return elapsed


async def measure(world: World, repeat: int) -> list[Figure]:
    samples: dict[str, list[float]] = {"project": [], "bare": [], "kmcp": []}
    openers = {"project": world.connect, "bare": world.bare_server, "kmcp": world.connect_kmcp}
    for opener in openers.values():  # warm the page cache of each once
        await _once(opener)
    for _ in range(repeat):
        for name, opener in openers.items():
            samples[name].append(await _once(opener))
    project, bare, kmcp = (median_ms(samples[k]) for k in ("project", "bare", "kmcp"))
    return [Figure(
        name="startup_tools_list_ms", value=project, unit="ms", n=repeat,
        target=f"<= {GOAL_RATIO}x the bare SDK server ({bare * GOAL_RATIO:.0f} ms)",
        meets=project <= bare * GOAL_RATIO,
        anchors={"bare_mcp_sdk_server_ms": bare, "kubernetes_mcp_server_ms": kmcp,
                 "ratio_to_bare": round(project / bare, 2)},
        note="process start to the tools/list answer over stdio (initialize included), medians, interleaved",
    )]
