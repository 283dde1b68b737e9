"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 that drives the real OpenCode.

OpenCode (provider `@ai-sdk/openai-compatible`) POSTs the whole conversation to
`/v1/chat/completions` with `stream: true`. The server answers with server-sent events of one
scripted turn. Which turn is due is read from the conversation itself: the number of assistant
messages in it. So a script is stateless and many sessions can share one server; a script is
picked per request by `select(request) -> Script` (e.g. by the task id in the prompt).

A turn is a `Turn`: text and/or tool calls (OpenCode's own tools: read, edit, write, bash, ...),
or `hold=True` to stream a first chunk and then keep the connection open until the server stops
(for tests of SIGTERM mid-task), or `http_error` to fail the request. Past the end of the script
the server answers with a short final text, so OpenCode always ends.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "scripted-1"
PROVIDER_ID = "scripted"


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """One answer of the model. `hold`: stream the start, then keep the connection open until the
    server closes. `http_error`: answer with this HTTP status and an OpenAI-style error (`text` is
    its message) instead of a completion. `gate`: answer only once this event is set (a test
    holds several agents at the same point, looks, then lets them go on)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    hold: bool = False
    http_error: int | None = None
    gate: threading.Event | None = field(default=None, compare=False)
    usage: Usage | None = None
    """The token counts the answer reports (default: DEFAULT_USAGE)."""
    delay: float = 0.0
    """Seconds to wait before answering (a model that stalls, or a slow one)."""


@dataclass(frozen=True)
class Usage:
    """What an answer reports in OpenAI's `usage`: prompt tokens (of which `cached` were read from the
    cache), completion tokens (of which `reasoning` were reasoning)."""

    prompt: int = 10
    completion: int = 5
    cached: int = 0
    reasoning: int = 0

    def openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
        }


DEFAULT_USAGE = Usage()


@dataclass(frozen=True)
class Prices:
    """A model's configured prices in OpenCode's config (`cost`: USD per million tokens)."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def opencode(self) -> dict[str, float]:
        return {"input": self.input, "output": self.output, "cache_read": self.cache_read,
                "cache_write": self.cache_write}


def read(path: str) -> ToolCall:
    return ToolCall("read", {"filePath": path})


def edit(path: str, old: str, new: str) -> ToolCall:
    return ToolCall("edit", {"filePath": path, "oldString": old, "newString": new})


def write(path: str, content: str) -> ToolCall:
    return ToolCall("write", {"filePath": path, "content": content})


def bash(command: str, description: str = "run a command") -> ToolCall:
    return ToolCall("bash", {"command": command, "description": description})


Script = list[Turn]


@dataclass
class Recorded:
    """What the server saw: every request body, in order (for assertions on prompts)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    """The Authorization header of each request (what the LLM proxy put there)."""
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, body: dict[str, Any], authorization: str | None = None) -> None:
        with self.cond:
            self.requests.append(body)
            self.authorizations.append(authorization)
            self.cond.notify_all()

    def all(self) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 180) -> None:
        """Block until `count` requests have arrived (e.g. the agent reached a `hold` turn)."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"the model got {len(self.requests)} requests, not {count}, in {timeout}s")


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def conversation_text(body: dict[str, Any]) -> str:
    """All system and user text of a request: where a selector looks for a task id."""
    return "\n".join(_text_of(m) for m in body.get("messages", []) if m.get("role") in ("system", "user"))


def turn_index(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


class ScriptedModel:
    """The server. Use as a context manager; `base_url` is what OpenCode's provider gets. `host`: the
    address it listens on (127.0.0.1; the real node's gateway address for pods there)."""

    def __init__(self, select: Callable[[dict[str, Any]], Script] | Script, host: str = "127.0.0.1",
                 prices: Prices | None = None) -> None:
        self._select = select if callable(select) else (lambda _body, s=select: s)
        self.prices = prices
        self.recorded = Recorded()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def opencode_config(self, api_key_env: str = "SCRIPTED_API_KEY") -> dict[str, Any]:
        """The OpenCode config fragment declaring this server as provider `scripted`."""
        return {
            "provider": {
                PROVIDER_ID: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Scripted",
                    "options": {"baseURL": self.base_url, "apiKey": f"{{env:{api_key_env}}}"},
                    "models": {MODEL_ID: {
                        "name": "Scripted", "tool_call": True,
                        **({"cost": self.prices.opencode()} if self.prices is not None else {}),
                    }},
                }
            }
        }

    @property
    def model(self) -> str:
        return f"{PROVIDER_ID}/{MODEL_ID}"

    def __enter__(self) -> ScriptedModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._json({"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json({"error": f"unexpected path {self.path}"}, 404)
                    return
                model.recorded.add(body, self.headers.get("Authorization"))
                script = model._select(body)
                index = turn_index(body)
                turn = script[index] if index < len(script) else Turn(text="Done.")
                while turn.gate is not None and not turn.gate.wait(0.2):
                    if model._stop.is_set():
                        return
                if turn.delay and model._stop.wait(turn.delay):
                    return
                if turn.http_error is not None:
                    error = {"message": turn.text, "type": "invalid_request_error", "code": "scripted_error"}
                    self._json({"error": error}, turn.http_error)
                elif body.get("stream"):
                    self._stream(turn)
                else:
                    self._json(_completion(turn))

            def _json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _event(self, payload: dict[str, Any] | str) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                chunk = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()

            def _stream(self, turn: Turn) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in _chunks(turn):
                        self._event(chunk)
                    if turn.hold:
                        while not model._stop.wait(0.2):
                            pass
                        return
                    self._event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _base(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _chunks(turn: Turn) -> list[dict[str, Any]]:
    chunks = [_base({"role": "assistant", "content": ""})]
    if turn.text:
        chunks.append(_base({"content": turn.text}))
    for i, call in enumerate(turn.tool_calls):
        chunks.append(
            _base(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "function",
                            "function": {"name": call.name, "arguments": json.dumps(call.args)},
                        }
                    ]
                }
            )
        )
    if turn.hold:
        return chunks
    finish = "tool_calls" if turn.tool_calls else "stop"
    last = _base({}, finish)
    last["usage"] = (turn.usage or DEFAULT_USAGE).openai()
    chunks.append(last)
    return chunks


def _completion(turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.args)},
            }
            for c in turn.tool_calls
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if turn.tool_calls else "stop"}],
        "usage": (turn.usage or DEFAULT_USAGE).openai(),
    }
