"""`python -m mcp_server.runner git-push`: the pod's `git-push` native sidecar (uid 1001, the git
credential mounted only here and in `git-clone`). It serves the push queue (`pushqueue`, the shared
`push-queue` emptyDir at AGENTIC_PUSH_QUEUE, default /run/agentic/push) with a `Pusher` until SIGTERM,
then answers what is pending within AGENTIC_GRACE_SECONDS and ends.

A configuration it cannot use (no task context, a repository the host rules refuse, a missing
credential) does not end it: it answers every request with that error, so the task's result names it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from mcp_server.errors import ConfigError
from mcp_server.runner import gitrepo
from mcp_server.runner.context import load_context
from mcp_server.runner.gitrepo import GitAuth
from mcp_server.runner.output import Output
from mcp_server.runner.pusher import Pusher, check_target
from mcp_server.runner.pushqueue import DEFAULT_QUEUE_DIR, PusherQueue, PushResponse
from mcp_server.runner.redact import Redactor
from mcp_server.runner.settings import Settings


def main(environ: Mapping[str, str] | None = None, stop: threading.Event | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    out = Output(Redactor.from_environ(env))
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
    queue = PusherQueue(Path(env.get("AGENTIC_PUSH_QUEUE") or DEFAULT_QUEUE_DIR))
    home = Path(tempfile.mkdtemp(prefix="agentic-git-push-"))
    auth = GitAuth()
    try:
        try:
            settings = Settings.from_environ(env)
            ctx = load_context(settings.context_file)
            target = check_target(ctx.repo, ctx.task_branch, ctx.base_branch, settings.repo_hosts_json,
                                  cluster=not settings.allow_local_repo)
            auth = gitrepo.prepare_auth(settings, target.repo)
        except (ConfigError, ValueError) as exc:
            message = out.redact(f"git-push cannot push: {exc}")
            out.log("push", message, level="error")
            return refuse_all(queue, message, stop, out)
        out.set_redactor(out.redact.with_values(auth.secrets))
        pusher = Pusher(target, auth, home, env, out.redact, settings.protected_paths, settings.push_attempts, out.log)
        queue.dir.mkdir(parents=True, exist_ok=True)
        out.log("push", f"serving pushes of {ctx.task_branch} from {queue.dir}", branch=ctx.task_branch)
        try:
            pusher.prepare()
        except gitrepo.GitError as exc:  # tried again at the first request
            out.log("push", f"{exc} (tried again at the first push)", level="warning")
        answered = pusher.serve(queue, stop, settings.grace_seconds)
        out.log("push", f"stopped after {answered} push request(s)")
        return 0
    finally:
        auth.close()
        shutil.rmtree(home, ignore_errors=True)


def refuse_all(queue: PusherQueue, message: str, stop: threading.Event, out: Output) -> int:
    while True:
        stopping = stop.is_set()
        for n in list(queue.pending()):
            try:
                queue.respond(PushResponse(n, False, "", "", error=message))
            except OSError as exc:
                out.log("push", f"cannot answer request {n}: {exc.strerror or exc}", level="error")
        if stopping:
            return 1
        stop.wait(0.2)
