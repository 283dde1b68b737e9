"""Proof that the test control plane is a real Kubernetes: Jobs run on kwok nodes, the job and
ttl-after-finished controllers work, logs stream from files, CRD schemas validate, RBAC denies,
and Pod Security admission enforces."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.conftest import wait_until
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

EXIT_CODE = "testenv.agentic-sdlc.dev/exit-code"


def message(exc: ApiException) -> str:
    """The Status message of an API error, as a user reads it."""
    return json.loads(exc.body)["message"]


def job(name: str, *, annotations: dict[str, str] | None = None, ttl: int | None = None,
        deadline: int | None = None) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            ttl_seconds_after_finished=ttl,
            active_deadline_seconds=deadline,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations or {}),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="main", image="busybox:1.36")],
                ),
            ),
        ),
    )


def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> client.V1JobCondition | None:
    status = batch.read_namespaced_job_status(name, ns).status
    for cond in status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond
    return None


def test_nodes_are_kwok_nodes_and_ready(admin_api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(admin_api).list_node(label_selector="type=kwok").items
    assert len(nodes) >= 2
    for node in nodes:
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], node.metadata.name


def test_job_runs_on_kwok_node_to_succeeded(admin_api: client.ApiClient, namespace: str) -> None:
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    batch.create_namespaced_job(namespace, job("ok", annotations={EXIT_CODE: "0"}))
    cond = wait_until(lambda: job_condition(batch, namespace, "ok"), message="job ok to finish")
    assert cond.type == "Complete"
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=ok").items
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name.startswith("kwok-node-")
    assert batch.read_namespaced_job_status("ok", namespace).status.succeeded == 1


def test_failed_container_fails_the_job_with_its_termination_message(
    admin_api: client.ApiClient, namespace: str
) -> None:
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    batch.create_namespaced_job(namespace, job("bad", annotations={
        EXIT_CODE: "3", "testenv.agentic-sdlc.dev/termination-message": '{"status": "failed"}'}))
    cond = wait_until(lambda: job_condition(batch, namespace, "bad"), message="job bad to finish")
    assert (cond.type, cond.reason) == ("Failed", "BackoffLimitExceeded")
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=bad").items
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code) == ("Failed", 3)
    assert terminated.message == '{"status": "failed"}'


def test_ttl_after_finished_deletes_the_job(admin_api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(admin_api)
    batch.create_namespaced_job(namespace, job("short-lived", annotations={EXIT_CODE: "0"}, ttl=1))

    def gone() -> bool:
        try:
            batch.read_namespaced_job("short-lived", namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_until(gone, timeout=60, message="ttl-after-finished to delete the job")


def test_active_deadline_fails_a_job_that_runs_too_long(admin_api: client.ApiClient, namespace: str) -> None:
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    batch.create_namespaced_job(namespace, job("slow", deadline=2))  # its pod never finishes by itself
    wait_until(lambda: core.list_namespaced_pod(namespace, label_selector="job-name=slow").items,
               message="the slow job's pod")
    cond = wait_until(lambda: job_condition(batch, namespace, "slow"), timeout=60, message="deadline")
    assert (cond.type, cond.reason) == ("Failed", "DeadlineExceeded")
    # The job controller killed the running pod.
    wait_until(lambda: not [p for p in core.list_namespaced_pod(namespace, label_selector="job-name=slow").items
                            if p.status.phase == "Running"], message="the slow pod to stop running")


def test_appended_log_lines_arrive_through_a_follow_stream_in_order(
    testenv: TestEnv, admin_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin_api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="talker"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1.36")]),
    )
    core.create_namespaced_pod(namespace, pod)
    wait_until(lambda: core.read_namespaced_pod("talker", namespace).status.phase == "Running",
               message="pod talker to run")
    testenv.append_log(namespace, "talker", "line 0")

    def served() -> bool:  # kwok has picked up the pod's log file
        try:
            return core.read_namespaced_pod_log("talker", namespace) == "line 0\n"
        except ApiException as exc:
            if exc.status == 400:
                return False
            raise

    wait_until(served, message="kwok to serve the pod's log")
    expected = [f"line {i}" for i in range(6)]
    received: list[str] = []
    done = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        for line in w.stream(core.read_namespaced_pod_log, name="talker", namespace=namespace,
                             follow=True, _request_timeout=30):
            received.append(line)
            if len(received) >= len(expected):
                w.stop()
                break
        done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_until(lambda: received, message="the first log line through the follow stream")
    for i in range(1, 6):  # appended while the stream is open
        testenv.append_log(namespace, "talker", f"line {i}")
    assert done.wait(30), f"follow stream got only {received}"
    assert received == expected


def external_secret(api_version: str, spec: dict) -> dict:
    return {
        "apiVersion": api_version,
        "kind": "ExternalSecret",
        "metadata": {"name": f"es-{uuid.uuid4().hex[:6]}"},
        "spec": spec,
    }


def test_external_secret_v1_is_validated_by_its_crd_schema(admin_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(admin_api)
    good = external_secret("external-secrets.io/v1", {
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
        "refreshInterval": "1h",
        "target": {"name": "git-credentials", "creationPolicy": "Owner"},
        "data": [{"secretKey": "token", "remoteRef": {"key": "git/token"}}],
    })
    custom.create_namespaced_custom_object("external-secrets.io", "v1", namespace, "externalsecrets", good)

    mistyped = external_secret("external-secrets.io/v1", {
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
        "target": {"name": "git-credentials", "creationPolicy": "Owner"},
        "data": [{"secretKey": "token", "remoteRefs": {"key": "git/token"}}],  # remoteRef mistyped
    })
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("external-secrets.io", "v1", namespace, "externalsecrets",
                                               mistyped, field_validation="Strict")
    assert exc.value.status in (400, 422)
    assert "remoteRefs" in exc.value.body or "remoteRef" in exc.value.body

    wrong_kind = external_secret("external-secrets.io/v1", {
        "secretStoreRef": {"kind": "Vault", "name": "vault"},  # enum: SecretStore, ClusterSecretStore
        "target": {"name": "git-credentials"},
    })
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("external-secrets.io", "v1", namespace, "externalsecrets",
                                               wrong_kind)
    assert exc.value.status == 422
    assert "spec.secretStoreRef.kind" in exc.value.body

    items = custom.list_namespaced_custom_object("external-secrets.io", "v1", namespace, "externalsecrets")
    assert [i["metadata"]["name"] for i in items["items"]] == [good["metadata"]["name"]]


def test_external_secret_v1beta1_is_not_served(admin_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(admin_api)
    old = external_secret("external-secrets.io/v1beta1", {
        "secretStoreRef": {"kind": "SecretStore", "name": "vault"}, "target": {"name": "x"}})
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("external-secrets.io", "v1beta1", namespace, "externalsecrets", old)
    assert exc.value.status == 404


def test_stranger_is_forbidden_to_list_pods(testenv: TestEnv, namespace: str) -> None:
    stranger = client.CoreV1Api(testenv.api_client("stranger"))
    with pytest.raises(ApiException) as exc:
        stranger.list_namespaced_pod(namespace)
    assert exc.value.status == 403
    assert message(exc.value) == (
        f'pods is forbidden: User "stranger" cannot list resource "pods" in API group "" '
        f'in the namespace "{namespace}"'
    )


def test_pod_security_restricted_rejects_a_privileged_pod(admin_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(admin_api)
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="root"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="main", image="busybox:1.36",
            security_context=client.V1SecurityContext(privileged=True))]),
    )
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(namespace, pod)
    assert exc.value.status == 403
    text = message(exc.value)
    assert text.startswith('pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged')
    assert 'container "main" must not set securityContext.privileged=true' in text
    assert core.list_namespaced_pod(namespace).items == []
