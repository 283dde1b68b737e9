"""Follow streams held open by the server between calls: one reader thread per followed stream.

Re-reading every stream on every call costs a request per stream per poll and the whole backlog of
each stream's last second every time; at a few hundred lines a second per pod it falls behind. So a
running stream, once read, is followed: a thread keeps one `follow=true` request open and puts each
line into a bounded buffer, and a read is served from that buffer (no request). The buffer holds the
stream's lines after its `base` position, contiguously: a read from any position at or after `base`
is exact, whatever the client; an older position (a client that fell behind further than the buffer
holds) is answered None, and the backend reads it directly, as without a follower.

A broken stream (an API server restart, a read timeout) is opened again from the position of the
last line it put into the buffer (`sinceTime` of its second, the lines of that second already held
skipped), so the buffer never misses or repeats a line. A stream that is gone (`StreamGone`: the pod
was deleted) ends its follower. Followers no read asked for in `IDLE_SECONDS` are closed, and at
most `MAX_STREAMS` are open at once (beyond that, reads go to the backend directly).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from mcp_server.logs.positions import RawLine, after_position, at_or_after, relative_to, ts_nanos
from mcp_server.models import StreamPosition
from mcp_server.runner.usage import is_usage_line

MAX_STREAMS = 100
IDLE_SECONDS = 120.0
BUFFER_LINES = 10_000
BUFFER_BYTES = 4 * 1024 * 1024
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits before opening a broken stream again (the last one repeats)."""


class StreamGone(Exception):
    """The stream no longer exists (its pod was deleted): its follower ends."""


Opener = Callable[[str, StreamPosition], Iterable[bytes]]
"""Opens a follow stream of `stream` at (the whole second of) a position: its body, chunk by chunk,
as it arrives. Raises StreamGone when the stream no longer exists; any other exception (or the end
of the body) is a broken stream, opened again."""

Closer = Callable[[Iterable[bytes]], None]


@dataclass(frozen=True)
class Limits:
    lines: int = BUFFER_LINES
    bytes: int = BUFFER_BYTES


