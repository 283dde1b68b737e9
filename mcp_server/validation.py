"""Pydantic validation errors as `InvalidInput`: the field, what was wrong, what is allowed.

The input value is never repeated (it may be a secret, such as a repo URL with a token)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mcp_server.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def field_name(loc: Sequence[int | str]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "input"


def _problem(error: dict[str, Any]) -> tuple[str, str | None]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "invalid_input":
        return error["msg"], ctx.get("allowed") or None
    if kind == "missing":
        return "it is required", None
    if kind == "extra_forbidden":
        return "it is not a known field", None
    message = error["msg"]
    return message[:1].lower() + message[1:], None


def invalid_input(exc: ValidationError) -> InvalidInput:
    """The first refused field as an InvalidInput; further refused fields are named after it."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    problem, allowed = _problem(first)
    others = sorted({field_name(e["loc"]) for e in errors[1:]} - {field_name(first["loc"])})
    if others:
        problem += f" (also refused: {', '.join(others)})"
    return InvalidInput(field_name(first["loc"]), problem, allowed)


def parse(model: type[M], data: dict[str, Any]) -> M:
    """`model` from `data`, or InvalidInput."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc) from None
