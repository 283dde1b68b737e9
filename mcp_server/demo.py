"""`agentic-runner demo`: the product working in about a minute, without a cluster or an API key.

It makes a throwaway git repository (with a bare `origin` beside it) holding a small spec-kit
feature, hands the feature's [ASYNC] tasks to agents with the local backend — the same task runner
and the real, pinned OpenCode as in a pod — against a scripted stand-in model on 127.0.0.1
(`demo_model`, it says so), streams the agents' logs, and ends with the pushed task branches, the
spec-kit hand-off files and what the fork's `check-status` answers for each task.

OpenCode is found as `--opencode`, `$AGENTIC_OPENCODE_BIN`, `opencode` on PATH, or what
`scripts/install-opencode.sh` installed (`~/.cache/agentic-sdlc/opencode/<version>/bin/opencode`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TextIO

import anyio

from mcp_server.async_state import AsyncState
from mcp_server.config import load_settings
from mcp_server.demo_model import MODEL, PROVIDER, DemoModel
from mcp_server.logs.prefix import Prefixer
from mcp_server.models import LogLine, SpawnAsyncRequest, StreamLogsRequest, TaskLogState
from mcp_server.tasks_meta import TasksMeta

FEATURE = "001-demo"
LINE_MAX = 160
TASKS_MD = """\
# Tasks: Demo greeter

## Phase 1: Setup

- [ ] T001 [P] [ASYNC] Create the greeting in src/hello.py
- [ ] T002 [P] [ASYNC] Write the usage notes in docs/usage.md
- [ ] T003 [SYNC] Review both with the team (depends on T001, T002)

