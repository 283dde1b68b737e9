"""mcp_server.logs.follow: follow streams held between calls, their bounded buffers, and resuming a
broken stream without losing or repeating a line.

The stream here is a log in memory served the way the API server serves `follow=true&timestamps=true`
(from the whole second of `sinceTime`, then every line as it is appended, until the test breaks the
connection); the follower's reader thread is real."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_server.logs import positions
from mcp_server.logs.follow import Follower, Followers, Limits, StreamGone
from mcp_server.models import StreamPosition
from tests.conftest import wait_until


class Log:
    """An append-only log whose follow streams can be broken (as by an API server restart)."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []  # (second, text)
        self.cond = threading.Condition()
        self.generation = 0
        self.gone = False
        self.opened: list[StreamPosition] = []

    def append(self, second: int, *texts: str) -> None:
        with self.cond:
            self.lines += [(second, t) for t in texts]
            self.cond.notify_all()

    def break_streams(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def stamp(self, second: int) -> str:
        return f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"

    def open(self, _name: str, position: StreamPosition) -> Iterator[bytes]:
        if self.gone:
            raise StreamGone(_name)
        self.opened.append(position)
        since = positions.ts_nanos(positions.since_time(position.after)) if position.after else None
        generation = self.generation
        sent = 0
        while True:
            with self.cond:
                while sent == len(self.lines) and generation == self.generation and not self.gone:
                    self.cond.wait(0.05)
                if generation != self.generation or self.gone:
                    raise ConnectionResetError("stream broken")
                batch = self.lines[sent:]
                sent = len(self.lines)
            out = b""
            for second, text in batch:
                stamp = self.stamp(second)
                if since is None or positions.ts_nanos(stamp) >= since:
                    out += f"{stamp} {text}\n".encode()
            if out:  # a chunk may end inside a line: the follower joins them
                yield out[: len(out) // 2]
                yield out[len(out) // 2 :]


def texts(lines: list[positions.RawLine]) -> list[str]:
    return [line.text for line in lines]


def read_all(follower: Follower, position: StreamPosition, expected: int) -> tuple[list[str], StreamPosition]:
    """Read from `position` until `expected` lines came; the position after them."""
    seen: list[str] = []

    def more() -> bool:
        nonlocal position
        served = follower.read(position, 1000)
        assert served is not None
        lines, _more = served
        if lines:
            seen.extend(texts(lines))
            position = positions.advance(position, lines)
        return len(seen) >= expected

    wait_until(more, timeout=10, message=f"{expected} lines")
    return seen, position


def test_a_follower_serves_every_line_after_its_start_exactly_once() -> None:
    log = Log()
    log.append(1, "a", "b")
    log.append(2, "c")
    follower = Follower("p", StreamPosition(), log.open, Limits())
    follower.start()
    try:
        seen, pos = read_all(follower, StreamPosition(), 3)
        assert seen == ["a", "b", "c"]
        log.append(2, "d")
        log.append(3, "e")
        rest, pos = read_all(follower, pos, 2)
        assert rest == ["d", "e"]
        # A second client half way (after "b", two lines at second 1) gets exactly the rest.
        served = follower.read(StreamPosition(after=log.stamp(1), count=2), 10)
        assert served is not None and texts(served[0]) == ["c", "d", "e"] and served[1] is False
        limited = follower.read(StreamPosition(), 2)
        assert limited is not None and texts(limited[0]) == ["a", "b"] and limited[1] is True
        assert follower.last_text == "e"
    finally:
        follower.close()


def test_a_broken_stream_is_opened_again_from_its_last_line_without_loss_or_repeat() -> None:
    log = Log()
    log.append(5, "x1", "x2")
    follower = Follower("p", StreamPosition(), log.open, Limits())
    follower.start()
    try:
        seen, pos = read_all(follower, StreamPosition(), 2)
        log.break_streams()  # the API server restarts
        log.append(5, "x3")  # the same second as the lines already held: they come again, skipped
        log.append(6, "y1")
        more, pos = read_all(follower, pos, 2)
        assert seen + more == ["x1", "x2", "x3", "y1"]
        wait_until(lambda: len(log.opened) >= 2, message="the stream opened again")
        assert log.opened[1] == StreamPosition(after=log.stamp(5), count=2)
        time.sleep(0.3)
        served = follower.read(pos, 100)
        assert served == ([], False)
    finally:
        follower.close()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.booleans()), min_size=1, max_size=8),
    st.integers(0, 3),
)
def test_any_breaks_in_any_places_deliver_every_line_once(
    steps: list[tuple[int, int, bool]], start_after: int
) -> None:
    log = Log()
    expected: list[str] = []
    second = 0
    for step, (gap, count, _break) in enumerate(steps):
        second += gap
        log.append(second, *[f"{step}.{i}" for i in range(count)])
        expected += [f"{step}.{i}" for i in range(count)]
    # The client (and so the follower) starts after some of the lines, as from an older cursor.
    start_after = min(start_after, len(expected))
    all_lines = positions.parse_timestamped(
        "p", "".join(f"{log.stamp(s)} {t}\n" for s, t in log.lines)
    )
    start = positions.advance(StreamPosition(), all_lines[:start_after])
    follower = Follower("p", start, log.open, Limits())
    follower.start()
    try:
        got, pos = read_all(follower, start, len(expected) - start_after)
        for step, (gap, count, broken) in enumerate(steps):
            if broken:
                log.break_streams()
            second += gap
            log.append(second, *[f"late{step}.{i}" for i in range(count)])
            expected += [f"late{step}.{i}" for i in range(count)]
        late, pos = read_all(follower, pos, len(expected) - start_after - len(got))
        assert got + late == expected[start_after:]
    finally:
        follower.close()


