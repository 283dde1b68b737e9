"""The runner's configuration: environment variables (docs/contracts.md, "Runner configuration").

Every refusal names the variable, what was wrong and what is allowed; a value that may be secret is
never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_server.defaults import chart_defaults
from mcp_server.errors import ConfigError

GitAuth = Literal["ssh", "token", "none"]
GIT_AUTH_VALUES: tuple[GitAuth, ...] = ("ssh", "token", "none")

DEFAULT_CONTEXT_FILE = "/etc/agentic-sdlc/task/context.json"
DEFAULT_WORKSPACE = "/workspace"
DEFAULT_RESULT_FILE = "/dev/termination-log"
DEFAULT_SSH_DIR = "/etc/agentic-sdlc/git-ssh"
DEFAULT_PUSH_QUEUE = "/run/agentic/push"
DEFAULT_PROTECTED_PATHS: tuple[str, ...] = (".github/workflows/",)
TOKEN_FILE = "token"
USERNAME_FILE = "username"


@dataclass(frozen=True)
class Settings:
    context_file: Path
    workspace: Path
    result_file: Path
    git_auth: GitAuth
    ssh_dir: Path
    known_hosts: Path
    git_username: str
    author_name: str
    author_email: str
    opencode_bin: str
    opencode_model: str | None
    opencode_agent: str
    opencode_config: dict[str, Any]
    clone_depth: int
    grace_seconds: float
    deadline_tolerance_seconds: float
    push_attempts: int
    worktree_repo: Path | None
    max_cost: float | None
    max_tokens: int | None
    idle_timeout_seconds: float | None
    environ: Mapping[str, str] = field(repr=False)
    push_queue: Path = Path(DEFAULT_PUSH_QUEUE)
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED_PATHS
    checkpoint_seconds: float = 120.0
    repo_hosts_json: str | None = None
    allow_local_repo: bool = False
    git_token_value: str | None = field(default=None, repr=False)

    @property
    def git_token(self) -> str | None:
        return self.git_token_value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        env = dict(environ)

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        auth = get("AGENTIC_GIT_AUTH", "none").lower()
        if auth not in GIT_AUTH_VALUES:
            raise ConfigError(
                f"invalid AGENTIC_GIT_AUTH: {auth!r} is not a git auth mode; allowed: ssh, token or none"
            )
        # the git Secret's files: ssh-privatekey + known_hosts, or username + token
        ssh_dir = Path(get("AGENTIC_GIT_AUTH_DIR", get("AGENTIC_GIT_SSH_DIR", DEFAULT_SSH_DIR)))
        token = env.get("AGENTIC_GIT_TOKEN") or (_secret_file(ssh_dir / TOKEN_FILE) if auth == "token" else None)
        if auth == "token" and not token:
            raise ConfigError(
                "invalid AGENTIC_GIT_TOKEN: it is empty but AGENTIC_GIT_AUTH=token; allowed: the token "
                f"from the git Secret (the file {ssh_dir / TOKEN_FILE}, or a secretKeyRef), or "
                "AGENTIC_GIT_AUTH=ssh/none"
            )
        username = env.get("AGENTIC_GIT_USERNAME", "").strip() or (
            _secret_file(ssh_dir / USERNAME_FILE) if auth == "token" else None) or "x-access-token"

        worktree_repo = env.get("AGENTIC_WORKTREE_REPO", "").strip()
        budget = _budget(env)
        return cls(
            context_file=Path(get("AGENTIC_TASK_CONTEXT_FILE", DEFAULT_CONTEXT_FILE)),
            workspace=Path(get("AGENTIC_WORKSPACE", DEFAULT_WORKSPACE)),
            result_file=Path(get("AGENTIC_RESULT_FILE", DEFAULT_RESULT_FILE)),
            git_auth=auth,  # type: ignore[arg-type]
            ssh_dir=ssh_dir,
            known_hosts=Path(get("AGENTIC_GIT_KNOWN_HOSTS", str(ssh_dir / "known_hosts"))),
            git_username=username,
            author_name=env.get("AGENTIC_GIT_AUTHOR_NAME", "").strip() or chart_defaults().author_name,
            author_email=env.get("AGENTIC_GIT_AUTHOR_EMAIL", "").strip() or chart_defaults().author_email,
            opencode_bin=get("AGENTIC_OPENCODE_BIN", "opencode"),
            opencode_model=env.get("AGENTIC_OPENCODE_MODEL", "").strip() or None,
            opencode_agent=env.get("AGENTIC_OPENCODE_AGENT", "").strip() or chart_defaults().agent,
            opencode_config=_json_object(env, "AGENTIC_OPENCODE_CONFIG"),
            clone_depth=_number(env, "AGENTIC_GIT_CLONE_DEPTH", 0, int, minimum=0),
            grace_seconds=_number(env, "AGENTIC_GRACE_SECONDS", 25.0, float, minimum=1),
            deadline_tolerance_seconds=_number(env, "AGENTIC_DEADLINE_TOLERANCE_SECONDS", 15.0, float,
                                               minimum=0),
            push_attempts=_number(env, "AGENTIC_PUSH_ATTEMPTS", 4, int, minimum=1),
            worktree_repo=Path(worktree_repo) if worktree_repo else None,
            # 0 turns a limit off; unset: the chart's default
            max_cost=budget[0],
            max_tokens=budget[1],
            idle_timeout_seconds=_number(env, "AGENTIC_IDLE_TIMEOUT_SECONDS",
                                         chart_defaults().idle_timeout_seconds or 0.0, float, minimum=0) or None,
            environ=env,
            push_queue=Path(get("AGENTIC_PUSH_QUEUE", DEFAULT_PUSH_QUEUE)),
            protected_paths=_path_list(env, "AGENTIC_PROTECTED_PATHS", DEFAULT_PROTECTED_PATHS),
            checkpoint_seconds=_number(env, "AGENTIC_CHECKPOINT_SECONDS", 120.0, float, minimum=0),
            repo_hosts_json=env.get("AGENTIC_REPO_HOSTS", "").strip() or None,
            allow_local_repo=env.get("AGENTIC_ALLOW_LOCAL_REPO", "").strip() in ("1", "true"),
            git_token_value=token or None,
        )


def _secret_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _path_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A JSON list of repository paths (a trailing `/` names a directory and all under it; `*`, `?`
    and `[...]` are globs), or the default when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() and not v.startswith("/")
                                              for v in value):
        raise ConfigError(f"invalid {name}: it is not a JSON list of repository paths; allowed: e.g. "
                          '[".github/workflows/", "CODEOWNERS"] (relative paths; a trailing / for a '
                          "directory; globs), or [] for none")
    return tuple(v.strip() for v in value)


def _budget(env: Mapping[str, str]) -> tuple[float | None, int | None]:
    """AGENTIC_BUDGET, `{"max_cost": 2.5, "max_tokens": 200000}` (the chart's task.budget; 0 or a
    missing key: no limit); unset: the chart's values.yaml."""
    if not env.get("AGENTIC_BUDGET", "").strip():
        return chart_defaults().max_cost, chart_defaults().max_tokens
    allowed = ('allowed: a JSON object {"max_cost": <USD, number >= 0>, "max_tokens": <integer >= 0>} '
               "(0: no limit)")
    value = _json_object(env, "AGENTIC_BUDGET", allowed.removeprefix("allowed: "))
    cost, tokens = value.get("max_cost", 0), value.get("max_tokens", 0)
    unknown = sorted(set(value) - {"max_cost", "max_tokens"})
    bad_cost = isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0
    bad_tokens = isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0
    if unknown or bad_cost or bad_tokens:
        field = "max_cost" if bad_cost else "max_tokens"
        what = f"unknown key {unknown[0]!r}" if unknown else f"{field} is not allowed"
        raise ConfigError(f"invalid AGENTIC_BUDGET: {what}; {allowed}")
    return (float(cost) or None), (tokens or None)


def _json_object(env: Mapping[str, str], name: str,
                 allowed: str = "a JSON object of OpenCode configuration") -> dict[str, Any]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid {name}: it is not JSON ({exc.msg} at position {exc.pos}); "
                          f"allowed: {allowed}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"invalid {name}: it is a JSON {type(value).__name__}; allowed: {allowed}")
    return value


def _number(env: Mapping[str, str], name: str, default: Any, kind: type, minimum: float) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"invalid {name}: {raw!r} is not allowed; allowed: {what} >= {minimum:g}")
    return value