**Checkpoint**: the greeter exists
"""
FILES = {
    "T001": ("src/hello.py", 'def hello(name: str) -> str:\n    return f"hello, {name}"\n'),
    "T002": ("docs/usage.md", "# Usage\n\n`python -c 'from src.hello import hello; print(hello(\"you\"))'`\n"),
}


class DemoError(Exception):
    pass


def find_opencode(given: str | None, environ: Mapping[str, str]) -> str:
    for candidate in (given, environ.get("AGENTIC_OPENCODE_BIN"), shutil.which("opencode")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentic-sdlc" / "opencode"
    for binary in sorted(cache.glob("*/bin/opencode"), reverse=True):
        if os.access(binary, os.X_OK):
            return str(binary)
    raise DemoError(
        "the demo runs the real OpenCode and found none: pass --opencode PATH, set AGENTIC_OPENCODE_BIN, put "
        "`opencode` on PATH, or install the pinned one with scripts/install-opencode.sh (npm i opencode-ai)."
    )


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DemoError(f"git {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def make_project(root: Path) -> Path:
    origin = root / "origin.git"
    _git(root, "init", "-q", "--bare", str(origin))
    repo = root / "greeter"
    feature = repo / "specs" / FEATURE
    feature.mkdir(parents=True)
    (repo / ".specify").mkdir()
    (repo / "README.md").write_text("# greeter\n")
    (feature / "spec.md").write_text("# Feature Specification: Demo greeter\n\nGreet a person by name.\n")
    (feature / "plan.md").write_text("# Implementation Plan\n\nsrc/hello.py and docs/usage.md.\n")
    (feature / "tasks.md").write_text(TASKS_MD)
    _git(repo, "init", "-q", "-b", FEATURE)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=demo", "-c", "user.email=demo@example.com", "commit", "-q", "-m",
         "feature: spec, plan, tasks")
    _git(repo, "remote", "add", "origin", f"file://{origin}")
    _git(repo, "push", "-q", "origin", FEATURE)
    return repo


def demo_environ(root: Path, opencode: str, model: DemoModel) -> dict[str, str]:
    """What the agents run with: an OpenCode of their own (HOME, XDG dirs), the stand-in model."""
    home = root / "home"
    (home / "tmp").mkdir(parents=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "TMPDIR": str(home / "tmp"),
        "npm_config_registry": "http://127.0.0.1:9/",  # OpenCode's background plugin install stays local
        "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.com",
        "AGENTIC_BACKEND": "local",
        "AGENTIC_REPO_ROOT": str(root / "greeter"),
        "AGENTIC_OPENCODE_BIN": opencode,
        "AGENTIC_OPENCODE_MODEL": f"{PROVIDER}/{MODEL}",
        "AGENTIC_OPENCODE_CONFIG": json.dumps({**model.opencode_config(), "agent": {"title": {"disable": True}}}),
        "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    }


def run_demo(root: Path, opencode: str, out: TextIO) -> int:
    from mcp_server.backends.local import LocalBackend
    from mcp_server.service import RunnerService

    repo = make_project(root)
    out.write(f"demo repository: {repo} (origin {root / 'origin.git'}), feature branch {FEATURE}\n")
    with DemoModel(FILES) as model:
        out.write(f"model: a SCRIPTED stand-in at {model.base_url} (no LLM, no API key); OpenCode: {opencode}\n\n")
        environ = demo_environ(root, opencode, model)
        settings = load_settings(environ=environ)
        service = RunnerService(settings, lambda env, s: LocalBackend(env, s, environ=environ), environ=environ)
        spawned = service.spawn_async(SpawnAsyncRequest(tasks_file=f"specs/{FEATURE}/tasks.md"))
        for entry in spawned.plan:
            out.write(f"plan  {entry.task_id}  {entry.phase}  {entry.action}  {entry.reason or ''}\n".rstrip() + "\n")
        out.write(spawned.message + "\n\n")
        prefixer = Prefixer(False)

        async def on_batch(lines: list[LogLine], _states: list[TaskLogState]) -> None:
            for line in lines:
                text = prefixer.format(line.model_copy(update={"text": readable(line.text)}))
                out.write((text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…") + "\n")
            out.flush()

        ids = [h.task_id for h in spawned.handles]
        cursor = None
        for _ in range(60):  # at most 60 x 10 s
            request = StreamLogsRequest(task_ids=ids, cursor=cursor, wait_seconds=10)
            chunk = anyio.run(partial(service.stream_logs, request, on_batch=on_batch))
            cursor = chunk.cursor
            if chunk.all_finished and not chunk.more:
                break
    out.write("\n")
    failed = 0
    state = AsyncState(repo / "specs" / FEATURE)
    for task_id in ids:
        status = service.status(request_for(task_id))
        result = status.result
        sha = _git(root, "--git-dir", str(root / "origin.git"), "rev-parse", "--verify", "-q",
                   f"refs/heads/{status.branch}") if status.phase == "succeeded" else ""
        out.write(f"{task_id}: {status.phase}, branch {status.branch} pushed at {sha[:12] or '-'}"
                  f" — {result.summary if result else status.reason}\n")
        failed += status.phase != "succeeded"
    out.write("\nspec-kit (the fork's check-status rules on the files the observing calls wrote):\n")
    for task_id in ids:
        out.write(f"  check-status {task_id} specs/{FEATURE} -> {state.check_status(task_id)}\n")
    meta = TasksMeta(repo / "specs" / FEATURE).tasks()
    out.write("  tasks_meta.json: " + ", ".join(f"{k} {v.get('status')}" for k, v in sorted(meta.items())) + "\n")
    branches = _git(root, "--git-dir", str(root / "origin.git"), "branch", "--format=%(refname:short)").split()
    out.write(f"\nbranches on origin: {', '.join(branches)}\n")
    return 1 if failed else 0


def readable(text: str) -> str:
    """A log line for people: OpenCode's JSON events as `opencode <kind> ...`, the runner's as its msg."""
    try:
        event = json.loads(text)
    except ValueError:
        return text
    if not isinstance(event, dict):
        return text
    part = event.get("part") if isinstance(event.get("part"), dict) else {}
    if event.get("type") == "tool_use":
        state = part.get("state") or {}
        return f"opencode tool {part.get('tool')} {json.dumps(state.get('input'))} -> {state.get('status')}"
    if event.get("type") == "text":
        return f"opencode says: {part.get('text', '')}"
    if event.get("type") in ("step_start", "step_finish"):
        return f"opencode {event['type']}" + (f" ({part['reason']})" if part.get("reason") else "")
    if "phase" in event and "msg" in event:
        return f"{event['phase']}: {event['msg']}"
    return text


def request_for(task_id: str):  # noqa: ANN201
    from mcp_server.models import TaskRequest

    return TaskRequest(task_id=task_id)


def demo_command(keep: str | None, opencode: str | None, out: TextIO, err: TextIO) -> int:
    try:
        binary = find_opencode(opencode, os.environ)
        if keep:
            root = Path(keep).resolve()
            root.mkdir(parents=True, exist_ok=False)
            return run_demo(root, binary, out)
        with tempfile.TemporaryDirectory(prefix="agentic-demo-") as tmp:
            code = run_demo(Path(tmp), binary, out)
            out.write("(the demo's directory is removed now; --keep DIR keeps it)\n")
            return code
    except (DemoError, FileExistsError) as exc:
        err.write(f"agentic-runner demo: {exc}\n")
        return 2
