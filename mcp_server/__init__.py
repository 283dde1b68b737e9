"""Agentic SDLC Agent Runner: spec-kit [ASYNC] tasks as autonomous OpenCode agents in Kubernetes pods."""

__version__ = "0.1.0"
