"""`agentic-runner demo`: the real OpenCode agents (local backend) against the demo's scripted model,
the task branches pushed, and the fork's own `check-status` agreeing with what the demo printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.speckit_fork import Fork

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "agentic-runner")


def test_the_demo_runs_its_async_tasks_and_the_fork_sees_them_completed(tmp_path: Path, opencode_bin: str) -> None:
    root = tmp_path / "demo"
    proc = subprocess.run(
        [CLI, "demo", "--keep", str(root), "--opencode", opencode_bin],
        capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path / "home")},
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "model: a SCRIPTED stand-in at http://127.0.0.1:" in out
    assert "plan  T001  Phase 1  spawn" in out and "plan  T002  Phase 1  spawn" in out
    assert "[T001] opencode tool write" in out and "[T002] push: pushed agentic/001-demo/T002" in out
    assert "check-status T001 specs/001-demo -> completed" in out
    assert "branches on origin: 001-demo, agentic/001-demo/T001, agentic/001-demo/T002" in out
    repo = root / "greeter"
    fork = Fork.install(repo, repo / "specs" / "001-demo")
    assert fork.statuses("T001", "T002") == {"T001": "completed", "T002": "completed"}
    summary = fork.summary()
    assert (summary["completed"], summary["pending"], summary["all_done"]) == (2, 1, False)  # T003 is [SYNC]
    shown = subprocess.run(["git", "--git-dir", str(root / "origin.git"), "show", "agentic/001-demo/T001:src/hello.py"],
                           capture_output=True, text=True, check=True).stdout
    assert 'return f"hello, {name}"' in shown


def test_the_demo_says_how_to_get_opencode_when_it_has_none(tmp_path: Path) -> None:
    proc = subprocess.run(
        [CLI, "demo", "--opencode", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2
    assert "scripts/install-opencode.sh" in proc.stderr and not list(tmp_path.glob("agentic-demo-*"))
