"""Start-up of the MCP server: until the first tool call it imports only the SDK and the request and
result models (issue 12: start-up to `tools/list` within 1.15x a bare SDK server)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("kubernetes", "urllib3", "yaml", "jinja2", "mcp_server.service", "mcp_server.config",
         "mcp_server.backends", "mcp_server.logs")

PROBE = """
import json, sys, anyio
from mcp_server import server
srv = server.build_server(server.prepared_service())
tools = anyio.run(srv.list_tools)
print(json.dumps({"tools": len(tools), "modules": sorted(sys.modules)}))
"""


def test_tools_list_imports_nothing_heavy() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    probe = json.loads(out)
    assert probe["tools"] == 9  # the tools of tests/support/snapshots/mcp_tools.json, retry_task included
    loaded = [m for m in probe["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []


def test_a_configuration_error_is_reported_by_the_first_call_not_at_start_up() -> None:
    from mcp_server.errors import ConfigError
    from mcp_server.server import prepared_service

    calls = []

    def build() -> object:
        calls.append(1)
        raise ConfigError("no such environment")

    get = prepared_service(build)  # type: ignore[arg-type]
    assert calls == []
    for _ in range(2):
        try:
            get()
        except ConfigError as exc:
            assert str(exc) == "no such environment"
        else:
            raise AssertionError("the configuration error was not reported")
    assert calls == [1]  # built (and refused) once
