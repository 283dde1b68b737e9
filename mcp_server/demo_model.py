"""The demo's stand-in for an LLM: a scripted OpenAI-compatible chat-completions server on
127.0.0.1 that OpenCode (provider `@ai-sdk/openai-compatible`) talks to. For a task it answers twice:
first a `write` tool call that creates the task's file, then a short summary. Which task a request
belongs to is read from the prompt (`## Task T001`), which turn is due from the number of assistant
messages so far; so it keeps no state and serves many agents at once. Not a model: a script.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROVIDER, MODEL = "demo", "scripted"
_TASK = re.compile(r"## Task (?P<id>[A-Za-z0-9_-]+)")


def _text(body: Mapping[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and message.get("role") in ("system", "user"):
            parts.append(content)
    return "\n".join(parts)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    data = {
        "id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": int(time.time()), "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if finish:
        data["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    return json.dumps(data)


class DemoModel:
    """`files`: task id -> (path, content) the task's agent writes."""

    def __init__(self, files: Mapping[str, tuple[str, str]]) -> None:
        self.files = dict(files)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-model", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def opencode_config(self) -> dict[str, Any]:
        return {
            "provider": {
                PROVIDER: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Demo (scripted)",
                    "options": {"baseURL": self.base_url, "apiKey": "not-a-key"},
                    "models": {MODEL: {"name": "Scripted stand-in", "tool_call": True}},
                }
            }
        }

    def __enter__(self) -> DemoModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def turn(self, body: Mapping[str, Any]) -> list[str]:
        found = _TASK.search(_text(body))
        task = found.group("id") if found else "?"
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        if done == 0 and task in self.files:
            path, content = self.files[task]
            call = {"index": 0, "id": f"call_{task}", "type": "function",
                    "function": {"name": "write", "arguments": json.dumps({"filePath": path, "content": content})}}
            return [_chunk({"role": "assistant", "content": f"Writing {path}."}), _chunk({"tool_calls": [call]}),
                    _chunk({}, "tool_calls")]
        path = self.files.get(task, ("nothing", ""))[0]
        return [_chunk({"role": "assistant", "content": f"{task}: wrote {path} as the task asks."}),
                _chunk({}, "stop")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": MODEL}]}).encode())

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                events = "".join(f"data: {c}\n\n" for c in [*model.turn(body), "[DONE]"])
                self._send(200, "text/event-stream", events.encode())

        return Handler
