module agentic-sdlc/testenv/pause

go 1.26.0
