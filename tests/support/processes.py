"""The processes this test (or benchmark) started: the stdio MCP servers, found by their parent."""

from __future__ import annotations

import os
from pathlib import Path


def children_running(name: str) -> list[int]:
    """Pids of this process's children whose command line mentions `name`, oldest first."""
    me = os.getpid()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
        if ppid == me and name.encode() in cmdline and "State:\tZ" not in status:
            found.append(int(proc.name))
    return sorted(found)


def newest_server_pid() -> int | None:
    """The newest `agentic-runner-mcp` this process started."""
    pids = children_running("agentic-runner-mcp")
    return pids[-1] if pids else None


def peak_rss_mb(pid: int | None) -> float:
    """A process's peak resident set (VmHWM), in MB; 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0
