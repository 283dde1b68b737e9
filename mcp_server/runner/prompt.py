"""The prompt handed to OpenCode, rendered with jinja2 from `mcp_server/prompts/task.md.j2`."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import jinja2

from mcp_server.runner.context import RunnerContext

TEMPLATE = "task.md.j2"


def _fenced(text: str) -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def _environment() -> jinja2.Environment:
    source = (resources.files("mcp_server") / "prompts" / TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.DictLoader({TEMPLATE: source}),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["fenced"] = _fenced
    return env


def render_prompt(ctx: RunnerContext, checkout: Path) -> str:
    return _environment().get_template(TEMPLATE).render(
        task_id=ctx.task_id,
        description=ctx.description.strip(),
        checkout=str(checkout),
        task_branch=ctx.task_branch,
        base_branch=ctx.base_branch,
        feature_dir=ctx.feature_dir,
        context_files=ctx.context_files,
    )
