"""The test control plane's real node: a kubelet (v1.35.4) with containerd runs what the API server
schedules there for real, with images imported from podman (no registry), and pods go to it only
when they ask (its label and taint)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import wait_until
from tests.support.node_images import busybox_image
from tests.support.testenv import (
    REAL_NODE_LABEL,
    REAL_NODE_SELECTOR,
    REAL_NODE_TOLERATIONS,
    REAL_NODE_VALUE,
    TestEnv,
)

pytestmark = [pytest.mark.integration, pytest.mark.real_node]


@pytest.fixture(scope="module")
def busybox(testenv: TestEnv) -> str:
    return busybox_image(testenv)


def real_node_job(name: str, image: str, script: str) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    node_selector=REAL_NODE_SELECTOR,
                    tolerations=[client.V1Toleration(**{
                        "key": t["key"], "operator": t["operator"], "value": t["value"], "effect": t["effect"]})
                        for t in REAL_NODE_TOLERATIONS],
                    automount_service_account_token=False,
                    termination_grace_period_seconds=2,
                    containers=[client.V1Container(
                        name="main", image=image, image_pull_policy="Never", command=["sh", "-c", script])],
                ),
            ),
        ),
    )


def finished(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    for cond in batch.read_namespaced_job_status(name, namespace).status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def test_the_real_node_is_ready_labelled_and_tainted(testenv: TestEnv, admin_api: client.ApiClient) -> None:
    node = client.CoreV1Api(admin_api).read_node(testenv.node.name)
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    assert node.metadata.labels[REAL_NODE_LABEL] == REAL_NODE_VALUE
    assert "type" not in node.metadata.labels  # kwok manages only type=kwok nodes
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [(REAL_NODE_LABEL, REAL_NODE_VALUE, "NoSchedule")]
    info = node.status.node_info
    assert (info.kubelet_version, info.container_runtime_version) == ("v1.35.4", "containerd://2.4.2")
    assert [a.address for a in node.status.addresses if a.type == "InternalIP"] == [testenv.node.gateway]


def test_jobs_run_an_imported_image_to_their_end_with_logs_and_termination_messages(
    testenv: TestEnv, admin_api: client.ApiClient, namespace: str, busybox: str
) -> None:
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    batch.create_namespaced_job(namespace, real_node_job(
        "ok", busybox, "for i in 1 2 3; do echo line $i; done; echo all good > /dev/termination-log"))
    batch.create_namespaced_job(namespace, real_node_job(
        "bad", busybox, "echo failing >&2; echo it broke > /dev/termination-log; exit 3"))
    assert wait_until(lambda: finished(batch, namespace, "ok"), timeout=90, message="Job ok") == "Complete"
    assert wait_until(lambda: finished(batch, namespace, "bad"), timeout=90, message="Job bad") == "Failed"

    results = {}
    for job in ("ok", "bad"):
        (pod,) = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        assert pod.spec.node_name == testenv.node.name
        terminated = pod.status.container_statuses[0].state.terminated
        log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="main")
        results[job] = (pod.status.phase, terminated.exit_code, terminated.reason, terminated.message, log)
    assert results == {
        "ok": ("Succeeded", 0, "Completed", "all good\n", "line 1\nline 2\nline 3\n"),
        "bad": ("Failed", 3, "Error", "it broke\n", "failing\n"),
    }


def test_a_pod_that_does_not_ask_for_the_real_node_goes_to_a_kwok_node(
    testenv: TestEnv, admin_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin_api)
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1.36")])))
    node = wait_until(lambda: core.read_namespaced_pod("plain", namespace).spec.node_name, message="scheduling")
    assert node.startswith("kwok-node-")


def test_a_running_pod_outlives_restarts_of_containerd_and_the_kubelet(
    testenv: TestEnv, admin_api: client.ApiClient, namespace: str, busybox: str
) -> None:
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    batch.create_namespaced_job(namespace, real_node_job(
        "steady", busybox, "echo before; while [ ! -e /tmp/go ]; do sleep 0.2; done; echo after"))
    pod = wait_until(lambda: next((p for p in core.list_namespaced_pod(namespace).items
                                   if p.status.phase == "Running"), None), timeout=90, message="a running pod")
    name = pod.metadata.name
    def log() -> str | None:
        try:
            return core.read_namespaced_pod_log(name, namespace)
        except ApiException:
            return None  # a kubelet that has just started knows the pod a moment later

    wait_until(lambda: log() == "before\n", timeout=60, message="its first line")
    started = pod.status.container_statuses[0].state.running.started_at
    for component in ("containerd", "kubelet"):
        testenv.restart(component)
    node = core.read_node(testenv.node.name)
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    # the same container (not restarted), its log still served through the API server
    again = core.read_namespaced_pod(name, namespace)
    assert again.status.phase == "Running"
    assert again.status.container_statuses[0].state.running.started_at == started
    assert wait_until(log, timeout=60, message="its log after the restarts") == "before\n"
    batch.delete_namespaced_job("steady", namespace, propagation_policy="Foreground")
