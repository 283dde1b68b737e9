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
from mcp_server.logs.positions import RawLine, advance, after_position, merge_streams
from mcp_server.models import LogBatch, LogLine, StreamPosition, TaskLogState, TaskRef, TaskStatus

READERS = 8
"""Streams read at once (one request each)."""


@dataclass(frozen=True)
class LogStream:
    """One stream of a task that has output: a pod's `agent` container, a local run's log file.
    `ended`: it had ended when it was listed, so a complete read of it from then on is final."""

    name: str
    ended: bool


@dataclass(frozen=True)
class TaskStreams:
    """A task and those of its streams that have started."""

    status: TaskStatus
    streams: tuple[LogStream, ...]


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

    def read_stream(self, stream: str, position: StreamPosition) -> StreamRead:
        """One non-blocking read of one stream from `position`."""
        ...


def read_batch(
    source: LogSource, refs: Sequence[TaskRef] | None, positions: Mapping[str, StreamPosition], max_lines: int
) -> LogBatch:
    """The lines after `positions` of the selected tasks (at most `max_lines`, oldest first, each
    stream in order), the positions after them, each selected task with its phase, and `more` when
    lines were left for the next read. Reading again from the returned positions never repeats or
    skips a line. With every task selected, positions of streams that are gone are forgotten."""
    tasks = source.log_streams(refs)
    readable = [
        (task, stream)
        for task in tasks
        for stream in task.streams
        if not positions.get(stream.name, StreamPosition()).done
    ]

    def read(item: tuple[TaskStreams, LogStream]) -> StreamRead:
        return source.read_stream(item[1].name, positions.get(item[1].name, StreamPosition()))

    if len(readable) > 1:
        with ThreadPoolExecutor(max_workers=min(READERS, len(readable))) as pool:
            reads = list(pool.map(read, readable))
    else:
        reads = [read(item) for item in readable]

    fresh = {
        stream.name: after_position(result.lines, positions.get(stream.name, StreamPosition()))
        for (_task, stream), result in zip(readable, reads, strict=True)
    }
    delivered, more = merge_streams(fresh, max_lines)
    more = more or any(result.truncated for result in reads)

    new_positions = dict(positions)
    if refs is None:
        known = {stream.name for task in tasks for stream in task.streams}
        new_positions = {name: pos for name, pos in new_positions.items() if name in known}
    for (_task, stream), result in zip(readable, reads, strict=True):
        mine = [line for line in delivered if line.stream == stream.name]
        done = stream.ended and not result.truncated and len(mine) == len(fresh[stream.name])
        new_positions[stream.name] = advance(positions.get(stream.name, StreamPosition()), mine, done)

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
        TaskLogState.from_status(
            task.status,
            drained=all(new_positions.get(s.name, StreamPosition()).done for s in task.streams),
        )
        for task in tasks
    ]
    return LogBatch(lines=lines, positions=new_positions, tasks=states, more=more)


OnBatch = Callable[[list[LogLine], list[TaskLogState]], Awaitable[None]]


@dataclass
class Followed:
    """What one stream_task_logs call gathered."""

    lines: list[LogLine]
    tasks: list[TaskLogState]
    positions: dict[str, StreamPosition]
    more: bool


async def follow(
    read: Callable[[dict[str, StreamPosition], int], LogBatch],
    positions: dict[str, StreamPosition],
    *,
    max_lines: int,
    wait_seconds: float,
    poll_seconds: float,
    on_batch: OnBatch | None = None,
    on_first: Callable[[LogBatch], None] | None = None,
) -> Followed:
    """Read (`read(positions, max_lines)`, in a worker thread) until lines arrive, `max_lines` are
    gathered, every task is finished, or `wait_seconds` are over. `on_batch` sees every read (also
    empty ones and failed ones) as it happens; `on_first` checks the first successful read.

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
            batch = await anyio.to_thread.run_sync(read, positions, max_lines - len(collected))
        except BackendUnavailable as exc:
            error, batch = exc, None
        if batch is not None:
            if reads == 0 and on_first is not None:
                on_first(batch)
            reads += 1
            positions, more = batch.positions, batch.more
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
    return Followed(lines=collected, tasks=list(states.values()), positions=positions, more=more)


def _carry_vanished(previous: Mapping[str, TaskLogState], current: Sequence[TaskLogState]) -> dict[str, TaskLogState]:
    """The tasks of this read by job, plus those of the previous read that are gone: cancelled."""
    states = {task.job: task for task in current}
    for job, state in previous.items():
        if job not in states:
            states[job] = state if state.finished else state.model_copy(update={"phase": "cancelled", "finished": True})
    return states
