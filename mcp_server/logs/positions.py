"""Positions in log streams: no line lost, none repeated, whatever happens between two reads.

A stream (one pod's `agent` container, one local run's log file) is read with timestamps. Its
position is the timestamp of the last delivered line plus how many lines carrying exactly that
timestamp were delivered, so a re-read from that timestamp (the API server's `sinceTime` is only
second-precise) skips exactly what was delivered, whatever happened in between (an API server
restart, a new MCP server process). A stream that is a file also keeps the byte offset after the
last delivered line (`StreamPosition.offset`), so it is read from there rather than from the start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mcp_server.models import StreamPosition

_TS_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line of a stream with its timestamp (None for streams without timestamps) and, for a
    stream that is a file, the byte offset just after it."""

    stream: str
    time: str | None
    nanos: int
    text: str
    end: int | None = None


@dataclass
class Resume:
    """Where a client is: the position of each stream, and the `floor`: a stream of a pod created
    before it that has ended and has no position is fully delivered (`mcp_server.logs.relay`)."""

    positions: dict[str, StreamPosition]
    floor: str | None = None


def format_nanos(nanos: int) -> str:
    """The RFC 3339 timestamp (UTC, nine fraction digits) of nanoseconds since the epoch."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def ts_nanos(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (any number of fraction digits)."""
    match = _TS_RE.fullmatch(stamp)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {stamp!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    seconds = int(datetime.fromisoformat(base + zone).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def since_time(stamp: str) -> str:
    """The API server's `sinceTime` for a position: the whole second at or before `stamp`, in UTC."""
    seconds = ts_nanos(stamp) // 1_000_000_000
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamped(
    stream: str, body: str, truncated: bool = False, offset: int | None = None
) -> list[RawLine]:
    """Lines of a `timestamps=true` log body. With `truncated`, a last line without newline is dropped
    (it may be cut); it is read again next time. `offset`: the body was read from this byte offset
    of a file; each line then carries the offset just after it (a file's unfinished last line is
    dropped like a cut one: it is read again, whole, next time)."""
    chunks = body.split("\n")
    tail = chunks.pop()  # "" when the body ends with a newline
    if tail and not truncated and offset is None:
        chunks.append(tail)
    lines: list[RawLine] = []
    end = offset
    for chunk in chunks:
        if end is not None:
            end += len(chunk.encode("utf-8")) + 1
        stamp, _, text = chunk.partition(" ")
        try:
            nanos = ts_nanos(stamp)
        except ValueError:
            continue  # not a log line (an API server message inside the body)
        lines.append(RawLine(stream, stamp, nanos, text.rstrip("\r"), end))
    return lines


def after_position(lines: Sequence[RawLine], position: StreamPosition) -> list[RawLine]:
    """The lines of a stream that come after `position` (they are in stream order)."""
    if position.offset is not None and all(line.end is not None for line in lines):
        return [line for line in lines if line.end is not None and line.end > position.offset]
    if position.after is None:
        return list(lines[position.count :])
    mark = ts_nanos(position.after)
    result: list[RawLine] = []
    seen_at_mark = 0
    for line in lines:
        if line.nanos < mark:
            continue
        if line.nanos == mark:
            seen_at_mark += 1
            if seen_at_mark <= position.count:
                continue
        result.append(line)
    return result


def _key(position: StreamPosition) -> tuple[int, int]:
    return (ts_nanos(position.after) if position.after is not None else -1, position.count)


def at_or_after(position: StreamPosition, base: StreamPosition) -> bool:
    """`position` is at or after `base` in the same (timestamped) stream."""
    return _key(position) >= _key(base)


def relative_to(position: StreamPosition, base: StreamPosition) -> StreamPosition:
    """`position` (at or after `base`) as a position in the lines that come after `base`: the lines
    at `base`'s own timestamp that `base` counts are not among them."""
    if position.after is None or (base.after is not None and ts_nanos(base.after) == ts_nanos(position.after)):
        return position.model_copy(update={"count": position.count - base.count})
    return position


def advance(position: StreamPosition, delivered: Sequence[RawLine], done: bool = False) -> StreamPosition:
    """The position after delivering `delivered` (stream order) from `position`."""
    if not delivered:
        return position.model_copy(update={"done": done or position.done})
    last = delivered[-1]
    offset = last.end if last.end is not None else position.offset
    if last.time is None:
        return StreamPosition(after=None, count=position.count + len(delivered), done=done, offset=offset)
    same = sum(1 for line in delivered if line.nanos == last.nanos)
    if position.after is not None and ts_nanos(position.after) == last.nanos:
        same += position.count
    return StreamPosition(after=last.time, count=same, done=done, offset=offset)


def merge_streams(streams: Mapping[str, Sequence[RawLine]], max_lines: int) -> tuple[list[RawLine], bool]:
    """Lines of several streams in time order (each stream's own order kept), at most `max_lines`.
    Returns them and whether some were left for later."""
    merged = sorted((line for lines in streams.values() for line in lines), key=lambda line: line.nanos)
    return merged[:max_lines], len(merged) > max_lines
