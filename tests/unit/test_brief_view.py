"""backends/brief.py: a listing's Jobs and pods decoded to only what a status is derived from give
every task the same status as the whole objects, and leave the bulk (pod specs, pod templates with
the task-context annotation, managedFields) unbuilt."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mcp_server import naming
from mcp_server.backends.brief import decode_job_list, decode_pod_list
from mcp_server.jobstatus import derive_status, latest_attempts, newest, pod_started, pod_terminated
from tests.unit import test_models_status
from tests.unit.test_models_status import NOW, RESULT, job, pod, result, terminated

PHASE_CASES = [(case[0], case[1]) for case in test_models_status.test_phases.pytestmark[0].args[1]]
"""Every (Job, pods) of the phase table of test_models_status."""

CONTEXT = json.dumps({"task_id": "T1", "description": "x" * 3000, "context_files": [{"path": "a", "content": "y"}]})
MANAGED = [{"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:active": {}, "f:ready": {}}}}]
CONTAINER = {"name": "agent", "image": "agent:dev", "env": [{"name": "A", "value": "b"}],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}], "securityContext": {"runAsUser": 1000}}


def as_listed_job(the_job: dict[str, Any]) -> dict[str, Any]:
    """The Job as the API server lists it: with its pod template (the task context in it) and the rest."""
    listed = copy.deepcopy(the_job)
    meta = listed["metadata"]
    meta.update(uid="u-1", resourceVersion="7", generation=1, managedFields=MANAGED)
    meta["labels"] = {**meta.get("labels", {}), naming.LABEL_ATTEMPT: "1"}
    listed["spec"] = {
        **listed.get("spec", {}), "backoffLimit": 0, "completions": 1, "parallelism": 1,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
        "template": {"metadata": {"annotations": {naming.ANNOTATION_TASK_CONTEXT: CONTEXT}},
                     "spec": {"restartPolicy": "Never", "containers": [CONTAINER]}},
    }
    listed.setdefault("status", {}).update(active=1, ready=0, uncountedTerminatedPods={})
    return listed


def as_listed_pod(the_pod: dict[str, Any], job_name: str) -> dict[str, Any]:
    listed = copy.deepcopy(the_pod)
    meta = listed["metadata"]
    meta.update(uid="p-1", managedFields=MANAGED, annotations={naming.ANNOTATION_TASK_CONTEXT: CONTEXT},
                ownerReferences=[{"kind": "Job", "name": job_name, "uid": "u-1", "controller": True}])
    meta["labels"] = {**meta.get("labels", {}), "batch.kubernetes.io/job-name": job_name, "job-name": job_name}
    listed["spec"] = {**listed.get("spec", {}), "containers": [CONTAINER], "volumes": [{"name": "work"}]}
    listed.setdefault("status", {}).update(hostIP="10.0.0.1", qosClass="Burstable",
                                           conditions=[{"type": "Ready", "status": "True"}])
    return listed


def listing(kind: str, items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "9", "continue": "c"},
                       "items": items}).encode()


def a_finished_job() -> dict[str, Any]:
    done = job([{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:05:00Z"}])
    done["status"]["completionTime"] = "2026-01-01T00:05:30Z"  # not the pod's finishedAt
    done["metadata"]["annotations"][naming.ANNOTATION_PREVIOUS_USAGE] = json.dumps({"tokens": 5, "cost": 0.5})
    return done


def a_failed_clone() -> dict[str, Any]:
    stuck = pod("Failed", {"waiting": {"reason": "PodInitializing"}})
    stuck["status"]["reason"] = "Evicted"
    stuck["status"]["initContainerStatuses"] = [
        {"name": "git-clone", "state": terminated(1, result("failed", error="bad host"))}]
    return stuck


def an_evicted_pod() -> dict[str, Any]:
    evicted = pod("Failed")
    evicted["status"] = {"phase": "Failed", "reason": "Evicted"}
    return evicted


def a_suspended_job() -> dict[str, Any]:
    suspended = job()
    suspended["spec"] = {"suspend": True}
    return suspended


CASES = [
    *PHASE_CASES,
    (a_finished_job(), [pod("Succeeded", terminated(0, RESULT, "Completed"))]),
    (job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]), [a_failed_clone()]),
    (a_suspended_job(), []),
    (job(), [an_evicted_pod()]),
    # a retried pod: the newest one counts
    (job(), [pod("Failed", terminated(1), name="agentic-t1-abc-x1"),
             pod("Running", {"running": {}}, name="agentic-t1-abc-x2")]),
]


def decoded(the_job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = the_job["metadata"]["name"]
    jobs = decode_job_list(listing("JobList", [as_listed_job(the_job)]))
    listed_pods = decode_pod_list(listing("PodList", [as_listed_pod(p, name) for p in pods]))
    assert jobs["metadata"]["continue"] == "c"
    return jobs["items"][0], listed_pods["items"]


def statuses(the_job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    status = derive_status(the_job, pods, "dev", NOW, last_line='{"phase": "agent", "msg": "m"}')
    return status.model_dump(mode="json")


@pytest.mark.parametrize(("the_job", "pods"), CASES)
def test_a_brief_listing_gives_every_task_the_status_of_the_whole_objects(
    the_job: dict[str, Any], pods: list[dict[str, Any]]
) -> None:
    name = the_job["metadata"]["name"]
    whole_job = as_listed_job(the_job)
    whole_pods = [as_listed_pod(p, name) for p in pods]
    brief_job, brief_pods = decoded(the_job, pods)
    assert statuses(brief_job, brief_pods) == statuses(whole_job, whole_pods)
    assert latest_attempts([brief_job]) == [brief_job]
    if pods:
        assert newest(brief_pods)["metadata"]["name"] == newest(whole_pods)["metadata"]["name"]
        assert [(pod_started(p), pod_terminated(p)) for p in brief_pods] == [
            (pod_started(p), pod_terminated(p)) for p in whole_pods]
    # What no status reads is not built: the pod template (task context), specs, managedFields.
    assert set(brief_job) <= {"metadata", "spec", "status"}
    assert "template" not in brief_job.get("spec", {}) and "managedFields" not in brief_job["metadata"]
    for brief_pod in brief_pods:
        assert "annotations" not in brief_pod["metadata"] and "managedFields" not in brief_pod["metadata"]
        assert set(brief_pod.get("spec", {})) <= {"nodeName"}
        assert brief_pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == name


def test_a_shape_the_view_does_not_expect_is_read_whole() -> None:
    odd = as_listed_job(job())
    odd["spec"]["suspend"] = "no"  # not a boolean: the brief view cannot hold it
    data = listing("JobList", [odd])
    assert decode_job_list(data) == json.loads(data)


def test_a_body_that_is_not_json_is_a_value_error_as_before() -> None:
    with pytest.raises(ValueError):
        decode_pod_list(b"<html>proxy error</html>")
    assert decode_job_list(listing("JobList", []))["items"] == []
