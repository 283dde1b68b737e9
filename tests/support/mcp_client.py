"""Drive the real MCP server (`agentic-runner-mcp`) over stdio with the SDK's own client."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import InitializeResult

SERVER_COMMAND = str(Path(sys.executable).parent / "agentic-runner-mcp")


@dataclass
class ToolResult:
    is_error: bool
    text: str
    data: dict[str, Any] | None

    @property
    def error(self) -> str:
        assert self.is_error, f"expected an error, got: {self.text}"
        return self.text

    @property
    def ok(self) -> dict[str, Any]:
        assert not self.is_error, f"tool failed: {self.text}"
        assert self.data is not None
        return self.data


@dataclass
class Progress:
    """Progress notifications received during one call."""

    events: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [m for _, _, m in self.events if m]


class McpClient:
    def __init__(self, session: ClientSession, initialized: InitializeResult) -> None:
        self.session = session
        self.initialized = initialized  # what the server answered to `initialize` (serverInfo, ...)

    async def tools(self) -> list[dict[str, Any]]:
        result = await self.session.list_tools()
        return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools]

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None,
                   progress: Progress | None = None, timeout: float = 120) -> ToolResult:
        result = await self.session.call_tool(name, dict(arguments or {}), read_timeout_seconds=timeout,
                                              progress_callback=progress)
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        data = result.structured_content
        if data is None and not result.is_error and text.startswith("{"):
            data = json.loads(text)
        return ToolResult(bool(result.is_error), text, data)


@asynccontextmanager
async def connect(env: Mapping[str, str], cwd: Path | None = None,
                  errlog: Any = None, command: str = SERVER_COMMAND,
                  args: Sequence[str] = ()) -> AsyncIterator[McpClient]:
    """Start `agentic-runner-mcp` (this checkout's, or `command` with `args`) with exactly `env` (plus
    the SDK's default PATH/HOME) and connect."""
    params = StdioServerParameters(command=command, args=list(args), env=dict(env), cwd=cwd)
    async with stdio_client(params, errlog=errlog or sys.stderr) as (read, write), \
            ClientSession(read, write) as session:
        initialized = await session.initialize()
        yield McpClient(session, initialized)