def test_the_buffer_is_bounded_and_an_older_position_is_read_directly() -> None:
    log = Log()
    follower = Follower("p", StreamPosition(), log.open, Limits(lines=100))
    follower.start()
    try:
        for s in range(10):
            log.append(s, *[f"{s}.{i}" for i in range(30)])
        wait_until(lambda: follower.last_text == "9.29", message="every line read")
        served = follower.read(StreamPosition(after=log.stamp(9), count=29), 10)
        assert served is not None and texts(served[0]) == ["9.29"]
        assert len(follower._lines) <= 100  # noqa: SLF001 - the bound itself
        assert follower.read(StreamPosition(), 10) is None  # its lines are no longer held
    finally:
        follower.close()


def test_followers_start_on_first_read_cap_their_number_and_keep_last_lines() -> None:
    logs = {name: Log() for name in ("a", "b", "c")}
    followers = Followers(lambda name, pos: logs[name].open(name, pos), max_streams=2)
    try:
        for name, log in logs.items():
            log.append(1, f"{name} first")
        assert followers.read("a", StreamPosition(), 10) is not None
        assert followers.read("b", StreamPosition(), 10) is not None
        assert followers.read("c", StreamPosition(), 10) is None  # beyond the cap: read directly
        wait_until(lambda: followers.last_line("a") == "a first", message="a's line")
        assert followers.following() == ["a", "b"]
        followers.stop("a")
        assert followers.last_line("a") == "a first" and followers.following() == ["b"]
        assert followers.read("c", StreamPosition(), 10) is not None
        followers.keep_only(["c"])
        assert followers.last_line("a") is None and followers.following() == ["c"]
    finally:
        followers.close()


def test_a_stream_that_is_gone_ends_its_follower() -> None:
    log = Log()
    followers = Followers(log.open)
    try:
        log.append(1, "only")
        followers.read("p", StreamPosition(), 10)
        wait_until(lambda: followers.last_line("p") == "only", message="the line")
        log.gone = True
        log.break_streams()
        wait_until(lambda: followers.following() == [], message="the follower to end")
        assert followers.last_line("p") == "only"
    finally:
        followers.close()
