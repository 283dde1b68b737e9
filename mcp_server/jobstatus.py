"""A task's status from its Job and pods as the API server returns them (plain JSON dicts).

Phases: pending, running, succeeded, failed, timed_out, cancelled. From the Job's conditions first
(Complete / Failed with reason DeadlineExceeded = timed out), then the newest pod, then the
runner's result (its `status` says timed_out, cancelled, budget_exceeded or stalled when the
runner stopped for that itself). A Job being deleted is cancelled. Usage: the result's final figure,
else the latest usage line of the log tail read (a running task's usage so far).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mcp_server import naming
from mcp_server.logs.results import parse_result, runner_step
from mcp_server.models import CANCELLING, Phase, TaskResult, TaskStatus, TaskUsage
from mcp_server.timeutil import parse_time

Obj = Mapping[str, Any]
OOM_KILLED = "OOMKilled"
"""The kubelet's reason for a container whose memory cgroup ran out of memory."""
STOP_PHASES: frozenset[str] = frozenset({"timed_out", "cancelled", "budget_exceeded", "stalled"})
"""Result statuses of a runner that stopped for a reason of its own: the task's phase."""


def _conditions(job: Obj) -> dict[str, Obj]:
    return {
        c.get("type", ""): c
        for c in job.get("status", {}).get("conditions") or []
        if c.get("status") == "True"
    }


def agent_state(pod: Obj) -> Obj:
    """The `state` of the pod's `agent` container (the first container if none is called so)."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == naming.AGENT_CONTAINER:
            return status.get("state") or {}
    return (statuses[0].get("state") or {}) if statuses else {}


GIT_CLONE_CONTAINER = "git-clone"


def clone_failure(pod: Obj | None) -> TaskResult | None:
    """The failed result git-clone (the pod's init container) wrote as its termination message: the
    agent never started then, so this is the task's only result."""
    for status in (pod or {}).get("status", {}).get("initContainerStatuses") or []:
        if status.get("name") == GIT_CLONE_CONTAINER:
            done = (status.get("state") or {}).get("terminated") or {}
            if done.get("exitCode") not in (None, 0):
                return parse_result(done.get("message"))
    return None


def pod_terminated(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed") or "terminated" in agent_state(pod)


def pod_started(pod: Obj) -> bool:
    state = agent_state(pod)
    return "running" in state or "terminated" in state


def newest(pods: Sequence[Obj]) -> Obj | None:
    if not pods:
        return None
    return max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def _phase(job: Obj, pod: Obj | None, result: TaskResult | None) -> tuple[Phase, str | None]:
    conditions = _conditions(job)
    if job["metadata"].get("deletionTimestamp"):
        return "cancelled", CANCELLING  # a cancel under way: the Job is being deleted
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return "succeeded", None
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None:
        reason = failed.get("reason")
        if reason == "DeadlineExceeded":
            return "timed_out", reason
        if result is not None and result.status in STOP_PHASES:
            return result.status, reason  # type: ignore[return-value]
        if pod is not None and agent_state(pod).get("terminated", {}).get("reason") == OOM_KILLED:
            return "failed", OOM_KILLED  # more telling than the Job's BackoffLimitExceeded
        return "failed", reason
    if job.get("spec", {}).get("suspend"):
        return "pending", "Suspended"
    if pod is None:
        return "pending", None
    pod_phase = pod.get("status", {}).get("phase")
    state = agent_state(pod)
    if pod_phase == "Succeeded":
        return "succeeded", None
    if pod_phase == "Failed" or "terminated" in state:
        code = state.get("terminated", {}).get("exitCode")
        if result is not None and result.status in STOP_PHASES:
            return result.status, None  # type: ignore[return-value]
        if code == 0:
            return "succeeded", None
        return "failed", state.get("terminated", {}).get("reason") or pod.get("status", {}).get("reason")
    if pod_phase == "Running":
        return "running", None
    waiting = state.get("waiting", {}).get("reason")
    return "pending", waiting or pod.get("status", {}).get("reason")


def derive_status(
    job: Obj,
    pods: Sequence[Obj],
    environment: str,
    now: datetime,
    last_line: str | None = None,
    log_result: TaskResult | None = None,
    log_usage: TaskUsage | None = None,
) -> TaskStatus:
    """The status of one task from its Job and its pods (any order)."""
    meta = job["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    pod = newest(pods)
    terminated = agent_state(pod).get("terminated", {}) if pod is not None else {}
    result = parse_result(terminated.get("message")) or log_result or clone_failure(pod)
    phase, reason = _phase(job, pod, result)

    created = parse_time(meta.get("creationTimestamp"))
    job_status = job.get("status", {})
    started = parse_time(job_status.get("startTime")) or parse_time(terminated.get("startedAt"))
    finished = parse_time(job_status.get("completionTime"))
    if finished is None and phase in ("failed", "timed_out"):
        failed = _conditions(job).get("Failed") or {}
        finished = parse_time(failed.get("lastTransitionTime"))
    if finished is None and phase not in ("pending", "running"):
        finished = parse_time(terminated.get("finishedAt")) or parse_time(meta.get("deletionTimestamp"))
    end = finished or now
    return TaskStatus(
        task_id=labels.get(naming.LABEL_TASK_ID, ""),
        environment=labels.get(naming.LABEL_ENVIRONMENT, environment),
        namespace=meta.get("namespace", ""),
        job=meta["name"],
        base_branch=annotations.get(naming.ANNOTATION_BASE_BRANCH),
        branch=annotations.get(naming.ANNOTATION_TASK_BRANCH),
        repo=annotations.get(naming.ANNOTATION_REPO),
        description=annotations.get(naming.ANNOTATION_DESCRIPTION),
        feature_dir=annotations.get(naming.ANNOTATION_FEATURE_DIR),
        phase=phase,
        attempt=naming.attempt_of(labels),
        step=runner_step(last_line) if last_line else None,
        reason=reason,
        created_at=created,
        started_at=started,
        finished_at=finished,
        age_seconds=round((now - created).total_seconds(), 3) if created else None,
        duration_seconds=round(max(0.0, (end - started).total_seconds()), 3) if started else None,
        node=(pod or {}).get("spec", {}).get("nodeName"),
        pods=sorted(p["metadata"]["name"] for p in pods),
        exit_code=terminated.get("exitCode"),
        last_log_line=last_line,
        result=result,
        usage=result.usage if result is not None and result.usage is not None else log_usage,
        previous_usage=_usage(annotations.get(naming.ANNOTATION_PREVIOUS_USAGE)),
    )


def _usage(text: str | None) -> TaskUsage | None:
    try:
        return TaskUsage.model_validate_json(text) if text else None
    except ValueError:
        return None


def latest_attempts(jobs: Sequence[Obj]) -> list[Obj]:
    """The Jobs less those superseded by a later attempt of the same task (task id and base branch):
    while a retry replaces its predecessor both exist for a moment, and the task is the newest."""
    best: dict[tuple[str | None, str | None], tuple[int, str]] = {}
    for job in jobs:
        meta = job["metadata"]
        labels = meta.get("labels") or {}
        key = (labels.get(naming.LABEL_TASK_ID), (meta.get("annotations") or {}).get(naming.ANNOTATION_BASE_BRANCH))
        attempt = naming.attempt_of(labels)
        if key not in best or attempt > best[key][0]:
            best[key] = (attempt, meta["name"])
    keep = {name for _attempt, name in best.values()}
    return [job for job in jobs if job["metadata"]["name"] in keep]
