"""mcp_server.logs: positions, cursors, merging, result and step lines, prefixes."""

from __future__ import annotations

import base64
import itertools
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_server.errors import InvalidInput
from mcp_server.logs import cursor as cursor_codec
from mcp_server.logs import positions, prefix, results
from mcp_server.logs import positions as positions_mod
from mcp_server.logs.positions import Resume
from mcp_server.models import LogLine, StreamPosition


def body(*entries: tuple[str, str]) -> str:
    return "".join(f"{ts} {text}\n" for ts, text in entries)


T0 = "2026-01-01T00:00:00.1Z"
T1 = "2026-01-01T00:00:00.123456789Z"
T2 = "2026-01-01T00:00:01Z"


def test_timestamps_compare_by_value_not_by_text() -> None:
    assert positions.ts_nanos(T0) < positions.ts_nanos(T1) < positions.ts_nanos(T2)
    assert positions.ts_nanos("2026-01-01T01:00:00+01:00") == positions.ts_nanos("2026-01-01T00:00:00Z")
    assert positions.since_time(T1) == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        positions.ts_nanos("yesterday")


def test_parse_drops_a_cut_last_line_only_when_truncated() -> None:
    text = body((T0, "a"), (T1, "b")) + f"{T2} partial"
    assert [line.text for line in positions.parse_timestamped("p", text)] == ["a", "b", "partial"]
    assert [line.text for line in positions.parse_timestamped("p", text, truncated=True)] == ["a", "b"]
    assert positions.parse_timestamped("p", "unable to retrieve container logs\n") == []


def test_positions_skip_exactly_what_was_delivered_even_with_equal_timestamps() -> None:
    lines = positions.parse_timestamped("p", body((T0, "a"), (T1, "b1"), (T1, "b2"), (T1, "b3"), (T2, "c")))
    first = lines[:3]
    pos = positions.advance(StreamPosition(), first)
    assert pos == StreamPosition(after=T1, count=2)
    rest = positions.after_position(lines, pos)
    assert [line.text for line in rest] == ["b3", "c"]
    pos2 = positions.advance(pos, rest[:1])
    assert pos2 == StreamPosition(after=T1, count=3)
    assert [line.text for line in positions.after_position(lines, pos2)] == ["c"]
    assert positions.advance(pos2, [], done=True).done


@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20),
)
def test_reading_in_any_chunks_delivers_every_line_once(stamps: list[int], chunks: list[int]) -> None:
    seconds = sorted(stamps)
    text = body(*[(f"2026-01-01T00:00:0{s}Z", f"line{i}") for i, s in enumerate(seconds)])
    lines = positions.parse_timestamped("p", text)
    pos = StreamPosition()
    seen: list[str] = []
    for size in itertools.cycle(chunks):
        new = positions.after_position(lines, pos)[:size]
        if not new:
            break
        seen += [line.text for line in new]
        pos = positions.advance(pos, new)
    assert seen == [f"line{i}" for i in range(len(seconds))]


def test_merge_orders_by_time_and_reports_leftovers() -> None:
    a = positions.parse_timestamped("a", body((T0, "a1"), (T2, "a2")))
    b = positions.parse_timestamped("b", body((T1, "b1")))
    merged, more = positions.merge_streams({"a": a, "b": b}, 2)
    assert [line.text for line in merged] == ["a1", "b1"] and more
    merged, more = positions.merge_streams({"a": a, "b": b}, 10)
    assert [line.text for line in merged] == ["a1", "b1", "a2"] and not more


