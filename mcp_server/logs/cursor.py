"""The cursor handed to stream_task_logs clients: the stream positions of one environment, compact.

Version 2 (what the server hands out): zlib-compressed JSON, URL-safe base64. Positions carry their
timestamp as nanoseconds relative to the oldest one; a stream never read (the default position) is
left out; a finished, fully delivered stream whose pod was created before the cursor's `floor` is
left out too (`Resume.floor`: the relay counts such a stream as delivered). So a cursor costs about
30 characters per stream that is still being read, and nothing per stream already delivered once
the floor has passed it. Version 1 (plain base64 JSON) is still read, so a cursor of an older server
keeps working. A client passes the cursor back unchanged; anything else is refused naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mcp_server.errors import InvalidInput
from mcp_server.logs.positions import Resume, format_nanos, ts_nanos
from mcp_server.models import StreamPosition

CURSOR_VERSION = 2
CURSOR_ALLOWED = "the `cursor` of a previous stream_task_logs result for the same environment, or empty"
MAX_DECODED_BYTES = 8 * 1024 * 1024
"""A cursor that inflates beyond this is refused (the input limit is 65,536 characters)."""


def encode_cursor(environment: str, resume: Resume) -> str:
    kept = {name: pos for name, pos in resume.positions.items() if pos != StreamPosition()}
    stamps = [ts_nanos(pos.after) for pos in kept.values() if pos.after is not None]
    base = min(stamps) if stamps else 0
    entries = []
    for name, pos in sorted(kept.items()):
        entry: list[Any] = [name, ts_nanos(pos.after) - base if pos.after is not None else None, pos.count]
        if pos.done or pos.offset is not None:
            entry.append(int(pos.done))
        if pos.offset is not None:
            entry.append(pos.offset)
        entries.append(entry)
    data = {
        "e": environment,
        "b": base,
        "f": ts_nanos(resume.floor) if resume.floor is not None else None,
        "p": entries,
    }
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    packed = bytes([CURSOR_VERSION]) + zlib.compress(raw, 9)
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, environment: str) -> Resume:
    if not cursor:
        return Resume({})
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if raw[:1] == bytes([CURSOR_VERSION]):
            data, resume = _decode_v2(raw[1:])
        else:
            data, resume = _decode_v1(raw)
        for pos in resume.positions.values():
            if pos.after is not None:
                ts_nanos(pos.after)
            if pos.offset is not None and pos.offset < 0:
                raise ValueError("negative offset")
            if pos.count < 0:
                raise ValueError("negative count")
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError, AttributeError, ValidationError,
            zlib.error, OverflowError):
        raise InvalidInput(
            "cursor", "it is not a cursor returned by stream_task_logs", CURSOR_ALLOWED
        ) from None
    if data.get("e") != environment:
        raise InvalidInput(
            "cursor", f"it belongs to environment {data.get('e')!r}, not {environment!r}", CURSOR_ALLOWED
        )
    return resume


def _decode_v2(packed: bytes) -> tuple[Mapping[str, Any], Resume]:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(packed, MAX_DECODED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("not a whole cursor, or too big")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a cursor")
    base = _int(data["b"])
    positions: dict[str, StreamPosition] = {}
    for entry in data["p"]:
        if not isinstance(entry, list) or not 3 <= len(entry) <= 5 or not isinstance(entry[0], str):
            raise ValueError("not a position")
        after = format_nanos(base + _int(entry[1])) if entry[1] is not None else None
        positions[entry[0]] = StreamPosition(
            after=after,
            count=_int(entry[2]),
            done=bool(_int(entry[3])) if len(entry) > 3 else False,
            offset=_int(entry[4]) if len(entry) > 4 else None,
        )
    floor = format_nanos(_int(data["f"])) if data.get("f") is not None else None
    return data, Resume(positions, floor)


def _decode_v1(raw: bytes) -> tuple[Mapping[str, Any], Resume]:
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("v") != 1:
        raise ValueError("unknown cursor version")
    positions = {
        str(key): StreamPosition(
            after=value[0],
            count=int(value[1]),
            done=bool(value[2]),
            offset=int(value[3]) if len(value) > 3 else None,
        )
        for key, value in data["p"].items()
    }
    return data, Resume(positions)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a whole number")
    return value
