"""The local task's sandbox: bubblewrap (`bwrap`, Debian's `bubblewrap`), when it is installed.

`AGENTIC_LOCAL_SANDBOX`: `auto` (the default: bwrap when it is there and works, else none, and the
runner says so in the log), `bwrap` (required: a task fails to start without it), `none`, or `podman`
(the task runs in the agent image, in the chart's pod translated for podman: `local_podman`).

Inside, the runner and its agent see the machine read-only, with
- writable: the task's worktree directory, the repository's git directory (objects and refs: the
  agent commits), the task's state directory, with OpenCode's XDG directories of the task's own
  (`private_xdg`: a copy of the developer's OpenCode config and login);
- read-only even there: the repository's `config` and `hooks` (the agent cannot plant a hook or an
  `insteadOf`, a `core.fsmonitor` or `core.hooksPath` that the developer's next git command would run),
  and the whole home directory (so no `~/.gitconfig`, `~/.bashrc` or OpenCode plugin of the developer's
  can be changed);
- hidden (empty): `~/.ssh`, `~/.kube`, cloud credentials (`~/.aws`, `~/.azure`, `~/.config/gcloud`),
  `~/.docker`, `~/.gnupg`, `~/.password-store`, `~/.netrc`, `~/.git-credentials`, the kubeconfig, the
  ssh agent's socket directory, `/run/user/<uid>` and `/tmp` (a fresh one);
- its own process namespace: the supervisor (which holds the developer's environment) and every other
  process of the developer are not visible in /proc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mcp_server.errors import ConfigError

MODES = ("auto", "bwrap", "none", "podman")
HIDDEN_DIRS = (".ssh", ".kube", ".aws", ".azure", ".config/gcloud", ".docker", ".gnupg", ".password-store",
               ".config/gh", ".config/hub")
HIDDEN_FILES = (".netrc", ".git-credentials", ".pgpass", ".npmrc", ".pypirc")
# OpenCode's directories, per task inside the sandbox: (variable, default under HOME, what is copied in)
XDG_DIRS = (("XDG_CONFIG_HOME", ".config", ("opencode",)), ("XDG_DATA_HOME", ".local/share", ("opencode/auth.json",)),
            ("XDG_STATE_HOME", ".local/state", ()), ("XDG_CACHE_HOME", ".cache", ()))


def sandbox_mode(environ: Mapping[str, str]) -> str:
    mode = (environ.get("AGENTIC_LOCAL_SANDBOX") or "auto").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"invalid AGENTIC_LOCAL_SANDBOX: {mode!r}; allowed: auto, bwrap, none or podman")
    if mode in ("none", "podman"):
        return mode
    works = shutil.which("bwrap") is not None and subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True).returncode == 0
    if works:
        return "bwrap"
    if mode == "bwrap":
        raise ConfigError("AGENTIC_LOCAL_SANDBOX=bwrap but bubblewrap (bwrap) is not installed or cannot make a "
                          "sandbox here; install the Debian package bubblewrap (scripts/install-deps.sh)")
    return "none"


def private_xdg(environ: Mapping[str, str], task_dir: Path) -> dict[str, str]:
    """XDG directories of the task's own, in its state directory: OpenCode writes there (its config
    dir's plugins, its cache's packages, its data) and a change must not reach the developer's next
    OpenCode session. The developer's OpenCode config (without node_modules) and login (auth.json) are
    copied in."""
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    env: dict[str, str] = {}
    for name, default, copies in XDG_DIRS:
        source = Path(environ[name]) if environ.get(name) else home / default
        target = task_dir / "xdg" / name.removeprefix("XDG_").removesuffix("_HOME").lower()
        target.mkdir(parents=True, exist_ok=True)
        for rel in copies:
            src, dst = source / rel, target / rel
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("node_modules"))
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        env[name] = str(target)
    return env


def _git_common_dir(repo: Path) -> Path | None:
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                          capture_output=True, text=True)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def sandbox_command(environ: Mapping[str, str], task_dir: Path) -> list[str]:
    """The bwrap prefix of the runner's command line, or [] without a sandbox."""
    if sandbox_mode(environ) != "bwrap":
        return []
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--proc", "/proc",
            "--unshare-ipc", "--unshare-uts", "--tmpfs", "/tmp"]
    tmp = Path("/tmp")
    # what the runner needs that lived in /tmp (a test's home, an OpenCode copy), back, read-only
    needed = {home, Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parents[2], Path(os.getcwd())}
    for name in ("AGENTIC_OPENCODE_BIN", "XDG_CONFIG_HOME", "AGENTIC_WORKTREE_REPO"):
        if environ.get(name):
            needed.add(Path(environ[name]).parent if name.endswith("_BIN") else Path(environ[name]))
    restored = [p for p in sorted(needed, key=lambda p: len(p.parts)) if _under(p, tmp) and p.exists()]
    for path in restored:
        args += ["--ro-bind", str(path), str(path)]

    def visible(path: Path) -> bool:
        return path.exists() and (not _under(path, tmp) or any(_under(path, r) for r in restored))

    # writable: the state directory, the repository's git directory and the worktrees, OpenCode's data
    writable = [task_dir]
    repo = environ.get("AGENTIC_WORKTREE_REPO")
    common = _git_common_dir(Path(repo)) if repo else None
    if repo:
        worktrees = Path(repo) / ".agentic-sdlc" / "worktrees"
        worktrees.mkdir(parents=True, exist_ok=True)
        writable.append(worktrees)
    if common is not None:
        writable.append(common)
    for path in writable:
        args += ["--bind", str(path), str(path)]
    # read-only again inside what is writable: the task's own records the server acts on (the pid it
    # signals on cancel, the spec, the context), the repository's config and hooks
    for name in ("context.json", "process.json", "spec.json"):
        if (task_dir / name).is_file():
            args += ["--ro-bind", str(task_dir / name), str(task_dir / name)]
    if common is not None:
        for name in ("config", "hooks"):
            if (common / name).exists():
                args += ["--ro-bind", str(common / name), str(common / name)]
    # hidden: credentials of every kind
    hide_dirs = [home / d for d in HIDDEN_DIRS]
    run_user = Path(f"/run/user/{os.getuid()}")
    hide_dirs.append(run_user)
    sock = environ.get("SSH_AUTH_SOCK")
    if sock and Path(sock).parent not in (Path("/"), home):
        hide_dirs.append(Path(sock).parent)
    for path in hide_dirs:
        if path.is_dir() and visible(path):
            args += ["--tmpfs", str(path)]
    hide_files = [home / f for f in HIDDEN_FILES]
    if environ.get("KUBECONFIG"):
        hide_files += [Path(p) for p in environ["KUBECONFIG"].split(os.pathsep) if p]
    hide_files.append(home / ".kube" / "config")
    for path in hide_files:
        if path.is_file() and visible(path) and not any(_under(path, d) for d in hide_dirs):
            args += ["--ro-bind", "/dev/null", str(path)]
    args += ["--chdir", os.getcwd(), "--"]
    return args
