"""mcp_server.logs.relay.follow as a long poll: it waits for the first line, then gathers only a
short linger longer (reading again at once while lines are left), and the resume point it returns
is the one of its last read (so nothing gathered is lost or read twice by the next call).

The reads are scripted: each returns the next batch of a list (then empty batches)."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from mcp_server.logs import relay
from mcp_server.logs.positions import Resume
from mcp_server.models import LogBatch, LogLine, StreamPosition, TaskLogState

TASK = TaskLogState(task_id="T1", job="task-t1", phase="running", finished=False)


def lines(*texts: str) -> list[LogLine]:
    return [LogLine(task_id="T1", job="task-t1", stream="pod-a", text=t) for t in texts]


@dataclass
class Script:
    batches: list[tuple[list[LogLine], bool]]
    asked: list[int] = field(default_factory=list)

    def read(self, at: Resume, max_lines: int) -> relay.Batch:
        self.asked.append(max_lines)
        got, more = self.batches.pop(0) if self.batches else ([], False)
        got = got[:max_lines]
        n = len(self.asked)
        resume = Resume({"pod-a": StreamPosition(count=n)})
        return relay.Batch(LogBatch(lines=got, positions=resume.positions, tasks=[TASK], more=more), resume)


def follow(script: Script, *, max_lines: int = 500, wait: float = 50, linger: float = 0.0) -> relay.Followed:
    async def run() -> relay.Followed:
        return await relay.follow(script.read, Resume({}), max_lines=max_lines, wait_seconds=wait,
                                  poll_seconds=0.01, linger_seconds=linger)

    return anyio.run(run)


def test_lines_in_the_first_read_return_without_waiting_for_max_lines() -> None:
    script = Script([(lines("a", "b"), False)])
    got = follow(script)
    assert [line.text for line in got.lines] == ["a", "b"]
    assert len(script.asked) == 1
    assert got.resume.positions["pod-a"].count == 1


def test_empty_reads_wait_for_the_first_line_then_it_returns() -> None:
    script = Script([([], False), ([], False), ([], False), (lines("a"), False)])
    got = follow(script)
    assert [line.text for line in got.lines] == ["a"]
    assert len(script.asked) == 4
    assert got.resume.positions["pod-a"].count == 4  # the last read's resume point


def test_within_the_linger_later_reads_are_gathered_into_the_same_result() -> None:
    script = Script([(lines("a"), False), ([], False), (lines("b"), False), (lines("c"), False)])
    got = follow(script, max_lines=3, linger=50)
    assert [line.text for line in got.lines] == ["a", "b", "c"]
    assert script.asked == [3, 2, 2, 1]  # never more than the room left
    assert got.resume.positions["pod-a"].count == 4


def test_lines_left_over_are_read_again_at_once_up_to_max_lines() -> None:
    script = Script([(lines("a", "b"), True), (lines("c", "d"), True), (lines("e"), False)])
    got = follow(script, max_lines=4, linger=50)
    assert [line.text for line in got.lines] == ["a", "b", "c", "d"]
    assert got.more


def test_no_line_and_no_wait_reads_once() -> None:
    script = Script([])
    got = follow(script, wait=0)
    assert got.lines == [] and len(script.asked) == 1
    assert got.tasks == [TASK]
