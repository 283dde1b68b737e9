"""The detached supervisor of one local task: `python -m mcp_server.backends.local_supervisor DIR`.

Started by the local backend in a session of its own, it starts the runner
(`python -m mcp_server.runner run-task`, configured by the environment the backend gave it),
stamps each of its lines into DIR/log, forwards SIGTERM and SIGINT (a cancel) and writes
DIR/exit.json when the runner has ended. It does not depend on the server: restart the server and
every task is still there, read back from these files.

It is also the task's pusher (the pod's `git-push` sidecar, here): the runner gets only the
allowlisted environment of `local_env` (no ssh agent, no kubeconfig, no tokens) and pushes through the
push queue DIR/push-queue; the supervisor, outside the agent's reach, serves it with the developer's
credentials (their ssh agent and the credential helpers of their global git config, read before the
agent starts, scoped to the repository's host) and git config of its own (`runner.gitconfig`).
Where bubblewrap is installed (or AGENTIC_LOCAL_SANDBOX=bwrap), the runner runs in its sandbox
(`local_sandbox`); with AGENTIC_LOCAL_SANDBOX=podman it runs in the agent image, in the chart's pod
translated for podman (`local_podman`), and the supervisor also plays the pod's git-clone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from mcp_server.backends.local_env import agent_environment
from mcp_server.backends.local_podman import PodmanRun
from mcp_server.backends.local_sandbox import private_xdg, sandbox_command, sandbox_mode
from mcp_server.backends.local_state import write_json
from mcp_server.errors import ConfigError
from mcp_server.repohosts import ParsedRepo
from mcp_server.runner import gitrepo
from mcp_server.runner.context import load_context
from mcp_server.runner.gitconfig import config_env, credential_url, repo_config
from mcp_server.runner.gitrepo import GitAuth
from mcp_server.runner.output import Output
from mcp_server.runner.pusher import Pusher, check_target
from mcp_server.runner.pushqueue import PusherQueue
from mcp_server.runner.redact import Redactor
from mcp_server.runner.settings import Settings
from mcp_server.timeutil import log_stamp, now

QUEUE_DIR = "push-queue"


class StampedLog:
    """A text stream that writes each line into the task's log with its timestamp, under a lock."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            for line in text.splitlines():
                self._handle.write(f"{log_stamp(now())} {line}\n")
            self._handle.flush()
        return len(text)

    def flush(self) -> None:
        pass


def developer_helpers(environ: Mapping[str, str]) -> list[str]:
    """The credential helpers of the developer's global and system git config (never the repository's:
    the agent can write that)."""
    helpers: list[str] = []
    for scope in ("--system", "--global"):
        proc = subprocess.run(["git", "config", scope, "--get-all", "credential.helper"], capture_output=True,
                              text=True, env=dict(environ))
        helpers += [h for h in proc.stdout.splitlines() if h.strip()]
    return helpers


def developer_auth(settings: Settings, repo: ParsedRepo, environ: Mapping[str, str]) -> GitAuth:
    """The developer's own ways to authenticate, for this repository's host only."""
    auth = gitrepo.prepare_auth(settings, repo)
    if settings.git_auth != "none":
        return auth
    pairs = repo_config(repo)
    if repo.scheme in ("http", "https"):
        pairs += [(f"credential.{credential_url(repo)}.helper", h) for h in developer_helpers(environ)]
    env = config_env(pairs)
    for name in ("SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_SSH"):
        if environ.get(name):
            env[name] = environ[name]
    return GitAuth(env=env, secrets=auth.secrets, private_dir=auth.private_dir)


def start_pusher(task_dir: Path, environ: Mapping[str, str], out: Output, stop: threading.Event) -> threading.Thread:
    queue = PusherQueue(task_dir / QUEUE_DIR)

    def serve() -> None:
        from mcp_server.runner.gitpush import refuse_all

        home = Path(tempfile.mkdtemp(prefix="pusher-", dir=task_dir))
        auth = GitAuth()
        try:
            try:
                settings = Settings.from_environ(environ)
                ctx = load_context(settings.context_file)
                target = check_target(ctx.repo, ctx.task_branch, ctx.base_branch, settings.repo_hosts_json,
                                      cluster=False)
                auth = developer_auth(settings, target.repo, environ)
            except (ConfigError, ValueError) as exc:
                message = f"the local pusher cannot push: {exc}"
                out.log("push", message, level="error")
                refuse_all(queue, message, stop, out)
                return
            base_source = environ.get("AGENTIC_WORKTREE_REPO") or None
            pusher = Pusher(target, auth, home, environ, out.redact, settings.protected_paths, settings.push_attempts,
                            out.log, base_source=base_source)
            pusher.serve(queue, stop, settings.grace_seconds)
        finally:
            auth.close()
            shutil.rmtree(home, ignore_errors=True)

    thread = threading.Thread(target=serve, name="pusher", daemon=True)
    thread.start()
    return thread


