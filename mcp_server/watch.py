"""`agentic-runner list --watch`: one table of every agent, redrawn in place every few seconds
(phase, step, age, attempt, usage so far, last line, the totals) until every task has ended or the
user quits (q, or Ctrl-C).

On a terminal the table is redrawn over itself (cursor home, each line cleared to its end, the rest
of the screen cleared), lines are cut to the terminal's width so nothing wraps, and phases are
coloured (not with NO_COLOR). Anywhere else there are no escape sequences: each refresh is printed
as a plain table followed by an empty line. `--output json` prints each refresh as one line of the
same JSON document `list --output json` (and the list_agents tool) gives.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TextIO

from mcp_server import agent_table
from mcp_server.models import AgentList

EXIT_OK, EXIT_FAILED = 0, 1
FAILED = ("failed", "timed_out", "cancelled", "budget_exceeded", "stalled")
COLORS = {
    "pending": "\x1b[2m",
    "running": "\x1b[36m",
    "succeeded": "\x1b[32m",
    "failed": "\x1b[31m",
    "timed_out": "\x1b[31m",
    "budget_exceeded": "\x1b[35m",
    "stalled": "\x1b[33m",
    "cancelled": "\x1b[2m",
}
RESET = "\x1b[0m"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def frame(result: AgentList, width: int | None, color: bool, now: datetime) -> list[str]:
    """The lines of one refresh."""
    counts = ", ".join(f"{phase} {n}" for phase, n in result.counts.items() if n) or "no tasks"
    lines = [f"agentic-runner: {', '.join(result.environments)} at {now:%H:%M:%S} UTC: {counts} (q quits)"]
    lines += [f"warning: {error}" for error in result.errors]
    if result.agents:
        rows = [agent_table.HEADER, *(agent_table.row(a, last_width=200) for a in result.agents)]
        table = agent_table.render(rows)
        phase_at = table[0].index("PHASE")
        for i, line in enumerate(table):
            line = line[:width] if width else line
            if color and i > 0:
                phase = result.agents[i - 1].phase
                end = phase_at + len(phase)
                if len(line) >= end:
                    line = line[:phase_at] + COLORS.get(phase, "") + phase + RESET + line[end:]
            lines.append(line)
    lines += [(line[:width] if width else line) for line in agent_table.totals_lines(result)]
    return lines


def ended(result: AgentList) -> bool:
    return bool(result.agents) and all(a.phase not in ("pending", "running") for a in result.agents)


@contextlib.contextmanager
def _keys(stream: TextIO) -> Iterator[Callable[[float], str]]:
    """A function that waits up to its argument for a key press and returns it ("" for none);
    on a terminal in cbreak mode, restored on the way out."""
    try:
        fd = stream.fileno()
        tty_in = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        tty_in = False
    if not tty_in:
        yield lambda seconds: (time.sleep(seconds), "")[1]
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(seconds: float) -> str:
        ready, _w, _x = select.select([fd], [], [], seconds)
        return os.read(fd, 32).decode(errors="ignore") if ready else ""

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def watch(
    fetch: Callable[[], AgentList],
    output: str,
    interval: float,
    out: TextIO,
    keys_from: TextIO | None = None,
) -> int:
    """Refresh until every task has ended (exit 1 if one of them did not succeed) or the user quits."""
    terminal = output == "table" and out.isatty()
    color = terminal and not os.environ.get("NO_COLOR")
    interval = max(0.2, interval)
    if terminal:
        out.write(HIDE_CURSOR)
    try:
        with _keys(keys_from or sys.stdin) as key:
            while True:
                result = fetch()
                _draw(result, output, terminal, color, out)
                if ended(result):
                    return EXIT_FAILED if any(a.phase in FAILED for a in result.agents) else EXIT_OK
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    if "q" in key(left).lower():
                        return EXIT_OK
    finally:
        if terminal:
            out.write(SHOW_CURSOR)
            out.flush()


def _draw(result: AgentList, output: str, terminal: bool, color: bool, out: TextIO) -> None:
    if output == "json":
        out.write(result.model_dump_json() + "\n")
    elif terminal:
        size = shutil.get_terminal_size()
        lines = frame(result, size.columns, color, datetime.now(UTC))[: max(1, size.lines - 1)]
        out.write(HOME + "".join(line + CLEAR_LINE + "\n" for line in lines) + CLEAR_BELOW)
    else:
        out.write("\n".join(frame(result, None, False, datetime.now(UTC))) + "\n\n")
    out.flush()
