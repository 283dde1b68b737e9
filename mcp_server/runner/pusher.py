"""The pusher: the only code that pushes, and the only holder (with git-clone) of the git credential.

It runs as `python -m mcp_server.runner git-push` in the pod's `git-push` sidecar (another uid than
the agent's), in the local backend's supervisor (outside the agent's sandbox), and in-process for a
runner that clones for itself. For each request of the push queue (`pushqueue`) it:

1. copies `<n>.bundle` out of the queue into a directory of its own (no symlink followed), and
   fetches from that copy into a bare repository of its own: a bundle is pure data, so no config,
   hook, fsmonitor or upload-pack of the agent's repository ever runs;
2. checks that the bundle's tip is the requested commit;
3. refuses the push when a commit of the task (what is not on the base branch) touches a protected
   path (`.github/workflows/` and `AGENTIC_PROTECTED_PATHS`), naming the paths;
4. pushes exactly `<sha>:refs/heads/<task branch>` (the branch of the task context, never one from the
   request; never forced, never another ref) to the task's repository URL, with the isolated config
   of `gitconfig` and the credential scoped to that host;
5. when the remote's task branch has moved (someone else pushed: non-fast-forward), retries a few
   times, then keeps the work on the fallback branch `<task branch>-wip-<n>` and says so.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mcp_server.repohosts import HostRule, ParsedRepo, check_repo_url, parse_rules
from mcp_server.runner.gitconfig import isolated_environ
from mcp_server.runner.gitrepo import Git, GitAuth, GitError
from mcp_server.runner.pushqueue import PusherQueue, PushResponse, QueueError, copy_bundle
from mcp_server.runner.redact import Redactor

PUSHER_AUTHOR = ("agentic-sdlc pusher", "pusher@agentic-sdlc.local")
NON_FAST_FORWARD_TRIES = 3
PUSH_TIMEOUT = 300.0
Log = Callable[..., None]


@dataclass(frozen=True)
class PushTarget:
    """Where the task's work goes: from the task context, checked against the host rules."""

    url: str
    repo: ParsedRepo
    branch: str
    base_branch: str

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    def fallback_ref(self, n: int) -> str:
        return f"refs/heads/{self.branch}-wip-{n}"


def check_target(url: str, branch: str, base_branch: str, rules_json: str | None, *, cluster: bool) -> PushTarget:
    """The push target, when the repository URL passes the host rules (AGENTIC_REPO_HOSTS; when none are
    configured, any host with a safe scheme); ValueError names the field and what is allowed."""
    rules = parse_rules(rules_json, source="AGENTIC_REPO_HOSTS") if rules_json else _own_host_rule(url)
    return PushTarget(url, check_repo_url(url, rules, cluster=cluster), branch, base_branch)


def _own_host_rule(url: str) -> tuple[HostRule, ...]:
    """No rules configured (the local backend, a runner started by hand, an older chart): the URL's own
    host is the one allowed, as the server gave it (http/git too, as before the rules existed); remote
    helpers, credentials in the URL and, in a pod, local paths are refused as ever. A chart always sets
    AGENTIC_REPO_HOSTS."""
    host = ""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        with contextlib.suppress(ValueError):
            host = urlsplit(url).hostname or ""
    elif ":" in url.split("/", 1)[0]:
        host = url.split(":", 1)[0].rpartition("@")[2]
    return (HostRule(host, insecure=True),) if host else ()


def is_protected(path: str, patterns: tuple[str, ...]) -> bool:
    """`path` is under a protected directory (a pattern ending in `/`) or matches a protected glob;
    compared case-insensitively (a case-insensitive checkout would treat them alike)."""
    folded = path.casefold()
    for pattern in patterns:
        pat = pattern.casefold()
        if pat.endswith("/"):
            if folded.startswith(pat):
                return True
        elif folded == pat or fnmatch.fnmatchcase(folded, pat):
            return True
    return False


