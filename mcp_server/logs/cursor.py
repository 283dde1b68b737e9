"""The cursor handed to stream_task_logs clients: the stream positions of one environment as
URL-safe base64 JSON. A client passes it back unchanged; anything else is refused naming the field."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mcp_server.errors import InvalidInput
from mcp_server.logs.positions import ts_nanos
from mcp_server.models import StreamPosition

CURSOR_VERSION = 1
CURSOR_ALLOWED = "the `cursor` of a previous stream_task_logs result for the same environment, or empty"


def _entry(pos: StreamPosition) -> list[Any]:
    entry: list[Any] = [pos.after, pos.count, int(pos.done)]
    if pos.offset is not None:
        entry.append(pos.offset)
    return entry


def encode_cursor(environment: str, positions: Mapping[str, StreamPosition]) -> str:
    data = {
        "v": CURSOR_VERSION,
        "e": environment,
        "p": {key: _entry(pos) for key, pos in sorted(positions.items())},
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
            str(key): StreamPosition(
                after=value[0],
                count=int(value[1]),
                done=bool(value[2]),
                offset=int(value[3]) if len(value) > 3 else None,
            )
            for key, value in entries.items()
        }
        for pos in positions.values():
            if pos.after is not None:
                ts_nanos(pos.after)
            if pos.offset is not None and pos.offset < 0:
                raise ValueError("negative offset")
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError, AttributeError, ValidationError):
        raise InvalidInput(
            "cursor", "it is not a cursor returned by stream_task_logs", CURSOR_ALLOWED
        ) from None
    if data.get("e") != environment:
        raise InvalidInput(
            "cursor", f"it belongs to environment {data.get('e')!r}, not {environment!r}", CURSOR_ALLOWED
        )
    return positions
