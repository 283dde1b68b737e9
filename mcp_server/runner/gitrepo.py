"""git for the runner: credentials, clone, the task branch, commit, push.

Credentials reach git only through its environment, never a URL or an argument:
- `ssh`: the key from the mounted secret is copied to a private 0600 file; `GIT_SSH_COMMAND` uses
  it with strict host-key checking against the known_hosts file (from the secret or
  `AGENTIC_GIT_KNOWN_HOSTS`) and never asks or learns a host key.
- `token`: a credential helper (through `GIT_CONFIG_*` variables, under `credential.<scheme>://<host>`
  only) prints `AGENTIC_GIT_USERNAME` and `AGENTIC_GIT_TOKEN` from git's environment when asked for
  exactly the repository's protocol and host, and nothing for any other.
- `none`: nothing (workload identity, a public repository, a local path).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcp_server.errors import ConfigError
from mcp_server.repohosts import ParsedRepo
from mcp_server.runner.gitconfig import config_env, credential_host, repo_config
from mcp_server.runner.redact import Redactor
from mcp_server.runner.settings import Settings

SSH_KEY_NAME = "ssh-privatekey"
NO_PUSH_URL = "agent-must-not-push--the-runner-pushes-the-task-branch"
TOKEN_HELPER = (
    '!f() { test "$1" = get || exit 0; p=; h=; '
    'while IFS= read -r l; do case "$l" in protocol=*) p="${l#protocol=}";; host=*) h="${l#host=}";; esac; done; '
    'test "$p" = "$AGENTIC_GIT_PROTOCOL" && test "$h" = "$AGENTIC_GIT_HOST" || exit 0; '
    'echo "username=${AGENTIC_GIT_USERNAME:-x-access-token}"; echo "password=${AGENTIC_GIT_TOKEN}"; }; f'
)
# Variables that configure git for the runner's own git calls and must not reach the agent.
GIT_ONLY_ENV = ("AGENTIC_GIT_TOKEN", "GIT_SSH_COMMAND", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_CONFIG_COUNT")


@dataclass
class GitAuth:
    """What git needs in its environment to authenticate, and what to remove afterwards."""

    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    private_dir: Path | None = None

    def close(self) -> None:
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)
            self.private_dir = None


def prepare_auth(settings: Settings, repo: ParsedRepo) -> GitAuth:
    """Credentials for git per AGENTIC_GIT_AUTH, for the repository `repo` only, with the git side's
    hardened config (gitconfig.repo_config); ConfigError names what is missing."""
    if settings.git_auth == "none":
        return GitAuth(env=config_env(repo_config(repo)))
    if settings.git_auth == "token":
        token = settings.git_token or ""
        env = {
            **config_env(repo_config(repo, TOKEN_HELPER)),
            "AGENTIC_GIT_TOKEN": token,
            "AGENTIC_GIT_USERNAME": settings.git_username,
            "AGENTIC_GIT_PROTOCOL": repo.scheme,
            "AGENTIC_GIT_HOST": credential_host(repo),
        }
        return GitAuth(env=env, secrets=[token])
    key = settings.ssh_dir / SSH_KEY_NAME
    try:
        key_text = key.read_text()
    except OSError as exc:
        raise ConfigError(
            f"AGENTIC_GIT_AUTH=ssh but the private key {key} cannot be read ({exc.strerror or exc}); "
            f"mount the git Secret with the key '{SSH_KEY_NAME}' at AGENTIC_GIT_SSH_DIR"
        ) from None
    known_hosts = settings.known_hosts
    if not known_hosts.is_file() or not known_hosts.read_text().strip():
        raise ConfigError(
            f"AGENTIC_GIT_AUTH=ssh but the known_hosts file {known_hosts} is missing or empty; the runner "
            "checks host keys strictly: put the server's host keys in the Secret's 'known_hosts' key "
            "or point AGENTIC_GIT_KNOWN_HOSTS at a file with them"
        )
    private_dir = Path(tempfile.mkdtemp(prefix="agentic-git-ssh-"))
    os.chmod(private_dir, 0o700)
    key_copy = private_dir / "id"
    fd = os.open(key_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key_text if key_text.endswith("\n") else key_text + "\n")
    command = " ".join(
        [
            "ssh", "-F", "/dev/null", "-i", shlex.quote(str(key_copy)),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={shlex.quote(str(known_hosts))}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30",
        ]
    )
    env = {**config_env(repo_config(repo)), "GIT_SSH_COMMAND": command}
    return GitAuth(env=env, secrets=[key_text], private_dir=private_dir)


FailureKind = Literal["hostkey", "auth", "rejected", "non_fast_forward", "not_found", "network", "other"]
PERMANENT: frozenset[FailureKind] = frozenset(
    {"hostkey", "auth", "rejected", "non_fast_forward", "not_found"}
)

_KINDS: list[tuple[FailureKind, re.Pattern[str]]] = [
    ("hostkey", re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
                           r"No \S+ host key is known", re.I)),
    ("auth", re.compile(r"Permission denied|Authentication failed|could not read (Username|Password)|"
                        r"terminal prompts disabled|HTTP Basic: Access denied|invalid credentials|"
                        r"The requested URL returned error: (401|403)|access denied|not authorized", re.I)),
    ("rejected", re.compile(r"\[remote rejected\]|hook declined|protected branch", re.I)),
    ("non_fast_forward", re.compile(r"\[rejected\].*(non-fast-forward|fetch first|stale info)", re.I)),
    ("not_found", re.compile(r"Repository not found|does not appear to be a git repository|"
                             r"Remote branch .* not found|couldn't find remote ref|"
                             r"The requested URL returned error: 404|No such repository", re.I)),
    ("network", re.compile(r"Connection (refused|reset|timed out)|Could not resolve host|timed out|"
                           r"early EOF|unable to access|remote end hung up|Network is unreachable|"
                           r"Could not read from remote repository|Broken pipe", re.I)),
]
_EXPLAIN: dict[FailureKind, str] = {
    "hostkey": "the server's host key is not in known_hosts (strict host-key checking)",
    "auth": "the remote refused the credentials (check AGENTIC_GIT_AUTH and the git Secret)",
    "rejected": "the remote rejected the push",
    "non_fast_forward": "the task branch on the remote has commits the runner does not have "
                        "(the runner never force-pushes)",
    "not_found": "the repository or branch does not exist on the remote",
    "network": "the remote could not be reached",
    "other": "git failed",
}
_RELEVANT = re.compile(
    r"^(remote:|fatal:|error:|ERROR|warning: |\s*! |To |ssh:|Connection)|Permission denied|host key|"
    r"HOST IDENTIFICATION",
    re.I,
)


def classify(stderr: str) -> FailureKind:
    for kind, pattern in _KINDS:
        if pattern.search(stderr):
            return kind
    return "other"


class GitError(Exception):
    """A git command failed; `kind` says why, the message is redacted and says what to check."""

    def __init__(self, action: str, stderr: str, returncode: int, redact: Redactor) -> None:
        self.action = action
        self.kind: FailureKind = classify(stderr)
        self.returncode = returncode
        all_lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        lines = [ln for ln in all_lines if _RELEVANT.search(ln)] or all_lines[-1:]
        detail = redact(" | ".join(lines[-8:]))[:800]
        message = f"{action} failed: {_EXPLAIN[self.kind]}"
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def transient(self) -> bool:
        return self.kind not in PERMANENT


class Git:
    """Runs git in one directory with the runner's environment. `cancel` (an Event) ends a running
    command early (for clone and fetch when the task is stopped)."""

    def __init__(self, cwd: Path, environ: Mapping[str, str], auth: GitAuth, redact: Redactor,
                 author: tuple[str, str]) -> None:
        env = {k: v for k, v in environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE",
                                                             "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")
               and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))}
        env.update(auth.env)
        env.update(
            {
                "LC_ALL": "C",
                "GIT_TERMINAL_PROMPT": "0",
                "GCM_INTERACTIVE": "never",
                "GIT_AUTHOR_NAME": author[0],
                "GIT_AUTHOR_EMAIL": author[1],
                "GIT_COMMITTER_NAME": author[0],
                "GIT_COMMITTER_EMAIL": author[1],
            }
        )
        self.cwd = cwd
        self.env = env
        self.redact = redact

    def at(self, cwd: Path) -> Git:
        clone = object.__new__(Git)
        clone.cwd, clone.env, clone.redact = cwd, self.env, self.redact
        return clone

    def run(self, *args: str, action: str | None = None, cancel: threading.Event | None = None,
            timeout: float = 900) -> str:
        """Run `git args...`; return stdout. Raise GitError (redacted) when it fails."""
        proc = subprocess.Popen(
            ["git", *args], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                    proc.kill()
                    stdout, stderr = proc.communicate()
                    stopped = cancel is not None and cancel.is_set()
                    why = "stopped" if stopped else f"timed out after {timeout:g}s"
                    raise GitError(action or f"git {args[0]}", f"fatal: {why}", -9, self.redact) from None
        if proc.returncode != 0:
            raise GitError(action or f"git {args[0]}", stderr, proc.returncode, self.redact)
        return stdout


def checkout_dir_name(repo: str) -> str:
    """The directory a clone goes to inside the workspace: the repository's name."""
    tail = re.split(r"[/:]", repo.rstrip("/"))[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip(".-")
    return name or "repo"


def clone(git: Git, url: str, base: str, dest: Path, depth: int, cancel: threading.Event) -> None:
    args = ["clone", "--no-tags", "--single-branch", "--branch", base]
    if depth > 0:
        args += ["--depth", str(depth)]
    git.run(*args, "--", url, str(dest), action=f"clone of the base branch {base}", cancel=cancel)


def remote_branch_sha(git: Git, remote: str, branch: str, cancel: threading.Event) -> str | None:
    out = git.run("ls-remote", "--heads", remote, f"refs/heads/{branch}",
                  action=f"lookup of {branch} on the remote", cancel=cancel)
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def head_sha(git: Git) -> str | None:
    try:
        return git.run("rev-parse", "--verify", "-q", "HEAD").strip() or None
    except GitError:
        return None


def has_changes(git: Git) -> bool:
    return bool(git.run("status", "--porcelain", "--untracked-files=all").strip())


def commit_all(git: Git, subject: str, body: str = "") -> bool:
    """Stage everything (respecting .gitignore) and commit; False when there was nothing to commit.
    No hooks and no signing: the developer's hooks and keys are not the agent's."""
    if not has_changes(git):
        return False
    git.run("add", "--all", action="git add")
    if not git.run("diff", "--cached", "--name-only").strip():
        return False
    message = ["-m", subject] + (["-m", body] if body else [])
    git.run("-c", "commit.gpgsign=false", "commit", "--no-verify", "--quiet", *message, action="commit")
    return True


def commits_since(git: Git, base_sha: str) -> int:
    return int(git.run("rev-list", "--count", f"{base_sha}..HEAD").strip() or 0)


def files_changed(git: Git, base_sha: str) -> list[str]:
    out = git.run("diff", "--name-only", "-z", base_sha, "HEAD")
    return [p for p in out.split("\0") if p]


def push(git: Git, url: str, branch: str, attempts: int, give_up_at: float | None,
         log: Callable[[str], None]) -> None:
    """Push HEAD to refs/heads/<branch> at `url`: never forced, never another ref. Transient
    failures are retried with exponential backoff (1, 2, 4, ... s) up to `attempts` times or until
    `give_up_at` (time.monotonic()); the last GitError is raised."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            git.run("push", url, f"HEAD:refs/heads/{branch}", action=f"push of {branch}",
                    timeout=300)
            return
        except GitError as exc:
            out_of_time = give_up_at is not None and time.monotonic() + delay > give_up_at
            last_try = attempt == attempts or out_of_time
            if not exc.transient or last_try:
                raise
            log(f"push attempt {attempt}/{attempts} failed ({exc.kind}); retrying in {delay:g}s")
            time.sleep(delay)
            delay *= 2
