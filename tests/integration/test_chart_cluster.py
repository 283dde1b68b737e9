"""The chart and the releases against the real API server of the test control plane: every rendered
object passes server-side dry-run (CRD schemas of ExternalSecret and Application included), the
releases' documented install command installs, upgrades and uninstalls, the RBAC is what the
server needs and nothing more, and an agent pod from the PodTemplate is admitted under Pod Security
`restricted`."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import wait_until
from tests.support.chart import (
    CHART_DIR,
    ENVIRONMENTS,
    Helm,
    object_list,
    parse_manifests,
    pod_from_template,
    release_dir,
    release_name,
    release_namespace,
    seed_install_command,
    server_dry_run_apply,
)
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

TASK_CONTEXT = {"task_id": "T001", "description": "admission check",
                "repo": "https://git.example.com/o/r.git", "base_branch": "main",
                "task_branch": "agentic/main/T001", "environment": "dev"}


@pytest.fixture(scope="module")
def helm(testenv: TestEnv) -> Helm:
    return Helm.for_testenv(testenv)


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def delete_namespace_and_wait(core: client.CoreV1Api, name: str) -> None:
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_until(lambda: not namespace_exists(core, name), timeout=120, message=f"namespace {name} to go")


def ensure_namespace(core: client.CoreV1Api, name: str) -> bool:
    """Create the namespace unless it exists; say whether this call created it."""
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return True
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise


@pytest.fixture
def release_env(request: pytest.FixtureRequest, helm: Helm, admin_api: client.ApiClient) -> Iterator[str]:
    """An environment whose namespace agent-runner-<env> and release are absent before and after the
    test (a rerun after a crash starts clean)."""
    env: str = request.param
    core = client.CoreV1Api(admin_api)

    def clean() -> None:
        helm.run("uninstall", release_name(env), "-n", release_namespace(env), "--wait", check=False)
        delete_namespace_and_wait(core, release_namespace(env))

    clean()
    yield env
    clean()


def install_chart(helm: Helm, release: str, namespace: str, values: dict[str, Any]) -> None:
    values_file = helm.testenv.state_dir / f"chart-values-{release}-{namespace}.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    try:
        helm.run("install", release, str(CHART_DIR), "-n", namespace, "--values", str(values_file))
    finally:
        values_file.unlink()


# -- server-side dry-run of everything rendered ---------------------------------------------------


@pytest.mark.parametrize("release_env", ENVIRONMENTS, indirect=True)
def test_release_objects_pass_server_side_dry_run(helm: Helm, testenv: TestEnv,
                                                  admin_api: client.ApiClient, release_env: str) -> None:
    env = release_env
    core = client.CoreV1Api(admin_api)
    ensure_namespace(core, release_namespace(env))
    docs = helm.render_release(env)
    proc = server_dry_run_apply(testenv, docs)
    assert proc.returncode == 0, proc.stderr
    applied = [line for line in proc.stdout.splitlines()
               if line.endswith("serverside-applied (server dry run)")]
    assert len(applied) == len(docs), proc.stdout
    # The dry run stored nothing.
    assert testenv.kubectl("get", "podtemplates,externalsecrets", "-n", release_namespace(env),
                           "-o", "name").stdout == ""


def test_server_rejects_a_mistyped_external_secret(helm: Helm, testenv: TestEnv, namespace: str) -> None:
    """The dry run is a real check: the ExternalSecret CRD's schema refuses a wrong field."""
    docs = helm.render(CHART_DIR, release="t", namespace=namespace, values={
        "git": {"auth": "token"}, "externalSecrets": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
            "git": {"token": {"username": {"key": "u"}, "token": {"key": "t"}}}}})
    (es,) = [d for d in docs if d["kind"] == "ExternalSecret"]
    assert server_dry_run_apply(testenv, [es]).returncode == 0

    typo = copy.deepcopy(es)
    typo["spec"]["data"][0]["remoteRef"]["keyy"] = "typo"
    proc = server_dry_run_apply(testenv, [typo])
    assert proc.returncode == 1
    assert ".spec.data[0].remoteRef.keyy: field not declared in schema" in proc.stderr

    wrong = copy.deepcopy(es)
    wrong["spec"]["target"]["creationPolicy"] = "Sometimes"
    proc = server_dry_run_apply(testenv, [wrong])
    assert proc.returncode == 1
    assert 'spec.target.creationPolicy: Unsupported value: "Sometimes"' in proc.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_argocd_application_passes_server_side_dry_run(testenv: TestEnv, admin_api: client.ApiClient,
                                                       env: str) -> None:
    core = client.CoreV1Api(admin_api)
    created = ensure_namespace(core, "argocd")
    try:
        docs = parse_manifests((release_dir(env) / "argocd.yaml").read_text(encoding="utf-8"))
        proc = server_dry_run_apply(testenv, docs)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == (
            f"application.argoproj.io/{release_name(env)} serverside-applied (server dry run)")
    finally:
        if created:
            delete_namespace_and_wait(core, "argocd")


