"""The pod's git side on the host: `git-clone` and `git-push` run as the real commands
(`python -m mcp_server.runner git-clone|git-push`), each a process of its own under uid 1001, the
agent's side under uid 1000 (setpriv; the tests run as root), against a real git remote served over
smart HTTP with a token. The directories are laid out as the pod's volumes are: the credential readable
only by uid 1001, the workspace and the push queue shared.

`python -m tests.support.git_side submit ...` is the agent's side of the push protocol, run as uid
1000 in the tests: bundle, request, wait for the answer (what the runner does, and what an evil agent
can do by hand)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.git_remotes import BASE_BRANCH, BareRemote, http_git, make_bare_remote
from tests.support.runner_harness import SCRIPTED_API_KEY, RunningRunner, offline_env
from tests.support.scripted_model import ScriptedModel

AGENT_UID = 1000
GIT_UID = 1001
REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_ID = "T001"
TASK_BRANCH = f"agentic/{BASE_BRANCH}/{TASK_ID}"
# made at run time: a literal in this file would be found by the agent's search of the disk (the tests'
# sources may live under /tmp too)
TOKEN = "glpat-" + secrets.token_hex(12)
USERNAME = "agent"
LOOPBACK_RULES = json.dumps([{"host": "127.0.0.1", "insecure": True}])


def as_uid(uid: int) -> list[str]:
    if os.getuid() != 0:
        raise AssertionError("the git-side tests run the pod's containers under uids 1000 and 1001: run them as root")
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def shared_dir(prefix: str) -> Path:
    """A directory under /tmp that other uids can enter (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class ServedPod:
    """A pod's directories (`root`), its real remote over smart HTTP wanting the token, the pod."""

    root: Path
    remote: BareRemote
    pod: HostPod


@contextmanager
def served_pod(prefix: str) -> Iterator[ServedPod]:
    """A HostPod whose remote is a bare repository served over smart HTTP on 127.0.0.1 (the token
    required), all under one shared directory removed afterwards."""
    root = shared_dir(prefix)
    try:
        remote = make_bare_remote(root / "remotes")
        with http_git(remote.path.parent, USERNAME, TOKEN) as url:
            yield ServedPod(root, remote, HostPod(root / "pod", f"{url}/{remote.path.name}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def shared_binary(path: str) -> str:
    """A copy of an executable that every uid can run (the cached OpenCode lives under root's home)."""
    source = Path(path)
    info = source.stat()
    target = Path("/tmp/agentic-sdlc-shared-bin") / f"{info.st_size}-{int(info.st_mtime)}" / source.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in (target.parent, target.parent.parent):
            parent.chmod(0o755)
        partial = target.with_name(f".{source.name}.{os.getpid()}")
        shutil.copy2(source, partial)
        partial.chmod(0o755)
        os.replace(partial, target)
    return str(target)


def base_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass
class HostPod:
    """The volumes of one task's pod as host directories, and its git containers as processes."""

    root: Path
    url: str
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(mode=0o755)
        for name, mode, owner in (("creds", 0o700, GIT_UID), ("git-home", 0o700, GIT_UID),
                                  ("agent-home", 0o700, AGENT_UID), ("workspace", 0o777, 0), ("queue", 0o777, 0),
                                  ("task", 0o755, 0)):
            path = self.root / name
            path.mkdir()
            os.chown(path, owner, owner)
            path.chmod(mode)
        for name, value in (("token", TOKEN), ("username", USERNAME)):
            secret = self.creds / name
            secret.write_text(value + "\n")
            os.chown(secret, GIT_UID, GIT_UID)
            secret.chmod(0o400)
        self.context = self.context or {
            "task_id": TASK_ID, "description": "Change the greeting", "repo": self.url,
            "base_branch": BASE_BRANCH, "task_branch": TASK_BRANCH, "environment": "dev",
        }
        self.write_context()

    def write_context(self, **changes: Any) -> None:
        self.context.update(changes)
        path = self.root / "task" / "context.json"
        path.write_text(json.dumps(self.context))
        path.chmod(0o644)

    @property
    def creds(self) -> Path:
        return self.root / "creds"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def checkout(self) -> Path:
        return self.workspace / Path(self.url.rstrip("/")).name.removesuffix(".git")

    def git_env(self, **extra: str) -> dict[str, str]:
        env = base_env(self.root / "git-home")
        env.update({
            "AGENTIC_TASK_CONTEXT_FILE": str(self.root / "task" / "context.json"),
            "AGENTIC_WORKSPACE": str(self.workspace),
            "AGENTIC_RESULT_FILE": str(self.root / "git-home" / "termination-log"),
            "AGENTIC_PUSH_QUEUE": str(self.queue),
            "AGENTIC_GIT_AUTH": "token",
            "AGENTIC_GIT_AUTH_DIR": str(self.creds),
            "AGENTIC_REPO_HOSTS": LOOPBACK_RULES,
            "AGENTIC_GRACE_SECONDS": "20",
        })
        env.update(extra)
        return env

    def agent_env(self, **extra: str) -> dict[str, str]:
        env = base_env(self.root / "agent-home")
        env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@example.test",
                    "GIT_COMMITTER_NAME": "Agent", "GIT_COMMITTER_EMAIL": "agent@example.test"})
        env.update(extra)
        return env

    def clone(self, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_uid(GIT_UID), sys.executable, "-m", "mcp_server.runner", "git-clone"],
                              env=self.git_env(**extra), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    @contextmanager
    def pusher(self, **extra: str) -> Iterator[PusherProcess]:
        log = (self.root / "pusher.log").open("w")
        proc = subprocess.Popen([*as_uid(GIT_UID), sys.executable, "-m", "mcp_server.runner", "git-push"],
                                env=self.git_env(**extra), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        handle = PusherProcess(proc, self.root / "pusher.log")
        try:
            yield handle
        finally:
            handle.stop()
            log.close()

    def agent(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """A command of the agent's (uid 1000) in the checkout."""
        proc = subprocess.run([*as_uid(AGENT_UID), *args], env=self.agent_env(), cwd=cwd or self.checkout,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} as the agent failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def agent_git(self, *args: str, check: bool = True) -> str:
        return self.agent("git", *args, check=check).stdout

    def runner(self, opencode_bin: str, model: ScriptedModel, **extra: str) -> RunningRunner:
        """The runner in the agent's container: uid 1000, no credential, the queue to push through."""
        home = self.root / "agent-home"
        env = offline_env(home)
        env.update({
            "AGENTIC_TASK_CONTEXT_FILE": str(self.root / "task" / "context.json"),
            "AGENTIC_WORKSPACE": str(self.workspace),
            "AGENTIC_RESULT_FILE": str(home / "termination-log"),
            "AGENTIC_PUSH_QUEUE": str(self.queue),
            "AGENTIC_OPENCODE_BIN": shared_binary(opencode_bin),
            "AGENTIC_OPENCODE_MODEL": model.model,
            "AGENTIC_OPENCODE_CONFIG": json.dumps(model.opencode_config()),
            "SCRIPTED_API_KEY": SCRIPTED_API_KEY,
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.update(extra)
        self.agent("mkdir", "-p", str(home / "tmp"), cwd=REPO_ROOT)
        proc = subprocess.Popen([*as_uid(AGENT_UID), sys.executable, "-m", "mcp_server.runner", "run-task"],
                                env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        return RunningRunner(proc, home / "termination-log")

    def adopt(self) -> None:
        """What the runner does first in the agent's container: make the checkout its own."""
        self.agent(sys.executable, "-c", f"from pathlib import Path; from mcp_server.runner.gitclone import adopt; "
                   f"adopt(Path({str(self.checkout)!r}))", cwd=REPO_ROOT)

    def commit_file(self, path: str, content: str, message: str = "agent work") -> str:
        target = self.checkout / path
        self.agent("mkdir", "-p", str(target.parent))
        self.agent("sh", "-c", f"printf '%s' {json.dumps(content)} > {json.dumps(str(target))}")
        self.agent_git("add", "-A")
        self.agent_git("commit", "-q", "--no-verify", "-m", message)
        return self.agent_git("rev-parse", "HEAD").strip()

    def submit(self, kind: str = "final", *, exclude: Sequence[str] = (), revs: Sequence[str] = ("HEAD",),
               extra: dict[str, Any] | None = None, sha: str | None = None, timeout: float = 60) -> dict[str, Any]:
        """The agent side of the protocol, as uid 1000; returns the pusher's response."""
        args = [sys.executable, "-m", "tests.support.git_side", "submit", "--queue", str(self.queue),
                "--checkout", str(self.checkout), "--kind", kind, "--timeout", str(timeout),
                "--extra", json.dumps(extra or {})]
        for rev in revs:
            args += ["--rev", rev]
        for sha_ in exclude:
            args += ["--exclude", sha_]
        if sha:
            args += ["--sha", sha]
        proc = self.agent(*args, cwd=REPO_ROOT)
        return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class PusherProcess:
    proc: subprocess.Popen[str]
    log_path: Path

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def _submit(args: argparse.Namespace) -> int:
    from mcp_server.runner.pushqueue import AgentQueue, PushRequest

    queue = AgentQueue(Path(args.queue))
    checkout = Path(args.checkout)
    n = queue.next_n()
    bundle = queue.bundle_path(n)
    rev_args = [*args.rev, *[f"^{x}" for x in args.exclude]]
    subprocess.run(["git", "bundle", "create", "-q", str(bundle), *rev_args], cwd=checkout, check=True)
    bundle.chmod(0o644)
    sha = args.sha or subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True,
                                     check=True).stdout.strip()
    request = {**PushRequest(n, args.kind, sha).to_json(), **json.loads(args.extra)}
    from mcp_server.runner.pushqueue import write_atomic

    write_atomic(queue.dir / f"{n}.request.json", json.dumps(request).encode())
    response = queue.wait(n, float(args.timeout))
    print(json.dumps(response.to_json() if response else None))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.git_side")
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit")
    submit.add_argument("--queue", required=True)
    submit.add_argument("--checkout", required=True)
    submit.add_argument("--kind", default="final")
    submit.add_argument("--timeout", default="60")
    submit.add_argument("--extra", default="{}")
    submit.add_argument("--rev", action="append", default=[])
    submit.add_argument("--exclude", action="append", default=[])
    submit.add_argument("--sha")
    args = parser.parse_args(argv)
    return _submit(args)


if __name__ == "__main__":
    raise SystemExit(main())
