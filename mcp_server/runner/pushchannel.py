"""How the runner hands its work to the pusher: a bundle and a request in a push queue.

- `QueueChannel`: a pusher elsewhere serves the queue (the pod's `git-push` sidecar, the local
  backend's supervisor); the runner holds no credential.
- `InProcessChannel`: the runner cloned by itself (one container does clone, agent and push) and runs
  the same `Pusher` in its own process, from a private queue; the agent's checkout config and hooks
  still never take part in the push.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from mcp_server.runner.pusher import Pusher
from mcp_server.runner.pushqueue import AgentQueue, PusherQueue, PushRequest, PushResponse


class QueueChannel:
    def __init__(self, directory: Path) -> None:
        self.queue = AgentQueue(directory)

    def send(self, request: PushRequest, timeout: float, cancel: threading.Event | None = None,
             give_up_at: float | None = None) -> PushResponse | None:
        self.queue.submit(request)
        return self.queue.wait(request.n, timeout, cancel)

    def close(self) -> None:
        pass


class InProcessChannel:
    def __init__(self, pusher: Pusher) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="agentic-push-queue-"))
        self.queue = AgentQueue(self._dir)
        self._pusher = pusher

    def send(self, request: PushRequest, timeout: float, cancel: threading.Event | None = None,
             give_up_at: float | None = None) -> PushResponse | None:
        self.queue.submit(request)
        return self._pusher.handle(PusherQueue(self._dir), request.n, give_up_at)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        shutil.rmtree(self._pusher.home, ignore_errors=True)