# -- the documented install command ----------------------------------------------------------------


@pytest.mark.parametrize("release_env", ENVIRONMENTS, indirect=True)
def test_seed_command_installs_upgrades_and_uninstalls(helm: Helm, testenv: TestEnv,
                                                       admin_api: client.ApiClient, release_env: str) -> None:
    env = release_env
    ns, release = release_namespace(env), release_name(env)
    core = client.CoreV1Api(admin_api)
    assert not namespace_exists(core, ns)

    install = helm.run_shell_command(seed_install_command(env))
    assert f"Release \"{release}\" does not exist. Installing it now." in install.stdout
    assert "STATUS: deployed" in install.stdout and "REVISION: 1" in install.stdout
    # NOTES.txt: what was created, and the Pod Security label that --create-namespace cannot set.
    assert f"PodTemplate {release}-agent" in install.stdout
    assert (f"ValidatingAdmissionPolicy and binding {release}.{ns}.jobs.agentic-sdlc.dev: a Job in {ns} is "
            "admitted only in the PodTemplate's shape") in install.stdout
    assert "It may not: read Secrets or ConfigMaps, exec/attach/port-forward into pods" in install.stdout
    assert f"WARNING: namespace {ns} does not enforce Pod Security \"restricted\"" in install.stdout
    (label_command,) = [line.strip() for line in install.stdout.splitlines()
                        if line.strip().startswith("kubectl label namespace")]
    testenv.kubectl(*shlex.split(label_command)[1:])  # the command the notes print, as printed
    assert core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"

    expected = object_list(helm.render_release(env))
    manifest = parse_manifests(helm.run("get", "manifest", release, "-n", ns).stdout)
    assert sorted(object_list(manifest)) == sorted(expected)
    for item in expected:
        kind, name = item.split("/")
        got = testenv.kubectl("get", kind, name, "-n", ns, "-o", "jsonpath={.metadata.name}")
        assert got.stdout == name

    again = helm.run_shell_command(seed_install_command(env))  # the same command is the upgrade
    assert "REVISION: 2" in again.stdout and "STATUS: deployed" in again.stdout
    assert "WARNING" not in again.stdout  # the namespace is labelled now

    # This release's agent pod is admitted in its namespace, now enforcing `restricted`.
    quota = f"{release}-agents"
    wait_until(lambda: (core.read_namespaced_resource_quota(quota, ns).status.hard or {}).get("pods"),
               message="the quota controller to fill in the quota's status")
    template = admin_api.sanitize_for_serialization(core.read_namespaced_pod_template(f"{release}-agent", ns))
    admitted = core.create_namespaced_pod(ns, pod_from_template(template, "agent-t001", TASK_CONTEXT),
                                          dry_run="All")
    assert admitted.spec.service_account_name == f"{release}-agent"
    changed = helm.run_shell_command(
        seed_install_command(env) + " --set agentic-sdlc-agent-runner.task.timeoutSeconds=5400")
    assert "REVISION: 3" in changed.stdout
    deadline = testenv.kubectl(
        "get", "podtemplate", f"{release}-agent", "-n", ns,
        "-o", r"jsonpath={.metadata.annotations.agentic-sdlc\.dev/active-deadline-seconds}").stdout
    assert deadline == "5400"

    uninstall = helm.run("uninstall", release, "-n", ns, "--wait")
    assert f'release "{release}" uninstalled' in uninstall.stdout
    kinds = ("podtemplates,configmaps,roles,rolebindings,serviceaccounts,externalsecrets,resourcequotas,"
             "networkpolicies")
    selector = f"app.kubernetes.io/instance={release}"
    left = testenv.kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name")
    assert left.stdout == ""
    cluster_scoped = testenv.kubectl("get", "validatingadmissionpolicies,validatingadmissionpolicybindings",
                                     "-l", selector, "-o", "name").stdout.split()
    assert [name for name in cluster_scoped if f".{ns}.jobs.agentic-sdlc.dev" in name] == []


def test_bad_values_install_nothing(helm: Helm, testenv: TestEnv, namespace: str) -> None:
    for sets, message in [
        ("git.auth=ftp", "- at '/git/auth': value must be one of 'ssh', 'token', 'none'"),
        ("git.auth=ssh", "externalSecrets.secretStoreRef.name is required"),
    ]:
        proc = helm.run("install", "bad", str(CHART_DIR), "-n", namespace, "--set", sets, check=False)
        assert proc.returncode == 1 and message in proc.stderr
    assert helm.run("list", "-n", namespace, "-a", "-q").stdout == ""
    left = testenv.kubectl("get", "podtemplates,roles,rolebindings,serviceaccounts,externalsecrets,secrets",
                           "-n", namespace, "-o", "name").stdout.split()
    assert left == ["serviceaccount/default"]


