"""The result a cancelled task's runner reports while it stops (the kubernetes backend's cancel).

Deleting a Job makes the kubelet send its pod's containers SIGTERM; the runner then commits and
pushes the work so far and prints its result (`AGENTIC_RESULT: {...}`, docs/contracts.md) within the
pod's grace period, and the pod goes away with its log. So cancel opens a follow stream of the
`agent` container's log just before it deletes the Job and reads it until the container ends, for
at most the pod's terminationGracePeriodSeconds plus a margin, and stops early once the pod is gone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3

from mcp_server import naming
from mcp_server.errors import RunnerError
from mcp_server.kube import Access, BadRequest, KubeClient, NotFound
from mcp_server.logs.results import result_from_lines
from mcp_server.models import TaskResult

MARGIN_SECONDS = 10.0
DEFAULT_GRACE_SECONDS = 30.0
TAIL_LINES = 50  # the result line is the last one; a few before it cover a runner that just ended
POLL_SECONDS = 0.5
AFTER_GONE_SECONDS = 1.0

Obj = dict[str, Any]


class FinalResult:
    """Follows one pod's `agent` log from before the cancel to its end; `wait()` gives the result."""

    def __init__(self, kube: KubeClient, namespace: str, pod: Obj) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = str(pod["metadata"]["name"])
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        self._bound = float(grace if grace is not None else DEFAULT_GRACE_SECONDS) + MARGIN_SECONDS
        self._lines: list[str] = []
        self._ended = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self._namespace}/pods/{self._name}"

    def start(self) -> None:
        """Open the stream and read it, in a thread of its own: some servers send the response
        headers only with the first line, and the tail of 50 lines covers a stream that opens a
        moment after the delete (the pod runs through its grace period)."""
        threading.Thread(target=self._read, name=f"final-result-{self._name}", daemon=True).start()

    def _read(self) -> None:
        pending = b""
        try:
            self._response = self._kube.stream(
                f"{self._path}/log",
                Access("get", "pods/log", self._namespace),
                query={"container": naming.AGENT_CONTAINER, "follow": "true", "tailLines": TAIL_LINES},
                timeout=(5.0, self._bound),
            )
            for chunk in self._response.stream(4096, decode_content=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                self._lines.extend(line.decode("utf-8", errors="replace") for line in complete)
        except (NotFound, BadRequest, RunnerError, urllib3.exceptions.HTTPError, OSError, ValueError):
            pass  # nothing to follow, closed by wait(), or the stream broke: what was read is what there is
        finally:
            if pending:
                self._lines.append(pending.decode("utf-8", errors="replace"))
            self._ended.set()

    def wait(self, pod_gone: Callable[[str], bool]) -> TaskResult | None:
        """Until the container's log ends, the pod is gone or the bound passed; then the result."""
        deadline = time.monotonic() + self._bound
        while not self._ended.wait(POLL_SECONDS):
            if time.monotonic() >= deadline:
                break
            if pod_gone(self._name):
                self._ended.wait(AFTER_GONE_SECONDS)
                break
        self.close()
        self._ended.wait(AFTER_GONE_SECONDS)
        return result_from_lines(list(self._lines))

    def close(self) -> None:
        """End the stream (its reader thread ends with it)."""
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.shutdown()
            with contextlib.suppress(Exception):
                self._response.close()
