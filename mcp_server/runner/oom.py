"""Out-of-memory kills in the runner's own memory cgroup (its container, in a pod).

When a container exceeds its memory limit the kernel kills its biggest process. On cgroup v1 (and
on v2 without memory.oom.group) that is a single process: often OpenCode or a command the agent
ran, not the runner, which then lives on to report it. The kernel counts those kills per cgroup:
`oom_kill` in memory.events (v2) or memory.oom_control (v1). The runner reads the counter of the
cgroup named in /proc/self/cgroup, or, inside a container whose /sys/fs/cgroup shows only its own
cgroup, of that mount's root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as a huge page-rounded number


@dataclass(frozen=True)
class MemoryCgroup:
    """Where the counters of one memory cgroup are."""

    directory: Path
    v2: bool

    def oom_kills(self) -> int | None:
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            text = (self.directory / name).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def limit_bytes(self) -> int | None:
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        try:
            value = (self.directory / name).read_text().strip()
        except OSError:
            return None
        if not value.isdigit() or int(value) >= UNLIMITED:
            return None
        return int(value)


def own_memory_cgroup(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> MemoryCgroup | None:
    """This process's memory cgroup, or None where there is none to read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    candidates: list[MemoryCgroup] = []
    for line in lines:
        _id, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if "memory" in controllers.split(","):
            candidates += [MemoryCgroup(root / "memory" / relative, False), MemoryCgroup(root / "memory", False)]
        elif controllers == "" and _id == "0":
            candidates += [MemoryCgroup(root / relative, True), MemoryCgroup(root, True)]
    for cgroup in candidates:
        if cgroup.oom_kills() is not None:
            return cgroup
    return None


def describe_kills(count: int, limit: int | None, opencode_killed: bool) -> str:
    """The runner's words for OOM kills during the agent's run."""
    victim = "OpenCode was OOM-killed" if opencode_killed else f"{count} process(es) of the agent were OOM-killed"
    where = f"the container's memory limit of {limit // (1024 * 1024)} MiB" if limit else "the memory limit"
    return f"out of memory: {victim} (the kernel's OOM killer, {count} kill(s) at {where})"