# -- RBAC ------------------------------------------------------------------------------------------

ALLOWED_IN_NAMESPACE = [
    ("create", "jobs.batch"), ("get", "jobs.batch"), ("list", "jobs.batch"), ("watch", "jobs.batch"),
    ("delete", "jobs.batch"), ("get", "pods"), ("list", "pods"), ("watch", "pods"), ("get", "pods/log"),
    ("get", "podtemplates"), ("list", "podtemplates"), ("get", "events"), ("list", "events"),
    ("watch", "events"),
]
DENIED_IN_NAMESPACE = [
    ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"), ("create", "pods/exec"),
    ("get", "pods/exec"), ("create", "pods/attach"), ("create", "pods/portforward"), ("create", "pods"),
    ("delete", "pods"), ("update", "jobs.batch"), ("patch", "jobs.batch"), ("create", "podtemplates"),
    ("update", "podtemplates"), ("get", "configmaps"), ("create", "serviceaccounts/token"),
    ("impersonate", "serviceaccounts"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"), ("create", "externalsecrets.external-secrets.io"),
    ("*", "*"),
]
DENIED_ELSEWHERE = [("create", "jobs.batch"), ("get", "pods/log"), ("get", "pods"), ("list", "jobs.batch")]
DENIED_CLUSTER = [("list", "namespaces"), ("list", "nodes"),
                  ("create", "clusterrolebindings.rbac.authorization.k8s.io")]


def kubectl_as(testenv: TestEnv, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl as a user with its own kubeconfig (developer, stranger), or as a ServiceAccount
    (`system:serviceaccount:<ns>:<name>`) through the admin's impersonation."""
    if who.startswith("system:serviceaccount:"):
        return testenv.kubectl(*args, "--as", who, check=False)
    return testenv.kubectl(*args, who=who, check=False)


def can_i(testenv: TestEnv, who: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` as `who`: the developer/stranger with their own credentials, a
    ServiceAccount (`system:serviceaccount:...`) by the admin's impersonation. A subresource goes in
    --subresource: `can-i get pods/exec` would ask about a pod *named* exec."""
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, *(["--subresource", subresource] if subresource else []),
            *(["-n", namespace] if namespace else ["--all-namespaces"])]
    proc = kubectl_as(testenv, who, *args)
    answer = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    assert (answer, proc.returncode) in {("yes", 0), ("no", 1)}, proc.stdout + proc.stderr
    return answer == "yes"


def resource_rules(testenv: TestEnv, namespace: str, who: str) -> list[str]:
    """The resource rows of `kubectl auth can-i --list` (non-resource URL rows dropped)."""
    proc = kubectl_as(testenv, who, "auth", "can-i", "--list", "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    return sorted(line.split()[0] + " " + line.split()[-1] for line in proc.stdout.splitlines()[1:]
                  if line and not line[0].isspace())


def test_rbac_matrix(helm: Helm, testenv: TestEnv, admin_api: client.ApiClient, namespace: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
    core = client.CoreV1Api(admin_api)
    other = f"rbac-other-{uuid.uuid4().hex[:6]}"
    ensure_namespace(core, other)
    try:
        developer = {"kind": "User", "name": "developer"}
        install_chart(helm, "rbac", namespace, {"rbac": {"subjects": [developer]}})
        agent_sa = f"system:serviceaccount:{namespace}:rbac-agentic-sdlc-agent-runner-agent"
        identities = {"developer": "developer", "stranger": "stranger", "agent SA": agent_sa}
        checks = ([(v, r, namespace, "this ns") for v, r in ALLOWED_IN_NAMESPACE + DENIED_IN_NAMESPACE]
                  + [(v, r, other, "other ns") for v, r in DENIED_ELSEWHERE]
                  + [(v, r, None, "cluster") for v, r in DENIED_CLUSTER])
        matrix = {(v, r, where): {label: can_i(testenv, who, v, r, ns) for label, who in identities.items()}
                  for v, r, ns, where in checks}

        lines = [f"{'verb resource (scope)':64} {'developer':>9} {'stranger':>9} {'agent SA':>9}"]
        for (v, r, where), answers in matrix.items():
            lines.append(f"{v + ' ' + r + ' (' + where + ')':64} " + " ".join(
                f"{'allowed' if answers[k] else 'denied':>9}" for k in identities))
        with capsys.disabled():
            print("\n[chart] RBAC matrix (kubectl auth can-i against the test API server):\n  "
                  + "\n  ".join(lines))

        for v, r in ALLOWED_IN_NAMESPACE:
            assert matrix[(v, r, "this ns")] == {
                "developer": True, "stranger": False, "agent SA": False}, (v, r)
        denied = {k: val for k, val in matrix.items() if (k[0], k[1]) not in ALLOWED_IN_NAMESPACE
                  or k[2] != "this ns"}
        assert all(not any(answers.values()) for answers in denied.values()), {
            k: v for k, v in denied.items() if any(v.values())}

        # The agent's ServiceAccount has exactly the rights of an identity nobody granted anything.
        nobody = resource_rules(testenv, namespace, "stranger")
        assert resource_rules(testenv, namespace, agent_sa) == nobody

        # The answers hold for real requests too.
        forbidden = testenv.kubectl("get", "secrets", "-n", namespace, who="developer", check=False)
        assert forbidden.returncode == 1
        assert ('User "developer" cannot list resource "secrets" in API group "" in the namespace '
                f'"{namespace}"') in forbidden.stderr
        got = testenv.kubectl("get", "podtemplate", "rbac-agentic-sdlc-agent-runner-agent", "-n", namespace,
                              "-o", "name", who="developer")
        assert got.stdout.strip() == "podtemplate/rbac-agentic-sdlc-agent-runner-agent"
    finally:
        helm.run("uninstall", "rbac", "-n", namespace, check=False)
        delete_namespace_and_wait(core, other)


# -- Pod Security and the quota --------------------------------------------------------------------


def test_agent_pod_is_admitted_under_pod_security_restricted(helm: Helm, admin_api: client.ApiClient,
                                                             namespace: str) -> None:
    """The chart's own Namespace (namespace.create) enforces `restricted`; a pod made from the
    PodTemplate as the API server stores it, with every credential mount, is admitted there, and a
    pod that is not restricted is refused (so the admission really judged)."""
    core = client.CoreV1Api(admin_api)
    agents = f"psa-agents-{uuid.uuid4().hex[:6]}"
    try:
        install_chart(helm, "psa", namespace, {
            "namespace": {"create": True, "name": agents}, "git": {"auth": "ssh"},
            "externalSecrets": {"enabled": False}, "existingSecret": {"git": "team-git", "llm": "team-llm"}})
        labels = core.read_namespace(agents).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"

        template = admin_api.sanitize_for_serialization(
            core.read_namespaced_pod_template("psa-agentic-sdlc-agent-runner-agent", agents))
        pod = pod_from_template(template, "agent-t001", TASK_CONTEXT)
        created = core.create_namespaced_pod(agents, pod)
        assert created.metadata.name == "agent-t001"
        secrets = {v.name: v.secret.secret_name for v in created.spec.volumes if v.secret is not None}
        assert secrets == {"git-credentials": "team-git", "llm-credentials": "team-llm"}
        assert [(c.name, c.security_context.run_as_user) for c in created.spec.init_containers + created.spec.containers
                ] == [("git-clone", 1001), ("git-push", 1001), ("llm-proxy", 1002), ("agent", 1000)]
        assert created.metadata.annotations["agentic-sdlc.dev/task-context"].startswith('{"task_id": "T001"')

        loose = pod_from_template(template, "agent-loose", TASK_CONTEXT)
        del loose["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
        loose["spec"]["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_RAW"]}
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(agents, loose)
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert message.startswith('pods "agent-loose" is forbidden: violates PodSecurity "restricted:latest": ')
        assert "allowPrivilegeEscalation != false" in message and "NET_RAW" in message
    finally:
        helm.run("uninstall", "psa", "-n", namespace, "--wait", check=False)
        delete_namespace_and_wait(core, agents)


def test_resource_quota_caps_running_agent_pods(helm: Helm, admin_api: client.ApiClient,
                                                namespace: str) -> None:
    core = client.CoreV1Api(admin_api)
    install_chart(helm, "quota", namespace, {"resourceQuota": {"enabled": True, "maxPods": 1}})
    quota = "quota-agentic-sdlc-agent-runner-agents"
    wait_until(lambda: (core.read_namespaced_resource_quota(quota, namespace).status.hard or {}).get("pods"),
               message="the quota controller to fill in the quota's status")
    template = admin_api.sanitize_for_serialization(
        core.read_namespaced_pod_template("quota-agentic-sdlc-agent-runner-agent", namespace))
    core.create_namespaced_pod(namespace, pod_from_template(template, "agent-1", TASK_CONTEXT))
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, pod_from_template(template, "agent-2", TASK_CONTEXT))
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        f'pods "agent-2" is forbidden: exceeded quota: {quota}, requested: pods=1, used: pods=1, limited: pods=1')
