"""mcp_server.logs.relay with the compact cursor: what a cursor leaves out (streams never read, and
delivered ones below the floor) is never read again, and nothing new is taken for delivered.

The source here lists pods with their creation times the way the kubernetes backend does (from one
LIST) and serves their logs from memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mcp_server.logs import relay
from mcp_server.logs.cursor import decode_cursor, encode_cursor
from mcp_server.logs.positions import Resume, parse_timestamped
from mcp_server.logs.relay import LogStream, StreamRead, TaskStreams
from mcp_server.models import StreamPosition, TaskRef, TaskStatus

MINUTE = 60


def stamp(second: int) -> str:
    return f"2026-01-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


@dataclass
class Pod:
    created: int
    started: bool = True
    ended: bool = False
    lines: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Pods:
    pods: dict[str, Pod] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        tasks = []
        for name, pod in sorted(self.pods.items()):
            if refs is not None and all(r.task_id != name for r in refs):
                continue
            status = TaskStatus(
                task_id=name, environment="dev", namespace="ns", job=name,
                phase="succeeded" if pod.ended else "running",
            )
            streams = (LogStream(name, pod.ended, stamp(pod.created)),) if pod.started else ()
            tasks.append(TaskStreams(status, streams, None if pod.started else stamp(pod.created)))
        return tasks

    def read_stream(
        self, stream: str, position: StreamPosition, *, limit: int | None = None, fresh: bool = False
    ) -> StreamRead:
        self.reads.append(stream)
        body = "".join(f"{stamp(s)} {t}\n" for s, t in self.pods[stream].lines)
        return StreamRead(parse_timestamped(stream, body))


def call(source: Pods, cursor: str | None, refs: Sequence[TaskRef] | None = None) -> tuple[list[str], str]:
    """One read as stream_task_logs does it, through the cursor's encoding."""
    got = relay.read_batch(source, refs, decode_cursor(cursor, "dev"), 10_000)
    return [f"{line.stream}:{line.text}" for line in got.batch.lines], encode_cursor("dev", got.resume)


def test_delivered_streams_below_the_floor_leave_the_cursor_and_are_never_read_again() -> None:
    source = Pods({f"old{i}": Pod(created=i, ended=True, lines=[(i, "done")]) for i in range(3)})
    source.pods["live"] = Pod(created=20 * MINUTE, lines=[(20 * MINUTE, "hello")])
    lines, cursor = call(source, None)
    assert sorted(lines) == ["live:hello", "old0:done", "old1:done", "old2:done"]
    resume = decode_cursor(cursor, "dev")
    assert sorted(resume.positions) == ["live"]  # the old pods are below the floor: delivered
    assert resume.floor == "2026-01-01T00:15:00.000000000Z"  # 5 minutes below the newest pod

    source.reads.clear()
    source.pods["new"] = Pod(created=21 * MINUTE, ended=True, lines=[(21 * MINUTE, "quick")])
    source.pods["live"].lines.append((21 * MINUTE, "again"))
    lines, cursor = call(source, cursor)
    assert sorted(lines) == ["live:again", "new:quick"]
    assert sorted(source.reads) == ["live", "new"]  # the delivered old ones are not read again


def test_a_pod_that_had_not_started_holds_the_floor_below_it() -> None:
    source = Pods({
        "early": Pod(created=0, started=False),
        "done": Pod(created=1, ended=True, lines=[(1, "d")]),
        "newest": Pod(created=60 * MINUTE, ended=True, lines=[(60 * MINUTE, "n")]),
    })
    lines, cursor = call(source, None)
    assert sorted(lines) == ["done:d", "newest:n"]
    assert decode_cursor(cursor, "dev").floor == "2026-01-01T00:00:00.000000000Z"
    # It starts and finishes between two calls: its lines come, though it is old and absent.
    source.pods["early"] = Pod(created=0, ended=True, lines=[(2, "late but here")])
    lines, cursor = call(source, cursor)
    assert lines == ["early:late but here"]
    resume = decode_cursor(cursor, "dev")
    assert sorted(resume.positions) == ["newest"]  # within FLOOR_MARGIN_SECONDS of the newest pod
    assert resume.floor == "2026-01-01T00:55:00.000000000Z"
    assert call(source, cursor)[0] == []


def test_a_stream_not_fully_delivered_keeps_its_position_and_holds_the_floor() -> None:
    source = Pods({f"p{i}": Pod(created=i, ended=True, lines=[(i, "a"), (i, "b")]) for i in range(3)})
    source.pods["last"] = Pod(created=99 * MINUTE, lines=[])
    got = relay.read_batch(source, None, Resume({}), 3)
    resume = got.resume
    assert [line.text for line in got.batch.lines] == ["a", "b", "a"]
    assert resume.positions["p1"].count == 1 and not resume.positions["p1"].done
    assert resume.floor == "2026-01-01T00:00:01.000000000Z"  # below p1, which is not delivered yet
    lines, _ = call(source, encode_cursor("dev", resume))
    assert lines == ["p1:b", "p2:a", "p2:b"]


def test_a_selective_call_keeps_the_floor_and_the_other_positions() -> None:
    source = Pods({"a": Pod(created=0, lines=[(0, "a1")]), "b": Pod(created=30 * MINUTE, lines=[(1800, "b1")])})
    _lines, cursor = call(source, None)
    floor = decode_cursor(cursor, "dev").floor
    source.pods["a"].lines.append((5, "a2"))
    lines, cursor = call(source, cursor, [TaskRef(task_id="a")])
    assert lines == ["a:a2"]
    resume = decode_cursor(cursor, "dev")
    assert resume.floor == floor and sorted(resume.positions) == ["a", "b"]


def test_a_thousand_followed_pods_fit_the_tool_input_and_a_delivered_thousand_cost_nothing() -> None:
    source = Pods({
        f"agentic-t{i:04d}-51e2d150a4-{i * 7919 % 100000:05d}": Pod(created=i, lines=[(i, f"line {i}")])
        for i in range(1000)
    })
    lines, cursor = call(source, None)
    assert len(lines) == 1000 and len(cursor) < 65536 // 2
    for pod in source.pods.values():
        pod.ended = True
    source.pods["latest"] = Pod(created=3 * 3600, lines=[])
    lines, cursor = call(source, cursor)
    assert lines == [] and len(cursor) < 200
    assert call(source, cursor)[0] == []