class Follower:
    """One followed stream and its buffer of the lines after `base`."""

    def __init__(self, name: str, start: StreamPosition, opener: Opener, limits: Limits) -> None:
        self.name = name
        self._opener = opener
        self._limits = limits
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._body: Iterable[bytes] | None = None
        self._base = start
        self._last = start  # the position after the last buffered line
        self._last_nanos = ts_nanos(start.after) if start.after is not None else None
        self._lines: list[RawLine] = []
        self._nanos: list[int] = []
        self._bytes = 0
        self._ordered = True  # every buffered line's timestamp >= the one before
        self.last_text: str | None = None
        self.last_usage_text: str | None = None  # the runner's latest usage line (usage so far)
        self.used = time.monotonic()
        self.ended = False  # the follower stopped for good (the stream is gone, or closed)
        self.connects = 0
        self._thread = threading.Thread(target=self._run, name=f"log-follow-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the reader thread ------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                delivered = False
                try:
                    self.connects += 1
                    for _line in self._follow_once():
                        delivered = True
                except StreamGone:
                    return
                except Exception:  # noqa: BLE001, S110 - a broken stream of any kind is opened again
                    pass
                failures = 0 if delivered else failures + 1
                self._stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
        finally:
            self.ended = True

    def _follow_once(self) -> Iterator[RawLine]:
        """Open the stream from the last buffered line on; buffer each new complete line."""
        with self._lock:
            position = self._last
        body = self._opener(self.name, position)
        self._body = body
        mark = ts_nanos(position.after) if position.after is not None else None
        skip, seen = position.count, 0
        pending = b""
        try:
            for chunk in body:
                if self._stop.is_set():
                    return
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = _parse(self.name, raw)
                    if line is None:
                        continue
                    if mark is None:
                        if seen < skip:
                            seen += 1
                            continue
                    elif line.nanos < mark:
                        continue
                    elif line.nanos == mark:
                        seen += 1
                        if seen <= skip:
                            continue
                    self._append(line)
                    yield line
        finally:
            self._body = None

    def _append(self, line: RawLine) -> None:
        with self._lock:
            if self._nanos and line.nanos < self._nanos[-1]:
                self._ordered = False
            self._lines.append(line)
            self._nanos.append(line.nanos)
            self._bytes += len(line.text) + 40
            self._last = _advance_one(self._last, line, self._last_nanos)
            self._last_nanos = line.nanos
            self.last_text = line.text
            if is_usage_line(line.text):
                self.last_usage_text = line.text
            if len(self._lines) > self._limits.lines or self._bytes > self._limits.bytes:
                self._trim()

    def _trim(self) -> None:
        """Drop the oldest quarter of the buffer (under the lock); `base` moves past them."""
        drop = max(1, len(self._lines) // 4)
        base = self._base
        nanos = ts_nanos(base.after) if base.after is not None else None
        for line in self._lines[:drop]:
            base = _advance_one(base, line, nanos)
            nanos = line.nanos
            self._bytes -= len(line.text) + 40
        del self._lines[:drop]
        del self._nanos[:drop]
        self._base = base

    # -- reads ----------------------------------------------------------------------------------

    def read(self, position: StreamPosition, limit: int) -> tuple[list[RawLine], bool] | None:
        """The buffered lines after `position` (at most `limit`) and whether more are buffered;
        None when `position` is before the buffer (its lines are no longer, or never were, held)."""
        with self._lock:
            self.used = time.monotonic()
            if position.offset is not None or not at_or_after(position, self._base):
                return None
            rel = relative_to(position, self._base)
            if not self._ordered or rel.after is None:
                lines = after_position(self._lines, rel)
                return lines[:limit], len(lines) > limit
            mark = ts_nanos(rel.after)
            start = bisect.bisect_left(self._nanos, mark)
            at_mark = bisect.bisect_right(self._nanos, mark, lo=start) - start
            start += min(rel.count, at_mark)
            lines = self._lines[start : start + limit]
            return lines, start + limit < len(self._lines)

    def close(self) -> None:
        self._stop.set()
        body = self._body
        if body is not None:
            _shutdown(body)


class Followers:
    """The followed streams of one backend (a namespace, a local state directory), by name."""

    def __init__(
        self,
        opener: Opener,
        *,
        max_streams: int = MAX_STREAMS,
        idle_seconds: float = IDLE_SECONDS,
        limits: Limits | None = None,
    ) -> None:
        self._opener = opener
        self._max = max_streams
        self._idle = idle_seconds
        self._limits = limits or Limits()
        self._lock = threading.Lock()
        self._followers: dict[str, Follower] = {}
        self._last_lines: dict[str, str] = {}
        self._last_usages: dict[str, str] = {}

    def read(self, name: str, position: StreamPosition, limit: int) -> tuple[list[RawLine], bool] | None:
        """Lines of running stream `name` after `position` from its follower; None when they must
        be read directly (no follower could be started, or `position` is before its buffer). A
        stream read for the first time gets a follower from `position` on."""
        with self._lock:
            self._close_idle()
            follower = self._followers.get(name)
            if follower is not None and follower.ended:
                self._retire(name)
                follower = None
            if follower is None:
                if len(self._followers) >= self._max:
                    return None
                follower = Follower(name, position, self._opener, self._limits)
                self._followers[name] = follower
                follower.start()
        return follower.read(position, limit)

    def stop(self, name: str) -> None:
        """The stream has ended (or is gone): close its follower; its last line is kept."""
        with self._lock:
            self._retire(name)

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget every stream but `names` (the ones that still exist)."""
        keep = set(names)
        with self._lock:
            for name in [n for n in self._followers if n not in keep]:
                self._retire(name)
            for name in [n for n in self._last_lines if n not in keep]:
                del self._last_lines[name]
            for name in [n for n in self._last_usages if n not in keep]:
                del self._last_usages[name]

    def note_lines(self, name: str, texts: Sequence[str]) -> None:
        """Lines of `name` read directly (not through a follower), oldest first: its latest line and
        latest usage line are kept."""
        if not texts:
            return
        usage = next((t for t in reversed(texts) if is_usage_line(t)), None)
        with self._lock:
            self._last_lines[name] = texts[-1]
            if usage is not None:
                self._last_usages[name] = usage

    def last_line(self, name: str) -> str | None:
        """The latest line of stream `name` the server holds (no request), or None."""
        with self._lock:
            follower = self._followers.get(name)
            if follower is not None and follower.last_text is not None:
                return follower.last_text
            return self._last_lines.get(name)

    def last_usage_line(self, name: str) -> str | None:
        """The runner's latest usage line of stream `name` the server holds (no request), or None."""
        with self._lock:
            follower = self._followers.get(name)
            if follower is not None and follower.last_usage_text is not None:
                return follower.last_usage_text
            return self._last_usages.get(name)

    def following(self) -> list[str]:
        with self._lock:
            return sorted(n for n, f in self._followers.items() if not f.ended)

    def close(self) -> None:
        with self._lock:
            for name in list(self._followers):
                self._retire(name)

    def _retire(self, name: str) -> None:
        follower = self._followers.pop(name, None)
        if follower is None:
            return
        follower.close()
        if follower.last_text is not None:
            self._last_lines[name] = follower.last_text
        if follower.last_usage_text is not None:
            self._last_usages[name] = follower.last_usage_text

    def _close_idle(self) -> None:
        now = time.monotonic()
        for name in [n for n, f in self._followers.items() if now - f.used > self._idle]:
            self._retire(name)


def _parse(stream: str, raw: bytes) -> RawLine | None:
    """One `timestamps=true` line of a follow stream; None for what is not a log line."""
    text = raw.decode("utf-8", errors="replace")
    stamp, _, rest = text.partition(" ")
    try:
        nanos = ts_nanos(stamp)
    except ValueError:
        return None
    return RawLine(stream, stamp, nanos, rest.rstrip("\r"))


def _advance_one(position: StreamPosition, line: RawLine, nanos: int | None) -> StreamPosition:
    """The position after one more line (`positions.advance` for one line); `nanos`: the instant of
    `position.after`, already known."""
    if nanos is not None and nanos == line.nanos:
        return StreamPosition.model_construct(after=position.after, count=position.count + 1, done=False, offset=None)
    return StreamPosition.model_construct(after=line.time, count=1, done=False, offset=None)


def _shutdown(body: Iterable[bytes]) -> None:
    """Unblock a reader waiting on `body` (an open HTTP response), then close it."""
    for method in ("shutdown", "close"):
        call = getattr(body, method, None)
        if callable(call):
            with contextlib.suppress(Exception):  # closing is best effort
                call()