def _forged(data: object, version: int | None = 2) -> str:
    raw = json.dumps(data).encode()
    packed = raw if version is None else bytes([version]) + zlib.compress(raw)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def test_cursor_round_trip_and_refusals() -> None:
    positions = {"pod-a": StreamPosition(after=T1, count=2), "pod-b": StreamPosition(count=3, done=True)}
    cursor = cursor_codec.encode_cursor("dev", Resume(positions))
    assert cursor_codec.decode_cursor(cursor, "dev") == Resume(positions)
    assert cursor_codec.decode_cursor(None, "dev") == Resume({}) and cursor_codec.decode_cursor("", "dev") == Resume({})
    with pytest.raises(InvalidInput) as refused:
        cursor_codec.decode_cursor("not-a-cursor!", "dev")
    assert str(refused.value) == (
        "invalid cursor: it is not a cursor returned by stream_task_logs; allowed: the `cursor` of a "
        "previous stream_task_logs result for the same environment, or empty."
    )
    with pytest.raises(InvalidInput, match="it belongs to environment 'dev', not 'stg'"):
        cursor_codec.decode_cursor(cursor, "stg")
    forged = [
        _forged({"v": 1, "e": "dev", "p": {"p": ["garbage", 0, 0]}}, version=None),  # a version 1 cursor
        _forged({"e": "dev", "b": 0, "f": None, "p": [["p", "soon", 0]]}),
        _forged({"e": "dev", "b": 0, "f": None, "p": [["p", 0, -1]]}),
        _forged({"e": "dev", "b": 0, "f": None, "p": [["p", 0, 1, True]]}),
        _forged({"e": "dev", "b": 0, "f": "x", "p": []}),
        _forged({"e": "dev", "b": 0, "f": None, "p": [[1, 0, 0]]}),
        _forged(["dev"]),
        base64.urlsafe_b64encode(bytes([2]) + zlib.compress(b" " * (9 * 1024 * 1024))).decode(),  # a zip bomb
    ]
    for bad in forged:
        with pytest.raises(InvalidInput, match="it is not a cursor returned by stream_task_logs"):
            cursor_codec.decode_cursor(bad, "dev")


def test_a_version_1_cursor_of_an_older_server_is_still_read() -> None:
    old = _forged({"v": 1, "e": "dev", "p": {"pod-a": [T1, 2, 0], "pod-b": [None, 3, 1, 120]}}, version=None)
    assert cursor_codec.decode_cursor(old, "dev") == Resume(
        {"pod-a": StreamPosition(after=T1, count=2), "pod-b": StreamPosition(count=3, done=True, offset=120)}
    )


@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63),
        st.tuples(
            st.one_of(st.none(), st.integers(0, 2**62)),
            st.integers(0, 10**6),
            st.booleans(),
            st.one_of(st.none(), st.integers(0, 2**40)),
        ),
        max_size=30,
    ),
    st.one_of(st.none(), st.integers(0, 2**62)),
)
def test_every_position_survives_the_compact_encoding(
    entries: dict[str, tuple[int | None, int, bool, int | None]], floor: int | None
) -> None:
    positions = {
        name: StreamPosition(
            after=positions_mod.format_nanos(after) if after is not None else None,
            count=count,
            done=done,
            offset=offset,
        )
        for name, (after, count, done, offset) in entries.items()
    }
    resume = Resume(positions, positions_mod.format_nanos(floor) if floor is not None else None)
    decoded = cursor_codec.decode_cursor(cursor_codec.encode_cursor("dev", resume), "dev")
    # A stream never read is left out: absent means the start.
    assert decoded == Resume({k: v for k, v in positions.items() if v != StreamPosition()}, resume.floor)


def test_runner_steps_and_results() -> None:
    assert results.runner_step('{"ts": "x", "level": "info", "phase": "clone", "msg": "cloning"}') == "clone"
    assert results.runner_step('{"type": "text"}') is None and results.runner_step("plain") is None
    doc = {"task_id": "T1", "branch": "agentic/f/T1", "base": "f"}
    result = results.parse_result(json.dumps({**doc, "status": "succeeded", "commits": 2, "from_a_newer_runner": 1}))
    assert result is not None and result.status == "succeeded" and result.commits == 2
    assert results.parse_result("not json") is None and results.parse_result("[1]") is None
    assert results.parse_result(json.dumps({**doc, "status": "weird"})) is None
    assert results.parse_result('{"status": "failed"}') is None  # not the contract's document
    lines = ["x", "AGENTIC_RESULT: " + json.dumps({**doc, "status": "failed", "error": "boom"}), "y"]
    found = results.result_from_lines(lines)
    assert found is not None and found.error == "boom"


def test_prefixes_are_stable_per_task_and_plain_without_colour() -> None:
    plain = prefix.Prefixer(color=False)
    line = LogLine(task_id="T1", job="j", stream="p", time=None, text="hello")
    assert plain.format(line) == "[T1] hello"
    coloured = prefix.Prefixer(color=True)
    first = coloured.prefix("T1")
    assert coloured.prefix("T2") != first and coloured.prefix("T1") == first
    assert first.startswith("\x1b[") and "[T1]" in first
