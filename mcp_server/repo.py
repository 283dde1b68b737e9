"""The git repository the server runs in: its origin and current branch, and files confined to it.

A path a caller names (context files, tasks.md) must stay inside the repository, also after symlinks
are followed; anything else is refused naming the field.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mcp_server import naming
from mcp_server.errors import InvalidInput
from mcp_server.runner.contract import ContextFile

PATH_ALLOWED = "a path of a file inside the repository, relative to its root"


def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _mtime(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


class Repository:
    """The repository the server runs in: its origin and current branch, asked of git once and
    asked again only when `.git/HEAD` or `.git/config` changes (so a spawn costs no git process,
    and a branch switch or a new remote is still seen at once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        dirs = _git(root, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir")
        self._git_dir: Path | None = None
        self._common_dir: Path | None = None
        if dirs is not None:
            git_dir, _, common = dirs.partition("\n")
            self._git_dir = Path(git_dir)
            self._common_dir = Path(common) if common else self._git_dir
        self._branch: tuple[int | None, str] | None = None
        self._origin: tuple[int | None, str] | None = None

    def current_branch(self) -> str:
        stamp = _mtime(self._git_dir / "HEAD" if self._git_dir else None)
        if self._branch is None or self._branch[0] != stamp or stamp is None:
            self._branch = (stamp, current_branch(self.root))
        return self._branch[1]

    def origin_url(self) -> str:
        stamp = _mtime(self._common_dir / "config" if self._common_dir else None)
        if self._origin is None or self._origin[0] != stamp or stamp is None:
            self._origin = (stamp, origin_url(self.root))
        return self._origin[1]


def origin_url(root: Path) -> str:
    url = _git(root, "remote", "get-url", "origin")
    if url is None:
        raise InvalidInput(
            "repo",
            f"it was not given and the repository at {root} has no 'origin' remote",
            "pass repo explicitly: " + naming.REPO_ALLOWED,
        )
    try:
        return naming.validate_repo_url(url, "repo")
    except InvalidInput as exc:
        raise InvalidInput(
            "repo",
            f"it was not given and the 'origin' remote of {root} is refused: {exc.problem}",
            "pass repo explicitly: " + naming.REPO_ALLOWED,
        ) from None


def current_branch(root: Path) -> str:
    branch = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if branch is None:
        raise InvalidInput(
            "base_branch",
            f"it was not given and the repository at {root} is not on a branch",
            "pass base_branch explicitly: " + naming.BRANCH_ALLOWED,
        )
    return naming.validate_branch(branch, "base_branch")


def inside(root: Path, path: str, field: str) -> Path:
    """The resolved `path` (relative to `root` or absolute), refused when it leaves the repository."""
    if not path or "\0" in path:
        raise InvalidInput(field, "it is not a path", PATH_ALLOWED)
    root = root.resolve()
    candidate = Path(path) if Path(path).is_absolute() else root / path
    lexical = Path(os.path.normpath(candidate))
    if not lexical.is_relative_to(root):
        raise InvalidInput(field, "it is outside the repository", PATH_ALLOWED)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop is a RuntimeError before Python 3.13
        raise _unreadable(field, exc) from None
    if not resolved.is_relative_to(root):
        raise InvalidInput(field, "it leads out of the repository through a symlink", PATH_ALLOWED)
    if resolved.is_relative_to(root / ".git"):
        raise InvalidInput(field, "it is inside .git", PATH_ALLOWED)
    return resolved


def read_text(root: Path, path: str, field: str, max_bytes: int, kind: str = "text files") -> tuple[Path, str]:
    """The resolved path and text of a UTF-8 file of at most `max_bytes` inside the repository."""
    resolved = inside(root, path, field)
    try:
        if not resolved.is_file():
            raise InvalidInput(field, "there is no such file in the repository", PATH_ALLOWED)
        size = resolved.stat().st_size
        if size > max_bytes:
            raise InvalidInput(field, f"the file has {size} bytes", f"files of at most {max_bytes} bytes")
        return resolved, resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(field, "it is not a UTF-8 text file", kind) from None
    except OSError as exc:  # a name too long, no permission, ...: the field, not a crash
        raise _unreadable(field, exc) from None


def _unreadable(field: str, exc: OSError | RuntimeError) -> InvalidInput:
    """What the OS refused, without the path (the caller named it) or anything else of the server's."""
    if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
        return InvalidInput(field, "it leads into a symlink loop", PATH_ALLOWED)
    reason = (exc.strerror or type(exc).__name__).lower()
    return InvalidInput(field, f"it cannot be read ({reason})", PATH_ALLOWED)


@dataclass(frozen=True)
class RepoFiles:
    """Reads files of one repository for task contexts, within size limits."""

    root: Path
    file_max_bytes: int
    total_max_bytes: int

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root.resolve()).as_posix()

    def read_text(self, path: str, field: str) -> tuple[str, str]:
        """(repo-relative path, text) of a file inside the repository."""
        resolved, text = read_text(self.root, path, field, self.file_max_bytes)
        return self.relative(resolved), text

    def context_files(self, paths: list[str], field: str = "context_files") -> list[ContextFile]:
        files: list[ContextFile] = []
        total = 0
        for index, path in enumerate(paths):
            rel, text = self.read_text(path, f"{field}[{index}]")
            total += len(text.encode("utf-8"))
            if total > self.total_max_bytes:
                raise InvalidInput(
                    field,
                    f"the files have more than {self.total_max_bytes} bytes together",
                    f"at most {self.total_max_bytes} bytes in all",
                )
            if all(f.path != rel for f in files):
                files.append(ContextFile(path=rel, content=text))
        return files
