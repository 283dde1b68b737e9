"""The push queue: how the agent's side asks the pusher (the `git-push` sidecar, or the local
backend's supervisor) to push its work. One place for the file format; stdlib only.

The queue is a directory both sides can write (the pod's `push-queue` emptyDir at /run/agentic/push):

    <n>.bundle          `git bundle create` of the work (the agent side writes it first)
    <n>.request.json    {"n": <n>, "kind": "checkpoint"|"final", "sha": "<40 hex>", "bundle": "<n>.bundle"}
    <n>.response.json   {"n", "pushed", "ref", "sha", "fallback_ref", "error", "refused"} (the pusher)

Each file is written under a fresh temporary name and renamed into place, so a reader never sees half
of one. The pusher trusts nothing in the directory: it opens files without following symlinks, takes
only regular files of bounded size, reads the bundle under the name `<n>.bundle` whatever the request
says, and never takes a branch, a ref or a URL from a request (they come from the task context).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_QUEUE_DIR = "/run/agentic/push"
REQUEST_SUFFIX = ".request.json"
RESPONSE_SUFFIX = ".response.json"
BUNDLE_SUFFIX = ".bundle"
REQUEST_MAX_BYTES = 64 * 1024
BUNDLE_MAX_BYTES = 4 * 1024 * 1024 * 1024
N_MAX = 1_000_000
Kind = Literal["checkpoint", "final"]
KINDS: tuple[Kind, ...] = ("checkpoint", "final")
_SHA = re.compile(r"[0-9a-f]{40}")
_REQUEST_NAME = re.compile(r"([1-9][0-9]{0,6})" + re.escape(REQUEST_SUFFIX))


class QueueError(Exception):
    """A file of the queue is not what the protocol says; the message names it and why."""


@dataclass(frozen=True)
class PushRequest:
    n: int
    kind: Kind
    sha: str

    @property
    def bundle(self) -> str:
        return bundle_name(self.n)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "kind": self.kind, "sha": self.sha, "bundle": self.bundle}


@dataclass(frozen=True)
class PushResponse:
    n: int
    pushed: bool
    ref: str
    sha: str
    fallback_ref: str | None = None
    error: str | None = None
    refused: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bundle_name(n: int) -> str:
    return f"{n}{BUNDLE_SUFFIX}"


def parse_request(n: int, data: Any) -> PushRequest:
    """A request as the pusher accepts it; QueueError names the field and what is allowed. Keys the
    protocol does not have (a `ref`, a `url`, `force`) are ignored: they never choose anything."""
    if not isinstance(data, dict):
        raise QueueError(f"request {n}: not a JSON object; allowed: {{\"n\", \"kind\", \"sha\", \"bundle\"}}")
    if data.get("n") != n or isinstance(data.get("n"), bool):
        raise QueueError(f"request {n}: invalid n: it is not {n} (the number in the file name)")
    kind = data.get("kind")
    if kind not in KINDS:
        raise QueueError(f"request {n}: invalid kind; allowed: checkpoint or final")
    sha = data.get("sha")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise QueueError(f"request {n}: invalid sha; allowed: a full commit id (40 lowercase hex digits)")
    if data.get("bundle", bundle_name(n)) != bundle_name(n):
        raise QueueError(f"request {n}: invalid bundle; allowed: {bundle_name(n)!r} in the queue directory")
    return PushRequest(n, kind, sha)


def parse_response(data: Any) -> PushResponse:
    if not isinstance(data, dict):
        raise QueueError("response: not a JSON object")
    try:
        return PushResponse(
            n=int(data["n"]), pushed=bool(data["pushed"]), ref=str(data["ref"]), sha=str(data["sha"]),
            fallback_ref=data.get("fallback_ref") if isinstance(data.get("fallback_ref"), str) else None,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            refused=[str(p) for p in data.get("refused") or []],
        )
    except (KeyError, TypeError, ValueError):
        raise QueueError("response: a field is missing or of the wrong type") from None


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` through a fresh temporary file (O_EXCL, no symlink followed) renamed
    over it: a reader sees the whole file or none, and a planted `<name>.tmp` symlink is not used."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_regular(path: Path, max_bytes: int) -> int:
    """An fd of `path` if it is a regular file (not a symlink, fifo or device) of at most `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise QueueError(f"{path.name}: cannot be opened ({exc.strerror or exc}); allowed: a regular file") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise QueueError(f"{path.name}: not a regular file; allowed: a regular file")
    if info.st_size > max_bytes:
        os.close(fd)
        raise QueueError(f"{path.name}: {info.st_size} bytes; allowed: at most {max_bytes}")
    return fd


def read_json_file(path: Path, max_bytes: int = REQUEST_MAX_BYTES) -> Any:
    fd = open_regular(path, max_bytes)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(max_bytes + 1)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise QueueError(f"{path.name}: not JSON") from None


def copy_bundle(queue: Path, n: int, dest: Path) -> None:
    """Copy `<n>.bundle` out of the queue into `dest` (a private file of the pusher)."""
    fd = open_regular(queue / bundle_name(n), BUNDLE_MAX_BYTES)
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "rb") as src, os.fdopen(out, "wb") as dst:
        copied = 0
        while chunk := src.read(1024 * 1024):
            copied += len(chunk)
            if copied > BUNDLE_MAX_BYTES:
                raise QueueError(f"{bundle_name(n)}: grew beyond {BUNDLE_MAX_BYTES} bytes while being read")
            dst.write(chunk)


class AgentQueue:
    """The agent side: submit a bundle, wait for the pusher's answer."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def next_n(self) -> int:
        used = [int(m.group(1)) for p in self._names() if (m := _REQUEST_NAME.fullmatch(p))]
        return max(used, default=0) + 1

    def bundle_path(self, n: int) -> Path:
        return self.dir / bundle_name(n)

    def submit(self, request: PushRequest) -> None:
        write_atomic(self.dir / f"{request.n}{REQUEST_SUFFIX}", json.dumps(request.to_json()).encode(), 0o644)

    def wait(self, n: int, timeout: float, cancel: threading.Event | None = None,
             poll: float = 0.1) -> PushResponse | None:
        """The response to request `n`, or None after `timeout` seconds (or once `cancel` is set)."""
        path = self.dir / f"{n}{RESPONSE_SUFFIX}"
        deadline = time.monotonic() + timeout
        while True:
            if path.exists():
                with contextlib.suppress(QueueError):
                    return parse_response(read_json_file(path))
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                return None
            time.sleep(poll)

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.dir)
        except OSError:
            return []


class PusherQueue:
    """The pusher's side: the requests not answered yet, in order; answers."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def pending(self) -> Iterator[int]:
        try:
            names = set(os.listdir(self.dir))
        except OSError:
            return iter(())
        numbers = sorted(
            int(m.group(1)) for name in names if (m := _REQUEST_NAME.fullmatch(name))
            and f"{m.group(1)}{RESPONSE_SUFFIX}" not in names and int(m.group(1)) <= N_MAX
        )
        return iter(numbers)

    def read(self, n: int) -> PushRequest:
        return parse_request(n, read_json_file(self.dir / f"{n}{REQUEST_SUFFIX}"))

    def respond(self, response: PushResponse) -> None:
        write_atomic(self.dir / f"{response.n}{RESPONSE_SUFFIX}", json.dumps(response.to_json()).encode(), 0o644)
