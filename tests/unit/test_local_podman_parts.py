"""Plain-data parts of the local backend's podman mode: quantities, names, the image reference, the
chart's lowest Kubernetes version, the host-side clone's record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.backends import local_podman
from mcp_server.backends.local_podman import PodmanSettings, _cpus, _kube_version, _quantity_bytes, pod_name
from mcp_server.errors import ConfigError
from tests.support.git_remotes import BASE_BRANCH, git, make_bare_remote

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [("2Gi", str(2 * 2**30)), ("512Mi", str(512 * 2**20)),
                                                ("1G", str(10**9)), ("1000", "1000"), ("1.5Gi", str(3 * 2**29))])
def test_memory_limits_become_bytes(text: str, expected: str) -> None:
    assert _quantity_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("2", "2"), ("500m", "0.5"), ("1500m", "1.5"), ("0.25", "0.25")])
def test_cpu_limits_become_cpus(text: str, expected: str) -> None:
    assert _cpus(text) == expected


@pytest.mark.parametrize("bad", ["2 GB", "lots", "-1Gi"])
def test_a_limit_podman_cannot_take_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"the memory limit {bad!r} is not a quantity"):
        _quantity_bytes(bad)


def test_pod_names_fit_podman_and_the_image_splits_into_repository_and_tag() -> None:
    assert pod_name("agentic-t001-abc") == "agentic-t001-abc" and pod_name("t1") == "agentic-t1"
    assert len(pod_name("x" * 80)) == 63
    settings = PodmanSettings("localhost:5000/agent:v1@sha256:" + "a" * 64, "podman", "helm", Path("chart"), (), None)
    assert settings.image_parts() == ("localhost:5000/agent", "v1")
    plain = PodmanSettings("localhost/agent:dev", "p", "h", Path("c"), (), None)
    assert plain.image_parts() == ("localhost/agent", "dev")


def test_the_chart_is_rendered_for_its_lowest_kubernetes_version() -> None:
    assert _kube_version(REPO_ROOT / "chart") == "v1.30.0"


def test_the_host_side_clone_starts_the_task_branch_from_the_developers_base_and_names_the_container_path(
        tmp_path: Path) -> None:
    remote = make_bare_remote(tmp_path / "remotes")
    repo = tmp_path / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(repo))
    git("-C", str(repo), "-c", "user.name=d", "-c", "user.email=d@e", "commit", "-q", "--allow-empty", "-m", "local")
    local_head = git("-C", str(repo), "rev-parse", "HEAD").strip()
    workspace = tmp_path / "pod" / "workspace"
    workspace.mkdir(parents=True)
    checkout, base = local_podman.host_clone(repo, "agentic/x/T001", BASE_BRANCH, remote.url, workspace, "/workspace",
                                             {"PATH": "/usr/bin:/bin"})
    assert base == local_head  # the developer's local base, with its unpushed commit
    assert git("-C", str(checkout), "rev-parse", "--abbrev-ref", "HEAD").strip() == "agentic/x/T001"
    assert git("-C", str(checkout), "rev-parse", "HEAD").strip() == local_head
    assert git("-C", str(checkout), "remote", "get-url", "--push", "origin").strip() != remote.url
    assert not list((checkout / ".git" / "hooks").glob("*[!e]"))  # no hook but git's samples
    record = json.loads((workspace / ".agentic" / "clone.json").read_text())
    assert record == {"checkout": f"/workspace/{checkout.name}", "base_sha": local_head, "remote_task_sha": None,
                      "branch": "agentic/x/T001"}
    with pytest.raises(ConfigError, match="the base branch nope is not in the repository"):
        local_podman.host_clone(repo, "agentic/nope/T001", "nope", remote.url, tmp_path / "w2", "/workspace", {})
