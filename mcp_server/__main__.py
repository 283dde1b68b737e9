"""`python -m mcp_server`: the MCP stdio server (same as `agentic-runner-mcp`)."""

from mcp_server.server import main

if __name__ == "__main__":
    main()
