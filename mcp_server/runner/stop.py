"""Stopping a task: SIGTERM/SIGINT, or the task's own deadline.

Kubernetes sends SIGTERM both when the Job's activeDeadlineSeconds has passed and when the Job is
deleted (cancel), so the signal alone does not say which. The runner tells them apart by the
deadline in the task context: a signal at or after `deadline - tolerance` is `timed_out`, an
earlier one (or any signal when there is no deadline) is `cancelled`. The tolerance
(AGENTIC_DEADLINE_TOLERANCE_SECONDS, default 15) absorbs clock skew between the server that
computed the deadline and the node. Independently, the runner stops itself at the deadline
(`timed_out`), so a task without an external enforcer (the local backend) ends on time too.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

StopReason = Literal["timed_out", "cancelled", "budget_exceeded", "stalled"]


def classify_signal(now: datetime, deadline: datetime | None, tolerance_seconds: float) -> StopReason:
    if deadline is not None and (deadline - now).total_seconds() <= tolerance_seconds:
        return "timed_out"
    return "cancelled"


class StopControl:
    """Holds why the task stops (first reason wins) and whom to tell. Callbacks must be safe to
    call from a signal handler (set flags, send signals; no blocking locks)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: StopReason | None = None
        self.detail = ""
        self.at_monotonic: float | None = None
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.event.is_set():
            callback()

    def request(self, reason: StopReason, detail: str) -> bool:
        """Stop; returns False if a stop was already requested (the first reason stays)."""
        if self.event.is_set():
            return False
        self.reason, self.detail, self.at_monotonic = reason, detail, time.monotonic()
        self.event.set()
        for callback in list(self._callbacks):
            callback()
        return True

    @property
    def requested(self) -> bool:
        return self.event.is_set()


class StopTriggers:
    """Installs the signal handlers and the deadline timer; `close()` removes them."""

    def __init__(self, stop: StopControl, deadline: datetime | None, tolerance_seconds: float,
                 notify: Callable[[str], None]) -> None:
        self._stop = stop
        self._deadline = deadline
        self._tolerance = tolerance_seconds
        self._notify = notify
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        if self._deadline is not None:
            delay = max(0.0, (self._deadline - datetime.now(UTC)).total_seconds())
            self._timer = threading.Timer(delay, self._on_deadline)
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        reason = classify_signal(datetime.now(UTC), self._deadline, self._tolerance)
        if signum == signal.SIGINT:
            reason = "cancelled"
        detail = f"{name} received" + (" at the task's deadline" if reason == "timed_out" else "")
        if self._stop.request(reason, detail):
            self._notify(f"{detail}: stopping the agent, then committing and pushing the work so far")
        else:
            self._notify(f"{name} received again: already stopping")

    def _on_deadline(self) -> None:
        if self._stop.request("timed_out", "the task's deadline passed"):
            self._notify("the task's deadline passed: stopping the agent, then committing and pushing "
                         "the work so far")
