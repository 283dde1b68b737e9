"""The limits the runner keeps while OpenCode works: its budget and its idle limit.

`AgentLimits.observe` sees every OpenCode event (the hook of `AgentRun`): it sums the usage
(`runner.usage`), logs the usage so far after every step, and stops the task (`budget_exceeded`)
once the sum passes the budget. A watch thread stops it (`stalled`) when no event came for the idle
limit; every event restarts that clock, so an agent that keeps producing events is never stopped by
it. Until OpenCode's first event the limit is at least STARTUP_SECONDS (OpenCode starting on a busy
node is not a stall; a model that never answers its first request is). Either stop goes the way
of a deadline: OpenCode ends, the work so far is committed (WIP) and
pushed, and the result names the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from mcp_server.runner.output import Output
from mcp_server.runner.result import TaskUsage
from mcp_server.runner.stop import StopControl
from mcp_server.runner.usage import Budget, UsageMeter, describe, usage_line_fields

STARTUP_SECONDS = 60.0


class AgentLimits:
    def __init__(self, out: Output, stop: StopControl, model: str | None, budget: Budget,
                 idle_seconds: float | None) -> None:
        self._out = out
        self._stop = stop
        self._meter = UsageMeter(model)
        self._budget = budget
        self._idle = idle_seconds if idle_seconds and idle_seconds > 0 else None
        self._last = time.monotonic()
        self._seen_event = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def usage(self) -> TaskUsage:
        return self._meter.usage

    def observe(self, event: Mapping[str, Any]) -> None:
        self._last = time.monotonic()
        self._seen_event = True
        if not self._meter.observe(event):
            return
        usage = self._meter.usage
        self._out.log("agent", f"usage so far: {describe(usage)}", **usage_line_fields(usage))
        over = self._budget.passed(usage)
        if over is not None and self._stop.request("budget_exceeded", over):
            self._out.log("agent", f"{over}: stopping the agent, then committing and pushing the work so far",
                          level="warning", limit="budget")

    def __enter__(self) -> AgentLimits:
        self._last = time.monotonic()
        if self._idle is not None:
            self._thread = threading.Thread(target=self._watch, name="idle-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        assert self._idle is not None
        while not self._done.is_set() and not self._stop.requested:
            limit = self._idle if self._seen_event else max(self._idle, STARTUP_SECONDS)
            quiet = time.monotonic() - self._last
            if quiet >= limit:
                detail = f"no OpenCode event for {quiet:.0f}s (idle limit {limit:g}s)"
                if self._stop.request("stalled", detail):
                    self._out.log("agent", f"{detail}: stopping the agent, then committing and pushing "
                                  "the work so far", level="warning", limit="idle")
                return
            self._done.wait(min(limit - quiet, 1.0) + 0.01)
