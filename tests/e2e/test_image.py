"""The agent image itself: what it holds, its entrypoint, labels and size.

The image running as the cluster runs it (the chart's whole pod: git-clone, git-push, llm-proxy and the
agent, on a real kubelet, from the Job the server made) is tests/e2e/test_real_node.py; a podman run of
the agent container alone no longer works since the pushes go through the git-push sidecar."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from packaging.utils import canonicalize_name

from mcp_server import __version__
from tests.support.release import pinned_runner_requirements
from tests.support.runner_harness import REPO_ROOT

pytestmark = pytest.mark.e2e

CONTAINERS_CONF = REPO_ROOT / "container" / "containers.conf"
# The image-size goal (issue 12), in bytes as `podman image inspect` reports them; bench/ prints the figure.
IMAGE_SIZE_LIMIT = 400_000_000


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=300)


def in_image(image: str, entrypoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command in the image as the pod does: user 1000, read-only root, no network."""
    return podman("run", "--rm", "--read-only", "--network", "none", "--user", "1000:1000", "--tmpfs", "/tmp",
                  "--entrypoint", entrypoint, image, *args)


def test_the_image_holds_the_runner_and_its_requirements_only(agent_image: str) -> None:
    """No Kubernetes client, no MCP SDK, no perl beyond Debian's essential perl-base:
    exactly the distributions of container/requirements-runner.txt and the package; the server's
    console scripts are gone."""
    probe = ("import json, importlib.metadata as md, importlib.util as u; print(json.dumps(["
             "sorted(d.metadata['Name'] for d in md.distributions()), "
             "[m for m in ('kubernetes', 'mcp', 'anyio', 'git', 'pip', 'setuptools') if u.find_spec(m)]]))")
    proc = in_image(agent_image, "/opt/agentic-runner/bin/python", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    distributions, importable = json.loads(proc.stdout)
    expected = [*pinned_runner_requirements(), "agentic-sdlc-agent-runner"]
    assert sorted(canonicalize_name(d) for d in distributions) == sorted(expected)
    assert importable == []
    listing = in_image(agent_image, "/bin/sh", "-c",
                       "ls /opt/agentic-runner/bin; dpkg-query -W perl perl-modules-5.36 2>&1; git --version")
    assert "agentic-runner" not in listing.stdout.split() and "agentic-runner-mcp" not in listing.stdout.split()
    assert "no packages found matching perl" in listing.stdout and "perl-modules-5.36" in listing.stdout
    assert listing.stdout.splitlines()[-1].startswith("git version ")


def test_the_entrypoint_is_the_runner_and_refuses_a_missing_context(agent_image: str) -> None:
    """`python -m mcp_server.runner` with no task context: a failed result naming the file, not a traceback."""
    proc = podman("run", "--rm", "--read-only", "--network", "none", "--user", "1000:1000", "--tmpfs", "/tmp",
                  "-e", "AGENTIC_RESULT_FILE=/tmp/result.json", agent_image)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1].removeprefix("AGENTIC_RESULT: "))
    assert result["status"] == "failed" and "/etc/agentic-sdlc/task/context.json" in result["error"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_image_labels_tell_the_version_revision_and_source(agent_image: str) -> None:
    proc = podman("image", "inspect", "--format", "{{json .Labels}}", agent_image)
    labels = json.loads(proc.stdout)
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert {k: v for k, v in labels.items() if k.startswith("org.opencontainers.image.")} == {
        "org.opencontainers.image.title": "agentic-sdlc-agent-runner",
        "org.opencontainers.image.description": labels["org.opencontainers.image.description"],
        "org.opencontainers.image.source": "https://github.com/agentic-sdlc/agentic-sdlc-agent-runner",
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.revision": revision.strip(),
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    assert "OpenCode" in labels["org.opencontainers.image.description"]


def test_the_image_is_within_the_size_goal(agent_image: str) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", agent_image).stdout)
    assert size <= IMAGE_SIZE_LIMIT, f"{agent_image} is {size / 1e6:.1f} MB, over {IMAGE_SIZE_LIMIT / 1e6:.0f} MB"
