# Agentic SDLC Agent Runner — developer entry points.
#   make install       .venv with the package (editable) and its test dependencies
#   make dist          the sdist and the wheel (python -m build) and the chart packages, into dist/
#   make wheelhouse    the package's dependencies as wheels (.venv/wheelhouse) for the offline install tests
#   make registry      the pinned OCI registry (.venv/bin/registry) for the chart push test
#   make runner-requirements  recompile container/requirements-runner.txt (pinned, hashed) from its .in
#   make test          everything: lint, unit, integration (starts the test control plane), e2e
#   make testenv       start the test control plane; prints the env lines to eval
#   make testenv-down  stop it
#   make bench         issue 12's figures beside their anchors (bench/results.json); BENCH_ARGS=--help for sizes
#   make image         the agent image localhost/agentic-sdlc-agent-runner:dev (podman), smoke-run
#   make opencode      the pinned OpenCode binary for host tests (cached in ~/.cache/agentic-sdlc/)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
WHEELHOUSE := $(VENV)/wheelhouse
PYTEST_ARGS ?=
BENCH_ARGS ?=
HELM ?= helm
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help install deps lint lint-workflows image opencode test test-unit test-integration testenv testenv-build \
	testenv-down bench clean dist wheelhouse runner-requirements registry

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml mcp_server/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Wheels of the build backend and of every dependency, so tests/e2e/test_package.py builds and installs
# the package with no index (the package's own wheel is left out: the test builds it).
$(WHEELHOUSE)/.complete: $(STAMP)
	rm -rf $(WHEELHOUSE)
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) 'setuptools>=77' pip .
	rm -rf $(WHEELHOUSE)/agentic_sdlc_agent_runner-* build
	touch $@

wheelhouse: $(WHEELHOUSE)/.complete

# The release artifacts as the pipeline makes them: sdist, wheel and the chart packages (needs helm).
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	HELM=$(HELM) scripts/package-charts.sh dist/charts

runner-requirements: install
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	  --custom-compile-command "make runner-requirements" \
	  container/requirements-runner.in -o container/requirements-runner.txt

# System packages the tests need (podman for the agent image, sshd/git daemon for git remotes).
deps:
	@scripts/install-deps.sh

lint: install lint-workflows
	$(VENV)/bin/ruff check mcp_server tests bench
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/hadolint --config container/.hadolint.yaml container/Dockerfile

# The GitHub workflows: actionlint (syntax, expressions, shellcheck of run: scripts) and zizmor
# (security: injection, permissions, pinning, credentials). WORKFLOWS= lints other files.
lint-workflows: install
	@scripts/install-go-tool.sh actionlint $(VENV)/bin >/dev/null
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/actionlint $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --no-progress $(WORKFLOWS)

test: install deps lint testenv-build opencode image wheelhouse registry
	$(PY) -m pytest $(PYTEST_ARGS) tests

# The OCI registry the chart push test runs on 127.0.0.1 (built once from its Go module, cached).
registry: install
	@scripts/install-go-tool.sh registry $(VENV)/bin >/dev/null

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

bench: install testenv-build
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
