"""The log relay: one read of every selected task's streams, merged in time order, and the wait of
stream_task_logs around it. Written once for every backend: a backend only lists each task's streams
(`TaskStreams`) and reads one raw stream from a position (`StreamRead`); merging, advancing the
positions, forgetting streams that are gone and telling when a task is fully delivered happen here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import anyio

from mcp_server.errors import BackendUnavailable, RunnerError
from mcp_server.logs.positions import (
    RawLine,
    Resume,
    advance,
    after_position,
    format_nanos,
    merge_streams,
    ts_nanos,
)
from mcp_server.models import LogBatch, LogLine, StreamPosition, TaskLogState, TaskRef, TaskStatus

READERS = 8
"""Streams read at once (one request each)."""


@dataclass(frozen=True)
class LogStream:
    """One stream of a task that has output: a pod's `agent` container, a local run's log file.
    `ended`: it had ended when it was listed, so a complete read of it from then on is final.
    `created`: when its pod was created (RFC 3339, the API server's clock), if the backend knows."""

    name: str
    ended: bool
    created: str | None = None


@dataclass(frozen=True)
class TaskStreams:
    """A task and those of its streams that have started; `unstarted_since`: the creation time of
    its oldest pod that has not started yet (its stream comes later), if any."""

    status: TaskStatus
    streams: tuple[LogStream, ...]
    unstarted_since: str | None = None


@dataclass(frozen=True)
class StreamRead:
    """The lines of one stream from a position on (a backend may return a few before it: the relay
    skips them), and whether the read was cut (a size limit): the rest comes with the next read."""

    lines: list[RawLine]
    truncated: bool = False


class LogSource(Protocol):
    """What a backend gives the relay."""

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        """The selected tasks (`None`: every task) with their started streams, in one listing."""
        ...

    def read_stream(
        self, stream: str, position: StreamPosition, *, limit: int | None = None, fresh: bool = False
    ) -> StreamRead:
        """One non-blocking read of one stream from `position`. `limit`: the relay takes at most
        this many of its lines (a backend may return fewer, saying `truncated`). `fresh`: read the
        stream itself now, not what a follow stream of the server holds (a call that does not wait
        must see every line written before it)."""
        ...


@dataclass
class Batch:
    """One read: the LogBatch for the client, and where to read from next."""

    batch: LogBatch
    resume: Resume


def read_batch(
    source: LogSource,
    refs: Sequence[TaskRef] | None,
    resume: Resume,
    max_lines: int,
    fresh: bool = False,
) -> Batch:
    """The lines after `resume` of the selected tasks (at most `max_lines`, oldest first, each
    stream in order), where to read from next, each selected task with its phase, and `more` when
    lines were left for the next read. Reading again from the returned resume point never repeats
    or skips a line. With every task selected, positions of streams that are gone are forgotten and
    the floor moves up (`compact`)."""
    tasks = source.log_streams(refs)
    floor = ts_nanos(resume.floor) if resume.floor is not None else None
    start: dict[str, StreamPosition] = {}
    for task in tasks:
        for stream in task.streams:
            known = resume.positions.get(stream.name)
            if known is None and stream.ended and _below(stream, floor):
                known = StreamPosition(done=True)  # delivered before the floor passed it
            start[stream.name] = known or StreamPosition()
    readable = [(task, stream) for task in tasks for stream in task.streams if not start[stream.name].done]

    def read(item: tuple[TaskStreams, LogStream]) -> StreamRead:
        return source.read_stream(item[1].name, start[item[1].name], limit=max_lines, fresh=fresh)

    if len(readable) > 1:
        with ThreadPoolExecutor(max_workers=min(READERS, len(readable))) as pool:
            reads = list(pool.map(read, readable))
    else:
        reads = [read(item) for item in readable]

    fresh_lines = {
        stream.name: after_position(result.lines, start[stream.name])
        for (_task, stream), result in zip(readable, reads, strict=True)
    }
    delivered, more = merge_streams(fresh_lines, max_lines)
    more = more or any(result.truncated for result in reads)

    new_positions = {**resume.positions, **start}
    if refs is None:
        new_positions = {name: pos for name, pos in new_positions.items() if name in start}
    for (_task, stream), result in zip(readable, reads, strict=True):
        mine = [line for line in delivered if line.stream == stream.name]
        done = stream.ended and not result.truncated and len(mine) == len(fresh_lines[stream.name])
        new_positions[stream.name] = advance(start[stream.name], mine, done)

    owner = {stream.name: task.status for task in tasks for stream in task.streams}
    lines = [
        LogLine(
            task_id=owner[line.stream].task_id,
            job=owner[line.stream].job,
            stream=line.stream,
            time=line.time,
            text=line.text,
        )
        for line in delivered
    ]
    states = [
        TaskLogState.from_status(task.status, drained=all(new_positions[s.name].done for s in task.streams))
        for task in tasks
    ]
    nxt = compact(tasks, new_positions, resume.floor if refs is not None else _floor(tasks, new_positions, floor))
    return Batch(LogBatch(lines=lines, positions=nxt.positions, tasks=states, more=more), nxt)


FLOOR_MARGIN_SECONDS = 300
"""How far the floor stays behind the newest listed pod: a pod whose creation was stamped before
the floor must have been in the listing that set it (a create takes far less than this to commit)."""


def _below(stream: LogStream, floor: int | None) -> bool:
    return floor is not None and stream.created is not None and ts_nanos(stream.created) < floor


def _floor(tasks: Sequence[TaskStreams], positions: Mapping[str, StreamPosition], old: int | None) -> str | None:
    """The floor after a read of every task: below the creation of every pod whose stream is not
    fully delivered (or not started), and FLOOR_MARGIN_SECONDS below the newest pod; never lower
    than before. None when a stream's creation is unknown (nothing is left out then)."""
    created: list[int] = []
    bounds: list[int] = []
    for task in tasks:
        for stream in task.streams:
            if stream.created is None:
                return format_nanos(old) if old is not None else None
            created.append(ts_nanos(stream.created))
            if not positions[stream.name].done:
                bounds.append(created[-1])
        if task.unstarted_since is not None:
            created.append(ts_nanos(task.unstarted_since))
            bounds.append(created[-1])
    if not created:
        return format_nanos(old) if old is not None else None
    floor = min([max(created) - FLOOR_MARGIN_SECONDS * 1_000_000_000, *bounds])
    if old is not None:
        floor = max(floor, old)
    return format_nanos(floor)


def compact(tasks: Sequence[TaskStreams], positions: Mapping[str, StreamPosition], floor: str | None) -> Resume:
    """`positions` without what a cursor need not carry: a listed stream never read (the default
    position) unless the floor passed it, and a fully delivered one the floor passed."""
    limit = ts_nanos(floor) if floor is not None else None
    listed = {stream.name: stream for task in tasks for stream in task.streams}
    kept: dict[str, StreamPosition] = {}
    for name, pos in positions.items():
        stream = listed.get(name)
        if stream is not None:
            below = _below(stream, limit)
            if (pos.done and below and stream.ended) or (pos == StreamPosition() and not below):
                continue
        kept[name] = pos
    return Resume(kept, floor)


OnBatch = Callable[[list[LogLine], list[TaskLogState]], Awaitable[None]]


@dataclass
class Followed:
    """What one stream_task_logs call gathered."""

    lines: list[LogLine]
    tasks: list[TaskLogState]
    resume: Resume
    more: bool


async def follow(
    read: Callable[[Resume, int], Batch],
    resume: Resume,
    *,
    max_lines: int,
    wait_seconds: float,
    poll_seconds: float,
    linger_seconds: float = 0.0,
    on_batch: OnBatch | None = None,
    on_first: Callable[[LogBatch], None] | None = None,
) -> Followed:
    """Read (`read(resume, max_lines)`, in a worker thread) until `max_lines` are gathered, every
    task is finished, or the wait is over: a long poll. It waits up to `wait_seconds` for the first
    line; once a read brought lines, it gathers only `linger_seconds` longer (reading again at once
    while lines are left, else every `poll_seconds`), so a line waits for the client at most about
    that long. `on_batch` sees every read (also empty ones and failed ones) as it happens;
    `on_first` checks the first successful read.

    A `BackendUnavailable` (the API server unreachable, restarting, or not yet authorizing what it
    allowed a moment ago: the backend says which errors are passing) is retried until the wait is
    over, and raised only when no read succeeded. A task that vanishes between two reads (its Job
    deleted) is reported cancelled and finished."""
    deadline = time.monotonic() + wait_seconds
    collected: list[LogLine] = []
    states: dict[str, TaskLogState] = {}
    more = False
    error: RunnerError | None = None
    reads = 0
    while True:
        batch: LogBatch | None
        try:
            result = await anyio.to_thread.run_sync(read, resume, max_lines - len(collected))
            batch, resume = result.batch, result.resume
        except BackendUnavailable as exc:
            error, batch = exc, None
        if batch is not None:
            if reads == 0 and on_first is not None:
                on_first(batch)
            reads += 1
            more = batch.more
            if batch.lines and not collected:
                deadline = min(deadline, time.monotonic() + linger_seconds)
            collected.extend(batch.lines)
            states = _carry_vanished(states, batch.tasks)
            if on_batch is not None:
                await on_batch(batch.lines, list(states.values()))
            if len(collected) >= max_lines or (states and all(s.finished for s in states.values())):
                break
        elif on_batch is not None:
            await on_batch([], list(states.values()))
        now = time.monotonic()
        if now >= deadline:
            break
        if batch is None or not more:
            await anyio.sleep(min(poll_seconds, deadline - now))
    if error is not None and reads == 0:
        raise error
    return Followed(lines=collected, tasks=list(states.values()), resume=resume, more=more)


def _carry_vanished(previous: Mapping[str, TaskLogState], current: Sequence[TaskLogState]) -> dict[str, TaskLogState]:
    """The tasks of this read by job, plus those of the previous read that are gone: cancelled."""
    states = {task.job: task for task in current}
    for job, state in previous.items():
        if job not in states:
            states[job] = state if state.finished else state.model_copy(update={"phase": "cancelled", "finished": True})
    return states
