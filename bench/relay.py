"""`log_relay_lost`, `log_relay_repeated`, `log_relay_p95_s`, `log_relay_backlog_lines`,
`server_peak_rss_mb`: 20 running pods each "print" 200 lines/s for 30 s (lines appended to the
files kwok serves as their containers' logs, each carrying its pod, its number and its write time),
while one client follows them all with `stream_task_logs` at the default settings (no max_lines, no
wait_seconds: what an agent calling the tool does), each call continuing from the previous cursor.

- lost: lines never delivered although a later line of the same pod was (a gap);
- repeated: deliveries beyond the first of a line;
- p95: the 95th percentile of (arrival at the client - write time), over the delivered lines;
- backlog: lines written but not delivered `BACKLOG_GRACE` seconds after the writers stopped;
- peak RSS: the server process's VmHWM after the run.

The anchor is kubernetes-mcp-server's `pods_log` at its default tail (100 lines), called for each pod
in turn under the same load: it has no cursor, so a client sees whatever the tail holds."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from bench.results import Figure, percentile
from bench.world import World
from tests.support.mcp_client import McpClient
from tests.support.processes import newest_server_pid, peak_rss_mb

BACKLOG_GRACE = 10.0
LINE_RE = re.compile(r"^(?P<tag>[A-Z]) (?P<pod>\d{2}) (?P<seq>\d{7}) (?P<at>\d+\.\d{6}) ")
PADDING = "x" * 60


@dataclass
class Load:
    """The writers: `rate` lines/s into each file for `seconds`, in ticks of 50 ms."""

    files: list[Path]
    rate: int
    seconds: float
    tag: str
    written: list[int] = field(default_factory=list)
    stopped_at: float = 0.0

    def run(self) -> None:
        tick = 0.05
        per_tick = max(1, round(self.rate * tick))
        self.written = [0] * len(self.files)
        start = time.time()
        ticks = round(self.seconds / tick)
        handles = [path.open("a", encoding="utf-8") for path in self.files]
        try:
            for n in range(ticks):
                for i, f in enumerate(handles):
                    lines = []
                    for _ in range(per_tick):
                        now = time.time()
                        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
                        lines.append(f"{stamp} stdout F {self.tag} {i:02d} {self.written[i]:07d} {now:.6f} {PADDING}\n")
                        self.written[i] += 1
                    f.write("".join(lines))
                    f.flush()
                pause = start + (n + 1) * tick - time.time()
                if pause > 0:
                    time.sleep(pause)
        finally:
            for f in handles:
                f.close()
            self.stopped_at = time.time()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


@dataclass
class Tally:
    """What a client received: (pod, seq) -> arrival times."""

    tag: str
    arrivals: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    calls: int = 0

    def add(self, text: str, arrived: float) -> None:
        match = LINE_RE.match(text)
        if not match or match["tag"] != self.tag:
            return
        key = (int(match["pod"]), int(match["seq"]))
        seen = self.arrivals.setdefault(key, [])
        if not seen:
            self.latencies.append(arrived - float(match["at"]))
        seen.append(arrived)

    def lost(self) -> int:
        last: dict[int, int] = {}
        for pod, seq in self.arrivals:
            last[pod] = max(last.get(pod, -1), seq)
        have = Counter(pod for pod, _seq in self.arrivals)
        return sum(last[pod] + 1 - have[pod] for pod in last)

    def repeated(self) -> int:
        return sum(len(v) - 1 for v in self.arrivals.values())

    def undelivered_at(self, written: list[int], moment: float) -> int:
        delivered = sum(1 for times in self.arrivals.values() if times[0] <= moment)
        return sum(written) - delivered


async def _follow(mcp: McpClient, tally: Tally, load: Load, writer: threading.Thread, drain: float) -> None:
    cursor = None
    while True:
        args = {"cursor": cursor} if cursor else {}
        chunk = (await mcp.call("stream_task_logs", args)).ok
        arrived = time.time()
        tally.calls += 1
        for line in chunk["lines"]:
            tally.add(line["text"], arrived)
        cursor = chunk["cursor"]
        if writer.is_alive():
            continue
        complete = len(tally.arrivals) >= sum(load.written)
        if complete or arrived - load.stopped_at > drain:
            return


def _figures(tally: Tally, load: Load, rss: float, anchor: Tally | None, anchor_load: Load | None,
             n_pods: int) -> list[Figure]:
    lost, repeated = tally.lost(), tally.repeated()
    p95 = round(percentile(tally.latencies, 0.95), 2)
    p50 = round(percentile(tally.latencies, 0.5), 2)
    backlog = tally.undelivered_at(load.written, load.stopped_at + BACKLOG_GRACE)
    never = sum(load.written) - len(tally.arrivals)
    anchors: dict[str, dict[str, float]] = {"lost": {}, "repeated": {}, "p95": {}}
    if anchor is not None and anchor_load is not None:
        delivered = len(anchor.arrivals)
        total = sum(anchor_load.written)
        anchors["lost"] = {"kubernetes_mcp_server_pods_log_lost": float(total - delivered),
                           "kubernetes_mcp_server_pods_log_lost_pct": round(100 * (total - delivered) / total, 1)}
        anchors["repeated"] = {"kubernetes_mcp_server_pods_log_repeated": float(anchor.repeated())}
        anchors["p95"] = {"kubernetes_mcp_server_pods_log_p95_s": round(percentile(anchor.latencies, 0.95), 2)}
    written = sum(load.written)
    load_note = (f"{n_pods} pods x {load.rate} lines/s x {load.seconds:.0f} s = {written} lines, "
                 f"{tally.calls} stream_task_logs calls at the default settings")
    return [
        Figure(name="log_relay_lost", value=lost, unit="lines", n=written, target="0", meets=lost == 0,
               anchors=anchors["lost"], note=load_note + f"; {never} never delivered by the end of the drain"),
        Figure(name="log_relay_repeated", value=repeated, unit="lines", n=written, target="0", meets=repeated == 0,
               anchors=anchors["repeated"]),
        Figure(name="log_relay_p95_s", value=p95, unit="s", n=len(tally.latencies), target="<= 1.5 s",
               meets=p95 <= 1.5 and len(tally.latencies) > 0, anchors={"p50_s": p50, **anchors["p95"]},
               note="write to arrival at the MCP client"),
        Figure(name="log_relay_backlog_lines", value=backlog, unit="lines", n=written,
               target=f"0 ({BACKLOG_GRACE:.0f} s after the writers stop)", meets=backlog == 0),
        Figure(name="server_peak_rss_mb", value=round(rss, 1), unit="MB", n=1, target="<= 250 MB",
               meets=0 < rss <= 250, note=f"VmHWM of the MCP server process that followed the {n_pods} streams"),
    ]


async def _anchor(world: World, pods: list[str], files: list[Path], rate: int, seconds: float) -> tuple[Tally, Load]:
    tally = Tally("K")
    load = Load(files, rate, seconds, "K")
    async with world.connect_kmcp() as client:
        writer = load.start()
        while writer.is_alive() or time.time() - load.stopped_at < 3:
            for pod in pods:
                result = await client.call("pods_log", {"name": pod, "namespace": world.namespace,
                                                        "container": "agent"})
                arrived = time.time()
                tally.calls += 1
                for text in result.text.splitlines():
                    tally.add(text, arrived)
    return tally, load


async def measure(world: World, pods_n: int, rate: int, seconds: float, drain: float,
                  anchor: bool) -> list[Figure]:
    async with world.connect() as mcp:
        for i in range(pods_n):
            assert (await mcp.call("spawn_task_pod", {"task_id": f"P{i:02d}", "description": f"talk {i}"})).ok
        pods = world.wait_pods_running(pods_n, timeout=300)
        files = [world.testenv.pod_log_file(world.namespace, pod) for pod in pods]
        tally = Tally("R")
        load = Load(files, rate, seconds, "R")
        await mcp.call("stream_task_logs", {"wait_seconds": 0})  # the server has its client
        writer = load.start()
        await _follow(mcp, tally, load, writer, drain)
        rss = peak_rss_mb(newest_server_pid())
    anchor_tally = anchor_load = None
    if anchor:
        anchor_tally, anchor_load = await _anchor(world, pods, files, rate, seconds)
    await anyio.sleep(0)
    return _figures(tally, load, rss, anchor_tally, anchor_load, pods_n)