def supervise(task_dir: Path) -> int:
    environ = dict(os.environ)
    queue = task_dir / QUEUE_DIR
    queue.mkdir(mode=0o700, exist_ok=True)
    tmp = task_dir / "tmp"
    tmp.mkdir(mode=0o700, exist_ok=True)
    runner_env = {**agent_environment(environ), "AGENTIC_PUSH_QUEUE": str(queue), "TMPDIR": str(tmp)}
    stop = threading.Event()
    with open(task_dir / "log", "a", encoding="utf-8") as log:
        stamped = StampedLog(log)
        out = Output(Redactor.from_environ(environ), stamped)  # type: ignore[arg-type]
        for _ in range(100):  # the backend writes process.json and spec.json just after starting us
            if (task_dir / "spec.json").exists():
                break
            time.sleep(0.05)
        podman: PodmanRun | None = None
        try:
            if sandbox_mode(environ) == "podman":
                podman = PodmanRun.prepare(task_dir, environ, out)
                sandbox = []
            else:
                sandbox = sandbox_command(environ, task_dir)
        except ConfigError as exc:
            if podman is not None:
                podman.close()
            return _refused(task_dir, str(exc), out)
        if podman is not None:
            command, env = podman.plan.agent.args, environ
        else:
            if sandbox:
                runner_env.update(private_xdg(environ, task_dir))
                out.log("setup", "the agent runs in a bubblewrap sandbox: the machine read-only, credentials "
                        "hidden, the repository's config and hooks read-only")
            else:
                out.log("setup", "the agent runs without a sandbox (AGENTIC_LOCAL_SANDBOX, or bubblewrap is not "
                        "installed): it can read and write what you can", level="warning")
            command, env = [*sandbox, sys.executable, "-m", "mcp_server.runner", "run-task"], runner_env
        pusher = start_pusher(task_dir, environ, out, stop)
        try:
            if podman is not None:
                podman.start_sidecars()
        except ConfigError as exc:
            stop.set()
            pusher.join(timeout=60)
            podman.close()
            return _refused(task_dir, str(exc), out)
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        write_json(task_dir / "runner.json", {"pid": proc.pid, "started_at": now().isoformat()})

        def forward(signum: int, _frame: object) -> None:
            for pid in _runner_pids(proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        assert proc.stdout is not None
        for line in proc.stdout:
            stamped.write(line.rstrip("\n") + "\n")
        code = proc.wait()
        if podman is not None:
            podman.finish(task_dir / "result.json")
        stop.set()
        pusher.join(timeout=60)
        if podman is not None:
            podman.close()
    write_json(task_dir / "exit.json", {"exit_code": code, "finished_at": now().isoformat()})
    return 0


def _refused(task_dir: Path, message: str, out: Output) -> int:
    """The task cannot start (no sandbox where one is required): a failed result and the exit record."""
    from mcp_server.runner.context import partial_ids
    from mcp_server.runner.result import TaskResult

    task_id, branch, base = partial_ids(task_dir / "context.json")
    result = TaskResult(task_id=task_id, status="failed", branch=branch, base=base, error=message)
    out.log("setup", message, level="error")
    (task_dir / "result.json").write_text(result.to_json())
    out.line(result.marker_line())
    write_json(task_dir / "exit.json", {"exit_code": 1, "finished_at": now().isoformat()})
    return 0


def _runner_pids(pid: int) -> list[int]:
    """The runner's process: `pid` itself, or (in a sandbox) the runner inside it, a descendant whose
    command line is the runner's. A sandbox's own processes would end the runner at once if signalled."""
    from mcp_server.runner.reaper import children

    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            cmdline = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mcp_server.runner" in cmdline and b"run-task" in cmdline and not cmdline[0].endswith(b"bwrap"):
            found.append(current)
            continue
        todo.extend(children(current))
    return found or [pid]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m mcp_server.backends.local_supervisor TASK_STATE_DIR\n")
        return 2
    return supervise(Path(argv[0]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
