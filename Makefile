# Agentic SDLC Agent Runner — developer entry points.
#   make install       .venv with the package (editable) and its test dependencies
#   make test          everything: lint, unit, integration (starts the test control plane), e2e
#   make testenv       start the test control plane; prints the env lines to eval
#   make testenv-down  stop it
#   make bench         benchmarks; they print figures
#   make image         the agent image localhost/agentic-sdlc-agent-runner:dev (podman), smoke-run
#   make opencode      the pinned OpenCode binary for host tests (cached in ~/.cache/agentic-sdlc/)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install deps lint image opencode test test-unit test-integration testenv testenv-build testenv-down bench clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# System packages the tests need (podman for the agent image, sshd/git daemon for git remotes).
deps:
	@scripts/install-deps.sh

lint: install
	$(VENV)/bin/ruff check mcp_server tests bench
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/hadolint --config container/.hadolint.yaml container/Dockerfile

test: install deps lint testenv-build opencode image
	$(PY) -m pytest $(PYTEST_ARGS) tests

# The control plane's pinned binaries, built once and cached (minutes on a fresh machine).
testenv-build:
	@scripts/testenv.sh build

# The pinned OpenCode binary (container/opencode.version) for the host e2e tests, installed once.
opencode: deps
	@scripts/install-opencode.sh >/dev/null

# The agent image, built with podman on a locally made Debian base (cached), then smoke-run.
image: deps
	@scripts/build-image.sh $(if $(AGENTIC_TEST_IMAGE_TAG),localhost/agentic-sdlc-agent-runner:$(AGENTIC_TEST_IMAGE_TAG))

test-unit: install
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit

test-integration: install
	$(PY) -m pytest $(PYTEST_ARGS) tests/integration

testenv:
	@scripts/testenv.sh up

testenv-down:
	@scripts/testenv.sh down

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
