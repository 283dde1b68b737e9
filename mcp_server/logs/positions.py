"""Log relay: positions and cursors, no loss and no duplicates, result/step lines, stern-like prefixes.

A stream (one pod's `agent` container) is read with timestamps. Its position is the timestamp of the
last delivered line plus how many lines carrying exactly that timestamp were delivered, so a re-read
from that timestamp (the API server's `sinceTime` is only second-precise) skips exactly what was
delivered, whatever happened in between (an API server restart, a new MCP server process).
The cursor handed to clients is these positions as base64 JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from mcp_server.errors import InvalidInput
from mcp_server.models import LogLine, StreamPosition, TaskResult
from mcp_server.naming import RESULT_MARKER

CURSOR_VERSION = 1
CURSOR_ALLOWED = "the `cursor` of a previous stream_task_logs result for the same environment, or empty"

_TS_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class RawLine:
    """One line of a stream with its timestamp (None for streams without timestamps)."""

    stream: str
    time: str | None
    nanos: int
    text: str


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


def parse_timestamped(stream: str, body: str, truncated: bool = False) -> list[RawLine]:
    """Lines of a `timestamps=true` log body. With `truncated`, a last line without newline is dropped
    (it may be cut); it is read again next time."""
    chunks = body.split("\n")
    tail = chunks.pop()  # "" when the body ends with a newline
    if tail and not truncated:
        chunks.append(tail)
    lines: list[RawLine] = []
    for chunk in chunks:
        stamp, _, text = chunk.partition(" ")
        try:
            nanos = ts_nanos(stamp)
        except ValueError:
            continue  # not a log line (an API server message inside the body)
        lines.append(RawLine(stream, stamp, nanos, text.rstrip("\r")))
    return lines


def after_position(lines: Sequence[RawLine], position: StreamPosition) -> list[RawLine]:
    """The lines of a stream that come after `position` (they are in stream order)."""
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


def advance(position: StreamPosition, delivered: Sequence[RawLine], done: bool = False) -> StreamPosition:
    """The position after delivering `delivered` (stream order) from `position`."""
    if not delivered:
        return position.model_copy(update={"done": done or position.done})
    if delivered[-1].time is None:
        return StreamPosition(after=None, count=position.count + len(delivered), done=done)
    last = delivered[-1]
    same = sum(1 for line in delivered if line.nanos == last.nanos)
    if position.after is not None and ts_nanos(position.after) == last.nanos:
        same += position.count
    return StreamPosition(after=last.time, count=same, done=done)


def merge_streams(streams: Mapping[str, Sequence[RawLine]], max_lines: int) -> tuple[list[RawLine], bool]:
    """Lines of several streams in time order (each stream's own order kept), at most `max_lines`.
    Returns them and whether some were left for later."""
    merged = sorted((line for lines in streams.values() for line in lines), key=lambda line: line.nanos)
    return merged[:max_lines], len(merged) > max_lines


# -- cursor ------------------------------------------------------------------------------------


def encode_cursor(environment: str, positions: Mapping[str, StreamPosition]) -> str:
    data = {
        "v": CURSOR_VERSION,
        "e": environment,
        "p": {key: [pos.after, pos.count, int(pos.done)] for key, pos in sorted(positions.items())},
    }
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, environment: str) -> dict[str, StreamPosition]:
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        entries = data["p"]
        positions = {
            str(key): StreamPosition(after=value[0], count=int(value[1]), done=bool(value[2]))
            for key, value in entries.items()
        }
        for pos in positions.values():
            if pos.after is not None:
                ts_nanos(pos.after)
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError, AttributeError, ValidationError):
        raise InvalidInput(
            "cursor", "it is not a cursor returned by stream_task_logs", CURSOR_ALLOWED
        ) from None
    if data.get("e") != environment:
        raise InvalidInput(
            "cursor", f"it belongs to environment {data.get('e')!r}, not {environment!r}", CURSOR_ALLOWED
        )
    return positions


# -- what lines mean ---------------------------------------------------------------------------


def runner_step(text: str) -> str | None:
    """The `phase` of one of the runner's own JSON lines (setup, clone, ..., done), else None."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("phase"), str) and "msg" in data:
        return data["phase"]
    return None


def parse_result(text: str | None) -> TaskResult | None:
    """The runner's result JSON (termination message or the text after the log marker), tolerantly."""
    if not text:
        return None
    text = text.strip()
    if text.startswith(RESULT_MARKER.strip()):
        text = text[len(RESULT_MARKER.strip()) :].strip()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            return None
        # Keys a newer runner may add are ignored; the contract's own fields must be valid.
        return TaskResult.model_validate({k: v for k, v in data.items() if k in TaskResult.model_fields})
    except (ValueError, ValidationError):
        return None


def result_from_lines(texts: Iterable[str]) -> TaskResult | None:
    """The last `AGENTIC_RESULT: {...}` line of a log, parsed."""
    found = None
    for text in texts:
        if text.startswith(RESULT_MARKER):
            found = parse_result(text[len(RESULT_MARKER) :]) or found
    return found


# -- human output (stern-like) -----------------------------------------------------------------

_COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


class Prefixer:
    """A coloured `[T012] ` prefix per task; a task keeps its colour for the whole stream."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self._assigned: dict[str, int] = {}

    def prefix(self, task_id: str) -> str:
        if not self.color:
            return f"[{task_id}] "
        code = self._assigned.setdefault(task_id, _COLORS[len(self._assigned) % len(_COLORS)])
        return f"\x1b[{code}m[{task_id}]\x1b[0m "

    def format(self, line: LogLine) -> str:
        return self.prefix(line.task_id) + line.text
