"""Runs the real task runner (`python -m mcp_server.runner`) as a process, the way a pod or the local
backend does, with the real OpenCode binary pointed at a scripted model on 127.0.0.1, and reads back
what it printed and the result it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_server.logs.results import result_from_lines
from mcp_server.runner.result import TaskResult
from tests.support.git_remotes import BASE_BRANCH
from tests.support.scripted_model import ScriptedModel

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_ID = "T001"
SCRIPTED_API_KEY = "sk-scripted-9f8e7d6c5b4a39281706"


def provision_opencode() -> str:
    """The pinned OpenCode binary, installed by scripts/install-opencode.sh on first use."""
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "install-opencode.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"scripts/install-opencode.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


def task_context(repo: str, task_id: str = TASK_ID, base: str = BASE_BRANCH, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "task_id": task_id,
        "description": "Change the greeting in README.md from 'hello world' to 'hello agent'",
        "repo": repo,
        "base_branch": base,
        "task_branch": f"agentic/{base}/{task_id}",
        "environment": "dev",
        "model": None,
        "agent": None,
        "feature_dir": "specs/001-feature",
        "context_files": [{"path": "specs/001-feature/plan.md", "content": "# Plan\n\nKeep it small.\n"}],
    }
    context.update(extra)
    return context


def offline_env(home: Path) -> dict[str, str]:
    """A clean environment for OpenCode and git: its own HOME and XDG dirs, no outside network
    (npm's registry points at a closed port on 127.0.0.1: OpenCode installs config-dir plugins
    in the background)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "TMPDIR": str(home / "tmp"),
        "npm_config_registry": "http://127.0.0.1:9/",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@dataclass
class RunnerRun:
    exit_code: int
    lines: list[str]
    result: TaskResult | None
    result_file_text: str

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    def runner_lines(self) -> list[dict[str, Any]]:
        return [rec for rec in map(_json, self.lines) if rec is not None and "phase" in rec and "msg" in rec]

    def opencode_events(self) -> list[dict[str, Any]]:
        return [
            rec for rec in map(_json, self.lines) if rec is not None and "type" in rec and "sessionID" in rec
        ]

    def tool_uses(self, tool: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.opencode_events()
            if e.get("type") == "tool_use" and e.get("part", {}).get("tool") == tool
        ]

    def phases(self) -> list[str]:
        seen: list[str] = []
        for rec in self.runner_lines():
            if not seen or seen[-1] != rec["phase"]:
                seen.append(rec["phase"])
        return seen


def _json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class RunningRunner:
    """A runner process whose stdout is collected line by line while it runs."""

    def __init__(self, proc: subprocess.Popen[str], result_file: Path) -> None:
        self.proc = proc
        self.result_file = result_file
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        "the runner ended before the expected line:\n" + "\n".join(self.lines)
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no expected line after {timeout}s:\n" + "\n".join(self.lines[-30:])
                    )
                self._cond.wait(min(left, 1.0))

    def send(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 300) -> RunnerRun:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the runner did not end in time:\n" + "\n".join(self.lines[-40:])) from None
        self._reader.join(timeout=10)
        result = result_from_lines(self.lines[-1:])
        text = self.result_file.read_text() if self.result_file.exists() else ""
        return RunnerRun(code, list(self.lines), result, text)


@dataclass
class RunnerHarness:
    """Everything one runner process needs: a workspace, HOME, result file, context file, env."""

    root: Path
    opencode_bin: str
    model: ScriptedModel
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("home", "home/tmp", "workspace"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def result_file(self) -> Path:
        return self.root / "termination-log"

    def env(self, context: Mapping[str, Any], **extra: str) -> dict[str, str]:
        context_file = self.root / "context.json"
        context_file.write_text(json.dumps(context))
        env = offline_env(self.root / "home")
        env.update(
            {
                "AGENTIC_TASK_CONTEXT_FILE": str(context_file),
                "AGENTIC_WORKSPACE": str(self.workspace),
                "AGENTIC_RESULT_FILE": str(self.result_file),
                "AGENTIC_OPENCODE_BIN": self.opencode_bin,
                "AGENTIC_OPENCODE_MODEL": self.model.model,
                "AGENTIC_OPENCODE_CONFIG": json.dumps(self.model.opencode_config()),
                "SCRIPTED_API_KEY": SCRIPTED_API_KEY,
                # a host, not a pod: the remotes of these tests are file:// too (a pod refuses them)
                "AGENTIC_ALLOW_LOCAL_REPO": "1",
            }
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def start(self, context: Mapping[str, Any], **extra: str) -> RunningRunner:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_server.runner", "run-task"],
            env=self.env(context, **extra),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        return RunningRunner(proc, self.result_file)

    def run(self, context: Mapping[str, Any], timeout: float = 300, **extra: str) -> RunnerRun:
        return self.start(context, **extra).finish(timeout)
