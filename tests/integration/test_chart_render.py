"""The chart and the releases as the real, pinned helm lints and renders them: lint --strict, the
values schema and the template guards refusing bad input, the shape of every release, the agent
PodTemplate's contract with the server, no secret material anywhere, and the vendored dependency
in sync with chart/."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_server import __version__
from tests.support.chart import (
    CHART_DIR,
    CHART_NAME,
    ENVIRONMENTS,
    Doc,
    Helm,
    find,
    object_list,
    release_dir,
    release_name,
    release_namespace,
    scan_for_secret_material,
)
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

STORE = {"secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"}}
SSH_REFS = {"ssh": {"privateKey": {"key": "git/ssh", "property": "key"},
                    "knownHosts": {"key": "git/ssh", "property": "known_hosts"}}}
TOKEN_REFS = {"token": {"username": {"key": "git/token", "property": "user"},
                        "token": {"key": "git/token", "property": "token"}}}
LLM = [{"envName": "ANTHROPIC_API_KEY", "remoteRef": {"key": "llm", "property": "anthropic"}},
       {"envName": "OPENAI_API_KEY", "remoteRef": {"key": "llm", "property": "openai"}}]


def credentials(auth: str, source: str) -> dict[str, Any]:
    """Values for git auth `auth` with credentials from ESO (`eso`) or existing Secrets (`existing`)."""
    if source == "existing":
        return {"git": {"auth": auth}, "externalSecrets": {"enabled": False, "llm": []},
                "existingSecret": {"git": "" if auth == "none" else "team-git", "llm": "team-llm"}}
    refs = {"ssh": SSH_REFS, "token": TOKEN_REFS, "none": {}}[auth]
    return {"git": {"auth": auth}, "externalSecrets": {"enabled": True, **STORE, "git": refs, "llm": LLM}}


@pytest.fixture(scope="module")
def helm(testenv: TestEnv) -> Helm:
    return Helm.for_testenv(testenv)


def render_chart(helm: Helm, values: dict[str, Any] | None = None, release: str = "t") -> list[Doc]:
    return helm.render(CHART_DIR, release=release, namespace="ns", values=values)


def podtemplate(docs: list[Doc]) -> Doc:
    return find(docs, "PodTemplate")


def agent_container(docs: list[Doc]) -> Doc:
    (container,) = podtemplate(docs)["template"]["spec"]["containers"]
    return container


# -- lint ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["chart", *[f"releases/{release_name(e)}" for e in ENVIRONMENTS]])
def test_helm_lint_strict(helm: Helm, path: str) -> None:
    proc = helm.run("lint", "--strict", path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


@pytest.mark.parametrize("auth", ["ssh", "token", "none"])
@pytest.mark.parametrize("source", ["eso", "existing"])
def test_helm_lint_strict_with_each_credential_source(helm: Helm, tmp_path: Path, auth: str,
                                                      source: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(credentials(auth, source)), encoding="utf-8")
    proc = helm.run("lint", "--strict", "chart", "--values", str(values), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the schema and the guards refuse bad values, and nothing is rendered ------------------------

SCHEMA_REFUSALS = [
    (["gitt.auth=ssh"], "- at '': additional properties 'gitt' not allowed"),
    (["task.cleanup.polcy=keep"], "- at '/task/cleanup': additional properties 'polcy' not allowed"),
    (["task.timeoutSeconds=two-hours"], "- at '/task/timeoutSeconds': got string, want integer"),
    (["rbac.create=yes"], "- at '/rbac/create': got string, want boolean"),
    (["git.auth=ftp"], "- at '/git/auth': value must be one of 'ssh', 'token', 'none'"),
    (["git.auth=SSH"], "- at '/git/auth': value must be one of 'ssh', 'token', 'none'"),
    (["task.cleanup.policy=sometimes"],
     "- at '/task/cleanup/policy': value must be one of 'delete', 'keepFor', 'keep'"),
    (["task.branchPattern=agentic/{base_branch}"],
     "- at '/task/branchPattern': 'agentic/{base_branch}' does not match pattern"),
    (["rbac.subjects[0].kind=Robot", "rbac.subjects[0].name=r2"],
     "- at '/rbac/subjects/0/kind': value must be one of 'User', 'Group', 'ServiceAccount'"),
    (["rbac.subjects[0].kind=User"], "- at '/rbac/subjects/0': missing property 'name'"),
    (["serviceAccount.workloadIdentity.provider=aws"],
     "- at '/serviceAccount/workloadIdentity/provider': value must be one of 'none', 'gke', 'eks', 'azure'"),
    (["image.pullPolicy=Sometimes"],
     "- at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    (["runtimeClassName=gVisor_Sandbox"], "- at '/runtimeClassName': 'gVisor_Sandbox' does not match pattern"),
    (["git.hosts[0].host=github.com/org"], "- at '/git/hosts/0/host': 'github.com/org' does not match pattern"),
    (["git.hosts[0].insecure=true"], "- at '/git/hosts/0': missing property 'host'"),
    (["git.secrets[0]=Deploy_Key"], "- at '/git/secrets/0': 'Deploy_Key' does not match pattern"),
    (["task.protectedPaths[0]=/etc"], "- at '/task/protectedPaths/0': '/etc' does not match pattern"),
    (["task.checkpoints.intervalSeconds=-1"], "- at '/task/checkpoints/intervalSeconds': minimum: got -1, want 0"),
    (["terminationGracePeriodSeconds=5"], "- at '/terminationGracePeriodSeconds': minimum: got 5, want 15"),
    (["llmProxy.providers[0].name=anthropic"], "- at '/llmProxy/providers/0': missing properties 'upstream'"),
    (["llmProxy.providers[0].name=a", "llmProxy.providers[0].upstream=ftp://x/",
      "llmProxy.providers[0].header=x-api-key", "llmProxy.providers[0].secretKey=K"],
     "- at '/llmProxy/providers/0/upstream': 'ftp://x/' does not match pattern"),
    (["llmProxy.port=80"], "- at '/llmProxy/port': minimum: got 80, want 1,024"),
    (["admission.enabled=no"], "- at '/admission/enabled': got string, want boolean"),
]


@pytest.mark.parametrize(("sets", "message"), SCHEMA_REFUSALS, ids=[s[0][0] for s in SCHEMA_REFUSALS])
def test_schema_refuses_bad_values_with_a_readable_message(helm: Helm, sets: list[str], message: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    proc = helm.run("template", "t", "chart", "--kube-version", helm.kube_version, *args, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "values don't meet the specifications of the schema(s)" in proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_schema_applies_through_each_release(helm: Helm, env: str) -> None:
    for sets, message in [
        (f"{CHART_NAME}.git.auth=ftp", "- at '/git/auth': value must be one of 'ssh', 'token', 'none'"),
        (f"{CHART_NAME}.task.cleanupp=1", "- at '/task': additional properties 'cleanupp' not allowed"),
    ]:
        proc = helm.run("template", release_name(env), f"releases/{release_name(env)}",
                        "--kube-version", helm.kube_version, "--set", sets, check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert f"{CHART_NAME}:\n{message}" in proc.stderr


GUARDS = [
    ({"git": {"auth": "ssh"}, "externalSecrets": {"git": SSH_REFS}},
     "externalSecrets.secretStoreRef.name is required"),
    ({"git": {"auth": "ssh"}, "externalSecrets": STORE},
     "git.auth is ssh: set externalSecrets.git.ssh.privateKey.key and "
     "externalSecrets.git.ssh.knownHosts.key"),
    ({"git": {"auth": "token"}, "externalSecrets": STORE},
     "git.auth is token: set externalSecrets.git.token.username.key and externalSecrets.git.token.token.key"),
    ({"git": {"auth": "ssh"}, "externalSecrets": {"enabled": False}},
     "git.auth is ssh and externalSecrets.enabled is false: set existingSecret.git to the name of a Secret "
     "with ssh-privatekey and known_hosts"),
    ({"git": {"auth": "token"}, "externalSecrets": {"enabled": False}},
     "set existingSecret.git to the name of a Secret with username and token"),
    ({"existingSecret": {"git": "mine"}},
     "existingSecret.git/existingSecret.llm are used only with externalSecrets.enabled: false"),
    ({"externalSecrets": {"enabled": False, "llm": LLM[:1]}},
     "externalSecrets.llm is set but externalSecrets.enabled is false"),
    ({"serviceAccount": {"workloadIdentity": {"provider": "gke"}}},
     "serviceAccount.workloadIdentity.provider is gke: set "
     "serviceAccount.workloadIdentity.gke.gcpServiceAccount"),
    ({"serviceAccount": {"workloadIdentity": {"provider": "eks"}}},
     "serviceAccount.workloadIdentity.provider is eks: set serviceAccount.workloadIdentity.eks.roleArn"),
    ({"serviceAccount": {"workloadIdentity": {"provider": "azure"}}},
     "serviceAccount.workloadIdentity.provider is azure: set serviceAccount.workloadIdentity.azure.clientId"),
    ({"git": {"auth": "token", "secrets": ["deploy-a"]}, "externalSecrets": {"enabled": False},
      "existingSecret": {"git": "team-git"}},
     "git.secrets is set but git.auth is token: tasks select one of these Secrets as their ssh key"),
    ({"llmProxy": {"providers": [{"name": "local", "upstream": "http://10.0.0.1:8080/v1", "header": "x-api-key",
                                  "secretKey": "K"}]}, "externalSecrets": {"llm": LLM[:1], **STORE}},
     "llmProxy.providers[local].upstream is plain http://: the key would travel unencrypted"),
    ({"llmProxy": {"providers": [{"name": "a", "upstream": "https://a.example/v1", "header": "x-api-key",
                                  "secretKey": "K"}] * 2}, "externalSecrets": {"llm": LLM[:1], **STORE}},
     "llmProxy.providers: the provider name a is listed twice"),
    ({"llmProxy": {"providers": [{"name": "a", "upstream": "https://a.example/v1", "header": "x-api-key",
                                  "secretKey": "K"}]}},
     "llmProxy.providers are set but there is no LLM Secret"),
    ({"serviceAccount": {"create": False, "workloadIdentity": {"provider": "eks", "eks": {
        "roleArn": "arn:aws:iam::123456789012:role/agent"}}}},
     "serviceAccount.workloadIdentity.provider is eks but serviceAccount.create is false"),
]


@pytest.mark.parametrize(("values", "message"), GUARDS, ids=[g[1][:50] for g in GUARDS])
def test_guards_refuse_incomplete_combinations(helm: Helm, values: dict[str, Any], message: str) -> None:
    proc = helm.template(CHART_DIR, release="t", namespace="ns", values=values, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert message in proc.stderr


# -- each release ----------------------------------------------------------------------------------

ADMISSION = ["ValidatingAdmissionPolicy/{r}.{ns}.jobs.agentic-sdlc.dev",
             "ValidatingAdmissionPolicyBinding/{r}.{ns}.jobs.agentic-sdlc.dev"]
EXPECTED_OBJECTS = {
    "dev": ["ResourceQuota/{r}-agents", "ServiceAccount/{r}-agent", "ConfigMap/{r}-config",
            "ConfigMap/{r}-llm-proxy", "Role/{r}-task-runner", "RoleBinding/{r}-task-runner",
            "ExternalSecret/{r}-git", "ExternalSecret/{r}-llm", "PodTemplate/{r}-agent", *ADMISSION],
    "stg": ["NetworkPolicy/{r}-agent-egress", "ResourceQuota/{r}-agents", "ServiceAccount/{r}-agent",
            "ConfigMap/{r}-config", "ConfigMap/{r}-llm-proxy", "Role/{r}-task-runner",
            "RoleBinding/{r}-task-runner", "ExternalSecret/{r}-git", "ExternalSecret/{r}-llm",
            "PodTemplate/{r}-agent", *ADMISSION],
}
EXPECTED_OBJECTS["prod"] = EXPECTED_OBJECTS["stg"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_release_renders_its_objects(helm: Helm, env: str, capsys: pytest.CaptureFixture[str]) -> None:
    docs = helm.render_release(env)
    objects = object_list(docs)
    with capsys.disabled():
        print(f"\n[chart] release {release_name(env)} (namespace {release_namespace(env)}) renders "
              f"{len(objects)} objects:\n  " + "\n  ".join(objects))
    assert objects == [o.format(r=release_name(env), ns=release_namespace(env)) for o in EXPECTED_OBJECTS[env]]
    for doc in docs:
        if not doc["kind"].startswith("ValidatingAdmissionPolicy"):  # cluster-scoped
            assert doc["metadata"]["namespace"] == release_namespace(env), doc["metadata"]["name"]
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == release_name(env)
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["agentic-sdlc.dev/environment"] == env
    pt = podtemplate(docs)
    assert pt["metadata"]["name"] == f"{release_name(env)}-agent"  # docs/contracts.md
    assert pt["template"]["metadata"]["labels"]["agentic-sdlc.dev/environment"] == env


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_release_argocd_application(env: str) -> None:
    app = yaml.safe_load((release_dir(env) / "argocd.yaml").read_text(encoding="utf-8"))
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    spec = app["spec"]
    assert spec["source"]["path"] == f"releases/{release_name(env)}"
    assert spec["source"]["helm"]["releaseName"] == release_name(env)
    assert spec["destination"]["namespace"] == release_namespace(env)
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    assert spec["syncPolicy"]["managedNamespaceMetadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted")
    automated = spec["syncPolicy"].get("automated")
    if env == "dev":
        assert automated == {"prune": True, "selfHeal": True}
    elif env == "prod":
        assert automated is None  # manual sync


# -- the agent PodTemplate ---------------------------------------------------------------------------


def security(uid: int) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def containers(docs: list[Doc]) -> dict[str, Doc]:
    spec = podtemplate(docs)["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def mounts(container: Doc) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}


def test_podtemplate_is_the_whole_restricted_four_container_pod(helm: Helm) -> None:
    docs = render_chart(helm, {**credentials("ssh", "eso"), "podAnnotations": {"a": "1"},
                               "podLabels": {"team": "x"}})
    pt = podtemplate(docs)
    assert pt["metadata"]["name"] == "t-agentic-sdlc-agent-runner-agent"
    meta, spec = pt["template"]["metadata"], pt["template"]["spec"]
    assert meta == {
        "labels": {"app.kubernetes.io/name": "agentic-sdlc-agent-runner", "app.kubernetes.io/instance": "t",
                   "app.kubernetes.io/component": "agent-task", "team": "x"},
        "annotations": {"a": "1"},
    }
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "t-agentic-sdlc-agent-runner-agent"
    assert spec["automountServiceAccountToken"] is False
    assert "shareProcessNamespace" not in spec
    # No fsGroup: it would be a group of every container, the agent's too.
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    # git-clone (init), git-push and llm-proxy (native sidecars), then the agent.
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
        ("git-clone", None), ("git-push", "Always"), ("llm-proxy", "Always")]
    by_name = containers(docs)
    assert {n: c["securityContext"] for n, c in by_name.items()} == {
        "git-clone": security(1001), "git-push": security(1001), "llm-proxy": security(1002),
        "agent": security(1000)}
    runner = ["/usr/bin/tini", "--", "/opt/agentic-runner/bin/python", "-m"]
    assert by_name["git-clone"]["command"] == [*runner, "mcp_server.runner", "git-clone"]
    assert by_name["git-push"]["command"] == [*runner, "mcp_server.runner", "git-push"]
    assert by_name["llm-proxy"]["command"] == [*runner, "mcp_server.runner.llmproxy"]
    assert "command" not in by_name["agent"]  # the image's entrypoint: the runner
    assert {c["image"] for c in by_name.values()} == {"ghcr.io/agentic-sdlc/agentic-sdlc-agent-runner:" + __version__}

    # Who sees what: the git credential only in the git containers, the LLM keys only in the proxy.
    assert {n: mounts(c) for n, c in by_name.items()} == {
        "git-clone": {"task-context": "/etc/agentic-sdlc/task", "git-tmp": "/tmp",
                      "git-credentials": "/etc/agentic-sdlc/git", "workspace": "/workspace"},
        "git-push": {"task-context": "/etc/agentic-sdlc/task", "git-tmp": "/tmp",
                     "git-credentials": "/etc/agentic-sdlc/git", "push-queue": "/run/agentic/push"},
        "llm-proxy": {"llm-proxy-config": "/etc/agentic-sdlc/llm-proxy", "llm-credentials": "/etc/agentic-sdlc/llm",
                      "llm-proxy-tmp": "/tmp"},
        "agent": {"task-context": "/etc/agentic-sdlc/task", "workspace": "/workspace",
                  "push-queue": "/run/agentic/push", "home": "/home/agent", "tmp": "/tmp"},
    }
    agent = by_name["agent"]
    assert agent["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert agent["envFrom"] == [{"configMapRef": {"name": "t-agentic-sdlc-agent-runner-config"}}]
    assert all("valueFrom" not in e for e in agent["env"]), agent["env"]
    env = {e["name"]: e["value"] for e in agent["env"]}
    assert env == {"AGENTIC_TASK_CONTEXT_FILE": "/etc/agentic-sdlc/task/context.json",
                   "AGENTIC_WORKSPACE": "/workspace", "AGENTIC_RESULT_FILE": "/dev/termination-log",
                   "AGENTIC_PUSH_QUEUE": "/run/agentic/push", "AGENTIC_GIT_AUTH": "none", "HOME": "/home/agent",
                   "TMPDIR": "/tmp"}
    git_env = {e["name"]: e["value"] for e in by_name["git-push"]["env"]}
    assert git_env == {"AGENTIC_TASK_CONTEXT_FILE": "/etc/agentic-sdlc/task/context.json",
                       "AGENTIC_WORKSPACE": "/workspace", "AGENTIC_PUSH_QUEUE": "/run/agentic/push",
                       "AGENTIC_GIT_AUTH_DIR": "/etc/agentic-sdlc/git", "HOME": "/tmp", "TMPDIR": "/tmp"}
    clone_env = {e["name"]: e["value"] for e in by_name["git-clone"]["env"]}
    assert clone_env == {**git_env, "AGENTIC_RESULT_FILE": "/dev/termination-log"}
    assert "envFrom" not in by_name["llm-proxy"]

    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["task-context"]["downwardAPI"]["items"] == [{
        "path": "context.json",
        "fieldRef": {"fieldPath": "metadata.annotations['agentic-sdlc.dev/task-context']"}}]
    assert volumes["git-credentials"]["secret"] == {
        "secretName": "t-agentic-sdlc-agent-runner-git", "defaultMode": 0o444,
        "items": [{"key": "ssh-privatekey", "path": "ssh-privatekey"},
                  {"key": "known_hosts", "path": "known_hosts"}]}
    assert volumes["llm-credentials"]["secret"] == {"secretName": "t-agentic-sdlc-agent-runner-llm",
                                                   "defaultMode": 0o444}
    assert volumes["llm-proxy-config"]["configMap"] == {"name": "t-agentic-sdlc-agent-runner-llm-proxy"}
    for name in ("workspace", "push-queue", "home", "tmp", "git-tmp", "llm-proxy-tmp"):
        assert "sizeLimit" in volumes[name]["emptyDir"], name
    assert [v for v in spec["volumes"] if "secret" in v or "projected" in v] == [
        volumes["git-credentials"], volumes["llm-credentials"]]


def test_token_auth_reaches_only_the_git_containers_as_files(helm: Helm) -> None:
    docs = render_chart(helm, credentials("token", "existing"))
    by_name = containers(docs)
    for c in by_name.values():
        assert all("valueFrom" not in e for e in c.get("env", [])), c["name"]
        assert [e for e in c.get("envFrom", []) if "secretRef" in e] == [], c["name"]
    assert [n for n, c in by_name.items() if "git-credentials" in mounts(c)] == ["git-clone", "git-push"]
    assert [n for n, c in by_name.items() if "llm-credentials" in mounts(c)] == ["llm-proxy"]
    volumes = {v["name"]: v for v in podtemplate(docs)["template"]["spec"]["volumes"]}
    assert volumes["git-credentials"]["secret"]["secretName"] == "team-git"
    assert volumes["git-credentials"]["secret"]["items"] == [{"key": "username", "path": "username"},
                                                            {"key": "token", "path": "token"}]
    assert volumes["llm-credentials"]["secret"]["secretName"] == "team-llm"
    assert [d for d in docs if d["kind"] == "ExternalSecret"] == []


def test_without_git_auth_no_container_mounts_a_git_secret(helm: Helm) -> None:
    docs = render_chart(helm, credentials("none", "existing"))
    assert [n for n, c in containers(docs).items() if "git-credentials" in mounts(c)] == []
    assert "git-credentials" not in {v["name"] for v in podtemplate(docs)["template"]["spec"]["volumes"]}
    assert "agentic-sdlc.dev/git-secrets" not in podtemplate(docs)["metadata"]["annotations"]


def test_ssh_secrets_a_task_may_select_are_listed_for_the_server_and_the_admission(helm: Helm) -> None:
    docs = render_chart(helm, {**credentials("ssh", "existing"), "git": {"auth": "ssh", "secrets": [
        "deploy-key-a", "deploy-key-b", "team-git"]}})
    assert podtemplate(docs)["metadata"]["annotations"]["agentic-sdlc.dev/git-secrets"] == (
        "team-git,deploy-key-a,deploy-key-b")


PROVIDERS = [
    {"name": "anthropic", "upstream": "https://api.anthropic.com/v1", "header": "x-api-key",
     "secretKey": "ANTHROPIC_API_KEY"},
    {"name": "openai", "upstream": "https://api.openai.com/v1", "header": "Authorization",
     "valuePrefix": "Bearer ", "secretKey": "OPENAI_API_KEY"},
]


def test_llm_proxy_config_names_the_providers_and_holds_no_key(helm: Helm) -> None:
    docs = render_chart(helm, {**credentials("none", "eso"), "llmProxy": {"port": 8787, "providers": PROVIDERS}})
    proxy = find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-llm-proxy")["data"]
    assert json.loads(proxy["providers.json"]) == [
        {"index": 0, "name": "anthropic", "header": "x-api-key", "valuePrefix": "", "secretKey": "ANTHROPIC_API_KEY"},
        {"index": 1, "name": "openai", "header": "Authorization", "valuePrefix": "Bearer ",
         "secretKey": "OPENAI_API_KEY"}]
    conf = proxy["nginx.conf"]
    assert "listen 127.0.0.1:8787;" in conf
    assert "location /anthropic/ {\n      proxy_pass https://api.anthropic.com/v1/;" in conf
    assert "proxy_set_header x-api-key $llm_key_0;" in conf and "proxy_set_header Authorization $llm_key_1;" in conf
    assert "proxy_ssl_name api.anthropic.com;" in conf and "proxy_ssl_verify on;" in conf
    assert "return 403" in conf
    runner = find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-config")["data"]
    assert json.loads(runner["AGENTIC_LLM_PROXY"]) == {"anthropic": "http://127.0.0.1:8787/anthropic",
                                                       "openai": "http://127.0.0.1:8787/openai"}


@pytest.mark.parametrize(("cleanup", "ttl"), [
    ({"policy": "delete"}, "300"), ({"policy": "delete", "deleteAfterSeconds": 60}, "60"),
    ({"policy": "keepFor", "keepForHours": 48}, "172800"), ({"policy": "keep"}, None),
])
def test_task_defaults_are_podtemplate_annotations_for_the_server_and_configmap_env_for_the_runner(
        helm: Helm, cleanup: dict[str, Any], ttl: str | None) -> None:
    docs = render_chart(helm, {"task": {"cleanup": cleanup, "timeoutSeconds": 5400, "backoffLimit": 1,
                                        "branchPattern": "agent/{task_id}", "baseBranch": "develop",
                                        "idleTimeoutSeconds": 600,
                                        "budget": {"maxCost": 12.5, "maxTokens": 2000000}},
                               "opencode": {"model": "anthropic/claude-sonnet-4-5", "agent": "plan"}})
    annotations = podtemplate(docs)["metadata"]["annotations"]
    # One channel per consumer: the server reads exactly these annotations ...
    expected = {
        "agentic-sdlc.dev/active-deadline-seconds": "5400",
        "agentic-sdlc.dev/backoff-limit": "1",
        "agentic-sdlc.dev/branch-pattern": "agent/{task_id}",
        "agentic-sdlc.dev/default-base-branch": "develop",
        "agentic-sdlc.dev/repo-hosts": '[{"host":"github.com","insecure":false},{"host":"gitlab.com",'
                                       '"insecure":false},{"host":"bitbucket.org","insecure":false}]',
    }
    if ttl is not None:
        expected["agentic-sdlc.dev/ttl-seconds-after-finished"] = ttl
    assert annotations == expected
    # ... and the runner exactly these variables; nothing travels through a channel nobody reads.
    data = find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-config")["data"]
    assert data == {
        "AGENTIC_GIT_AUTH": "none",
        "AGENTIC_GIT_AUTHOR_NAME": "Agentic SDLC Agent",
        "AGENTIC_GIT_AUTHOR_EMAIL": "agent@agentic-sdlc.local",
        "AGENTIC_OPENCODE_MODEL": "anthropic/claude-sonnet-4-5",
        "AGENTIC_OPENCODE_AGENT": "plan",
        "AGENTIC_REPO_HOSTS": '[{"host":"github.com","insecure":false},{"host":"gitlab.com","insecure":false},'
                              '{"host":"bitbucket.org","insecure":false}]',
        "AGENTIC_PROTECTED_PATHS": '[".github/workflows/"]',
        "AGENTIC_CHECKPOINT_SECONDS": "120",
        "AGENTIC_GRACE_SECONDS": "25",
        "AGENTIC_LLM_PROXY": "{}",
        "AGENTIC_IDLE_TIMEOUT_SECONDS": "600",
        "AGENTIC_BUDGET": '{"max_cost":12.5,"max_tokens":2000000}',  # not 2e+06: Helm's numbers are floats
    }


def test_defaults_two_hour_timeout_backoff_zero_and_no_model(helm: Helm) -> None:
    docs = render_chart(helm)
    annotations = podtemplate(docs)["metadata"]["annotations"]
    assert annotations["agentic-sdlc.dev/active-deadline-seconds"] == "7200"
    assert annotations["agentic-sdlc.dev/backoff-limit"] == "0"
    assert annotations["agentic-sdlc.dev/branch-pattern"] == "agentic/{base_branch}/{task_id}"
    assert "agentic-sdlc.dev/default-model" not in annotations
    assert "AGENTIC_OPENCODE_MODEL" not in find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-config")["data"]
    data = find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-config")["data"]
    assert (data["AGENTIC_IDLE_TIMEOUT_SECONDS"], data["AGENTIC_BUDGET"]) == (
        "900", '{"max_cost":0,"max_tokens":0}')  # a 15-minute idle limit, no budget
    assert object_list(docs) == ["ServiceAccount/t-agentic-sdlc-agent-runner-agent",
                                 "ConfigMap/t-agentic-sdlc-agent-runner-config",
                                 "ConfigMap/t-agentic-sdlc-agent-runner-llm-proxy",
                                 "Role/t-agentic-sdlc-agent-runner-task-runner",
                                 "PodTemplate/t-agentic-sdlc-agent-runner-agent",
                                 *[o.format(r="t-agentic-sdlc-agent-runner", ns="ns") for o in ADMISSION]]


@pytest.mark.parametrize(("identity", "annotations", "pod_label"), [
    ({"provider": "gke", "gke": {"gcpServiceAccount": "agent@proj.iam.gserviceaccount.com"}},
     {"iam.gke.io/gcp-service-account": "agent@proj.iam.gserviceaccount.com"}, False),
    ({"provider": "eks", "eks": {"roleArn": "arn:aws:iam::123456789012:role/agent"}},
     {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent"}, False),
    ({"provider": "azure", "azure": {"clientId": "00000000-0000-0000-0000-000000000001", "tenantId": "t1"}},
     {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001",
      "azure.workload.identity/tenant-id": "t1"}, True),
    ({"provider": "none"}, None, False),
])
def test_workload_identity(helm: Helm, identity: dict[str, Any], annotations: dict[str, str] | None,
                           pod_label: bool) -> None:
    docs = render_chart(helm, {"serviceAccount": {"workloadIdentity": identity}})
    sa = find(docs, "ServiceAccount")
    assert sa["metadata"].get("annotations") == annotations
    assert sa["automountServiceAccountToken"] is False
    labels = podtemplate(docs)["template"]["metadata"]["labels"]
    assert (labels.get("azure.workload.identity/use") == "true") is pod_label


def test_image_by_tag_or_digest_and_pull_secrets(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    c = agent_container(render_chart(helm, {"image": {"repository": "reg.example/agent", "tag": "1.2.3"}}))
    assert c["image"] == "reg.example/agent:1.2.3"
    docs = render_chart(helm, {"image": {"repository": "reg.example/agent", "digest": digest,
                                         "pullPolicy": "Always"}, "imagePullSecrets": ["regcred"]})
    assert agent_container(docs)["image"] == f"reg.example/agent@{digest}"
    assert agent_container(docs)["imagePullPolicy"] == "Always"
    assert podtemplate(docs)["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_scheduling_and_runtime_values_pass_through_to_the_pod(helm: Helm) -> None:
    defaults = podtemplate(render_chart(helm, {}))["template"]["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "runtimeClassName"):
        assert key not in defaults, key
    real_node = {
        "nodeSelector": {"agentic-sdlc.dev/node": "real"},
        "tolerations": [{"key": "agentic-sdlc.dev/node", "operator": "Equal", "value": "real",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "priorityClassName": "agents",
        "runtimeClassName": "gvisor",
    }
    spec = podtemplate(render_chart(helm, real_node))["template"]["spec"]
    assert {key: spec[key] for key in real_node} == real_node


def test_rbac_role_is_least_privilege_and_binds_rbac_subjects(helm: Helm) -> None:
    docs = render_chart(helm, {"rbac": {"subjects": [
        {"kind": "User", "name": "developer"}, {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "mcp"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}]}})
    rules = find(docs, "Role")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {
        *{("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")},
        *{("", "pods", v) for v in ("get", "list", "watch")},
        ("", "pods/log", "get"),
        *{("", "podtemplates", v) for v in ("get", "list")},
        *{("", "events", v) for v in ("get", "list", "watch")},
    }
    assert find(docs, "RoleBinding")["subjects"] == [
        {"kind": "User", "name": "developer", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "ServiceAccount", "name": "mcp", "namespace": "ns"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"},
    ]


def test_network_policy_and_quota(helm: Helm) -> None:
    docs = render_chart(helm, {"networkPolicy": {"enabled": True, "egress": [
        {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"], "ports": [{"port": 22}]}]},
        "resourceQuota": {"enabled": True, "maxPods": 3}})
    policy = find(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "agentic-sdlc-agent-runner", "app.kubernetes.io/instance": "t",
        "app.kubernetes.io/component": "agent-task"}
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    dns, git = policy["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert git == {"to": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}}],
                   "ports": [{"port": 22, "protocol": "TCP"}]}
    assert find(docs, "ResourceQuota")["spec"] == {"hard": {"pods": "3"}}


def test_namespace_create_labels_pod_security_restricted(helm: Helm) -> None:
    docs = render_chart(helm, {"namespace": {"create": True, "name": "agents"}})
    ns = find(docs, "Namespace", "agents")
    assert {k: v for k, v in ns["metadata"]["labels"].items() if k.startswith("pod-security")} == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    cluster_scoped = {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] not in cluster_scoped} == {"agents"}
    binding = find(docs, "ValidatingAdmissionPolicyBinding")["spec"]
    assert binding["matchResources"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "agents"}}
    assert binding["paramRef"] == {"name": "t-agentic-sdlc-agent-runner-agent", "namespace": "agents",
                                   "parameterNotFoundAction": "Deny"}


# -- no secret material ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("auth", ["ssh", "token", "none"])
@pytest.mark.parametrize("source", ["eso", "existing"])
def test_release_renders_no_secret_material(helm: Helm, env: str, auth: str, source: str) -> None:
    docs = helm.render_release(env, credentials(auth, source))
    assert docs, "nothing rendered"
    assert scan_for_secret_material(docs) == []
    assert [d["kind"] for d in docs if d["kind"] == "Secret"] == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_release_scan_as_shipped_finds_nothing(helm: Helm, env: str) -> None:
    assert scan_for_secret_material(helm.render_release(env)) == []


def test_scan_catches_a_literal_planted_through_values(helm: Helm) -> None:
    """The scan on a real render is not vacuous: a credential put into extraEnv as a literal is found."""
    planted = {"extraEnv": [{"name": "GITHUB_TOKEN", "value": "ghp_" + "x1" * 18}],
               "podAnnotations": {"note": "sk-" + "ant-" + "y2" * 12}}
    findings = {f.what for f in scan_for_secret_material(helm.render_release("dev", planted))}
    assert findings == {"env literal under credential-like name GITHUB_TOKEN", "GitHub token",
                        "OpenAI/Anthropic style key"}


# -- the vendored dependency ---------------------------------------------------------------------


def tgz_contents(path: Path) -> dict[str, str]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_vendored_chart_matches_chart_dir(helm: Helm, tmp_path: Path, env: str) -> None:
    helm.run("package", "chart", "--destination", str(tmp_path))
    (fresh,) = tmp_path.glob("*.tgz")
    vendored = release_dir(env) / "charts" / fresh.name
    refresh = f"helm dependency update --skip-refresh releases/{release_name(env)}"
    assert vendored.exists(), f"{vendored} is missing; run: {refresh}"
    assert tgz_contents(vendored) == tgz_contents(fresh), (
        f"{vendored.relative_to(release_dir(env).parents[1])} differs from chart/; refresh it: {refresh}")
    listing = helm.run("dependency", "list", f"releases/{release_name(env)}").stdout.splitlines()
    assert [row.split() for row in listing if row.strip()] == [
        ["NAME", "VERSION", "REPOSITORY", "STATUS"], [CHART_NAME, __version__, "file://../../chart", "ok"]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_release_render_is_the_chart_render_with_the_release_values(helm: Helm, env: str) -> None:
    """The wrapper adds nothing of its own (and its vendored chart is chart/): rendering the release
    equals rendering chart/ with the release's values."""
    sub = yaml.safe_load((release_dir(env) / "values.yaml").read_text(encoding="utf-8"))[CHART_NAME]
    direct = helm.render(CHART_DIR, release=release_name(env), namespace=release_namespace(env), values=sub)
    assert direct == helm.render_release(env)
