"""The start-up anchor: the smallest stdio server the `mcp` SDK makes (one tool), started the way
`agentic-runner-mcp` is (this interpreter, a module imported, `run("stdio")`)."""

from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    server.run("stdio")
