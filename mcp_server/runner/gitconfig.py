"""git's configuration for the git side (clone, push): owned by the runner, never read from a place
the agent can write.

- `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`, a private `HOME`/`XDG_CONFIG_HOME`: no
  system, global or user config (so no `url.*.insteadOf`, no credential helper of someone else's);
- `core.hooksPath=/dev/null`, `core.fsmonitor=false`: no hook and no fsmonitor command ever runs;
- `protocol.allow=never` plus `protocol.<scheme>.allow=always` for the repository's own scheme only;
- `http.followRedirects=false`: a remote cannot send git (and its credentials) to another host;
- `transfer.fsckObjects=true`: what comes in is checked;
- `credential.helper` reset, then a helper only under `credential.<scheme>://<host>` (and the helper
  itself answers only for that protocol and host).

These reach git as `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_<i>`/`GIT_CONFIG_VALUE_<i>`, which git treats like
`-c` on the command line (above every config file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mcp_server.repohosts import ParsedRepo

HARDENING: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("protocol.allow", "never"),
    ("http.followRedirects", "false"),
    ("transfer.fsckObjects", "true"),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("submodule.recurse", "false"),
    ("gc.auto", "0"),
)
# For the runner's own git calls in the agent's checkout (the agent owns that config; these keep the
# runner from running the agent's hooks or fsmonitor on its own behalf).
CHECKOUT_HYGIENE: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("commit.gpgSign", "false"),
)
# What must never reach an isolated git from the caller's environment.
_DROP_PREFIXES = ("GIT_", "SSH_", "XDG_")
PASS_THROUGH = ("PATH", "LANG", "TZ")


def config_env(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for index, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def merge_config_env(first: Mapping[str, str], second: Mapping[str, str]) -> dict[str, str]:
    """Two GIT_CONFIG_COUNT blocks as one (the second's keys after the first's)."""
    return {**first, **second, **config_env([*_pairs(first), *_pairs(second)])}


def _pairs(env: Mapping[str, str]) -> list[tuple[str, str]]:
    count = int(env.get("GIT_CONFIG_COUNT") or 0)
    return [(env[f"GIT_CONFIG_KEY_{i}"], env.get(f"GIT_CONFIG_VALUE_{i}", "")) for i in range(count)]


def credential_url(repo: ParsedRepo) -> str:
    host = f"[{repo.host}]" if ":" in repo.host else repo.host
    return f"{repo.scheme}://{host}" + (f":{repo.port}" if repo.port else "")


def credential_host(repo: ParsedRepo) -> str:
    """The `host=` line git sends a credential helper for this repository."""
    host = f"[{repo.host}]" if ":" in repo.host else repo.host
    return host + (f":{repo.port}" if repo.port else "")


def repo_config(repo: ParsedRepo, helper: str | None = None) -> list[tuple[str, str]]:
    """HARDENING, the repository's own scheme allowed, and the credential helper scoped to its host."""
    pairs = [*HARDENING, (f"protocol.{repo.scheme}.allow", "always")]
    if helper is not None and repo.scheme in ("http", "https"):
        pairs.append((f"credential.{credential_url(repo)}.helper", helper))
    return pairs


def isolated_environ(environ: Mapping[str, str], home: Path, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """The environment of an isolated git: PATH and the locale of `environ`, nothing else of it (no
    GIT_*, SSH_AUTH_SOCK or XDG_* of the caller), a private HOME, no system or global config."""
    env = {k: v for k, v in environ.items() if k in PASS_THROUGH}
    env.setdefault("PATH", os.defpath)
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_PROTOCOL_FROM_USER": "0",
        }
    )
    env.update(dict(extra))
    return env


def without_git_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(_DROP_PREFIXES)}