class Pusher:
    """Pushes the task's work from bundles, into and out of a bare repository it owns under `home`."""

    def __init__(
        self,
        target: PushTarget,
        auth: GitAuth,
        home: Path,
        environ: Mapping[str, str],
        redact: Redactor,
        protected: tuple[str, ...],
        attempts: int,
        log: Log,
        base_source: str | None = None,
    ) -> None:
        self.base_source = base_source
        self.target = target
        self.home = home
        self.bare = home / "repo.git"
        self.protected = protected
        self.attempts = attempts
        self.log = log
        self.git = Git(home, isolated_environ(environ, home), auth, redact, PUSHER_AUTHOR)
        self._prepared = False
        self._lock = threading.Lock()

    # -- the repository of its own -------------------------------------------------------------------

    def _g(self, *args: str, action: str | None = None, timeout: float = PUSH_TIMEOUT) -> str:
        return self.git.run("--git-dir", str(self.bare), *args, action=action, timeout=timeout)

    def prepare(self) -> None:
        """The bare repository with the remote's base branch (and task branch, if it exists): the
        prerequisites of the agent's bundles and the base of the protected-path check."""
        if self._prepared:
            return
        if not (self.bare / "HEAD").exists():
            self.git.run("init", "--quiet", "--bare", str(self.bare), action="init of the pusher's repository")
        t = self.target
        base = t.base_branch
        refspec = f"+refs/heads/{base}:refs/remotes/origin/{base}"
        try:
            self._g("fetch", "--no-tags", "--quiet", t.url, refspec, action=f"fetch of the base branch {base}")
        except GitError as exc:
            if exc.kind != "not_found" or self.base_source is None:
                raise
            # the local backend: a base branch the remote does not have yet, from the developer's repository
            self.git.run("-c", "protocol.file.allow=always", "--git-dir", str(self.bare), "fetch", "--no-tags",
                         "--quiet", self.base_source, refspec, action=f"fetch of the base branch {base} (local)")
        self._fetch_task_branch()
        self._prepared = True

    def _fetch_task_branch(self) -> str | None:
        t = self.target
        out = self._g("ls-remote", "--heads", t.url, t.ref, action=f"lookup of {t.branch} on the remote")
        if not any(line.endswith(f"\t{t.ref}") for line in out.splitlines()):
            return None
        self._g("fetch", "--no-tags", "--quiet", t.url, f"+{t.ref}:refs/remotes/origin/{t.branch}",
                action=f"fetch of {t.branch}")
        return self._g("rev-parse", f"refs/remotes/origin/{t.branch}").strip()

    # -- one request ---------------------------------------------------------------------------------

    def handle(self, queue: PusherQueue, n: int, give_up_at: float | None = None) -> PushResponse:
        with self._lock:
            try:
                request = queue.read(n)
            except QueueError as exc:
                return PushResponse(n, False, self.target.ref, "", error=f"refused: {exc}")
            copy = self.home / f"incoming-{n}.bundle"
            try:
                self.prepare()
                with contextlib.suppress(FileNotFoundError):
                    copy.unlink()
                copy_bundle(queue.dir, n, copy)
                self._take_bundle(n, copy, request.sha)
                refused = self.protected_changes(request.sha)
                if refused:
                    shown = ", ".join(refused[:20]) + (f" and {len(refused) - 20} more" if len(refused) > 20 else "")
                    error = (f"refused: the work changes protected paths ({shown}); the task may not change "
                             ".github/workflows/ or the paths the environment protects (task.protectedPaths)")
                    self.log("push", error, level="error", refused=refused)
                    return PushResponse(n, False, self.target.ref, request.sha, error=error, refused=refused)
                return self._push(n, request.sha, give_up_at)
            except (GitError, QueueError) as exc:
                message = str(exc)
                self.log("push", message, level="error")
                return PushResponse(n, False, self.target.ref, request.sha, error=message)
            finally:
                with contextlib.suppress(OSError):
                    copy.unlink()
                with contextlib.suppress(OSError):
                    os.unlink(queue.dir / f"{n}.bundle")

    def _take_bundle(self, n: int, bundle: Path, sha: str) -> None:
        heads = self.git.run("bundle", "list-heads", str(bundle), action="reading the bundle")
        refs = [line.split(" ", 1)[1] for line in heads.splitlines() if line.startswith(f"{sha} ")]
        if not refs:
            raise QueueError(f"request {n}: the bundle does not end at the commit {sha}")
        self.git.run("-c", "protocol.file.allow=always", "--git-dir", str(self.bare), "fetch", "--no-tags",
                     "--quiet", "--no-write-fetch-head", str(bundle), f"+{refs[0]}:refs/agentic/incoming/{n}",
                     action="fetch from the bundle")
        got = self._g("rev-parse", "--verify", "-q", f"refs/agentic/incoming/{n}^{{commit}}").strip()
        if got != sha:
            raise QueueError(f"request {n}: the bundle's commit is not {sha}")

    def protected_changes(self, sha: str) -> list[str]:
        """The protected paths that a commit of the task (not on the base branch) changes."""
        if not self.protected:
            return []
        base = f"refs/remotes/origin/{self.target.base_branch}"
        logged = self._g("log", "--no-renames", "-m", "--format=", "--name-only", "-z", sha, "--not", base)
        paths = {p.strip("\n") for p in logged.split("\0") if p.strip("\n")}
        try:
            merge_base = self._g("merge-base", base, sha).strip()
        except GitError:
            merge_base = ""
        if merge_base:
            diff = self._g("diff", "--no-renames", "--name-only", "-z", merge_base, sha)
            paths |= {p for p in diff.split("\0") if p}
        return sorted(p for p in paths if is_protected(p, self.protected))

    def _push(self, n: int, sha: str, give_up_at: float | None) -> PushResponse:
        t = self.target
        for attempt in range(1, NON_FAST_FORWARD_TRIES + 1):
            try:
                self._push_ref(sha, t.ref, give_up_at)
                self.log("push", f"pushed {t.branch} at {sha[:12]}", sha=sha)
                return PushResponse(n, True, t.ref, sha)
            except GitError as exc:
                if exc.kind != "non_fast_forward":
                    raise
                if attempt < NON_FAST_FORWARD_TRIES and not _out_of_time(give_up_at, 1.0):
                    self.log("push", f"{t.branch} moved on the remote (attempt {attempt}/{NON_FAST_FORWARD_TRIES}); "
                             "retrying", level="warning")
                    time.sleep(1.0)
                    continue
        fallback = t.fallback_ref(n)
        self._push_ref(sha, fallback, give_up_at)
        name = fallback.removeprefix("refs/heads/")
        error = (f"the task branch {t.branch} has commits on the remote that this work does not have (someone "
                 f"else pushed; the runner never force-pushes): the work is kept on the branch {name}")
        self.log("push", error, level="warning", fallback_ref=fallback)
        return PushResponse(n, False, t.ref, sha, fallback_ref=fallback, error=error)

    def _push_ref(self, sha: str, ref: str, give_up_at: float | None) -> None:
        """`git push <url> <sha>:<ref>`: no `+`, no --force, one refspec; transient failures retried
        with backoff (1, 2, 4 s ...) up to `attempts` times or until `give_up_at`."""
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            timeout = PUSH_TIMEOUT if give_up_at is None else max(5.0, give_up_at - time.monotonic())
            try:
                self._g("push", "--quiet", "--no-verify", "--no-follow-tags", self.target.url, f"{sha}:{ref}",
                        action=f"push of {ref.removeprefix('refs/heads/')}", timeout=min(timeout, PUSH_TIMEOUT))
                return
            except GitError as exc:
                if not exc.transient or attempt == self.attempts or _out_of_time(give_up_at, delay):
                    raise
                self.log("push", f"push attempt {attempt}/{self.attempts} failed ({exc.kind}); retrying in "
                         f"{delay:g}s", level="warning")
                time.sleep(delay)
                delay *= 2

    # -- serving the queue ---------------------------------------------------------------------------

    def serve(self, queue: PusherQueue, stop: threading.Event, grace_seconds: float, poll: float = 0.2) -> int:
        """Answer every request until `stop` is set, then answer what is pending (within the grace
        period) and return how many requests were answered."""
        answered = 0
        give_up_at: float | None = None
        while True:
            stopping = stop.is_set()
            if stopping and give_up_at is None:
                give_up_at = time.monotonic() + max(1.0, grace_seconds - 2)
            for n in list(queue.pending()):
                response = self.handle(queue, n, give_up_at)
                try:
                    queue.respond(response)
                except OSError as exc:
                    self.log("push", f"cannot write the response to request {n}: {exc.strerror or exc}", level="error")
                answered += 1
            if stopping:
                return answered
            stop.wait(poll)


def _out_of_time(give_up_at: float | None, delay: float) -> bool:
    return give_up_at is not None and time.monotonic() + delay > give_up_at
