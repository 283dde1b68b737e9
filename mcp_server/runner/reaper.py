"""Processes the agent leaves behind (a dev server it started with `nohup ... &`): OpenCode starts
its shell tools in process groups of their own, so ending OpenCode's group does not end them. The
runner makes itself a child subreaper (Linux prctl), so such orphans become its children, and ends
them when the agent is done. In a pod the container's end would kill them anyway; in the local
backend they would outlive the task on the developer's machine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def end_leftovers(wait_seconds: float = 3.0, rounds: int = 5) -> list[int]:
    """SIGTERM, then SIGKILL, every child process of this process (after the agent has ended, there
    should be none); returns the pids that were ended."""
    ended: list[int] = []
    for _ in range(rounds):
        pids = children(os.getpid())
        if not pids:
            break
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline and pids & children(os.getpid()):
                _reap(pids)
                time.sleep(0.1)
            _reap(pids)
            if not pids & children(os.getpid()):
                break
        ended.extend(sorted(pids))
    return ended


def _reap(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
