"""Tasks as `batch/v1` Jobs made from the chart's PodTemplate `<release>-agent`.

RBAC it needs (the chart's Role): jobs create/get/list/watch/delete, pods get/list/watch, pods/log get,
podtemplates get/list. Nothing else: the task context travels in a pod annotation that the chart's
PodTemplate mounts through the downward API (no ConfigMap, no Secret).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_server import naming
from mcp_server.backends.base import cleanup_choice, pick_one
from mcp_server.backends.final_result import FinalResult
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.defaults import chart_defaults
from mcp_server.errors import Conflict, RunnerError, TaskNotFound
from mcp_server.jobstatus import derive_status, latest_attempts, newest, pod_started, pod_terminated
from mcp_server.kube import Access, AlreadyExists, BadRequest, KubeClient, NotFound, load_api_client
from mcp_server.logs.positions import parse_timestamped, since_time
from mcp_server.logs.relay import LogStream, StreamRead, TaskStreams
from mcp_server.logs.results import result_from_lines
from mcp_server.models import (
    CancelResult,
    CleanupItem,
    CleanupResult,
    StreamPosition,
    TaskHandle,
    TaskRef,
    TaskResult,
    TaskSpec,
    TaskStatus,
)
from mcp_server.runner.contract import TaskContext
from mcp_server.runner.usage import usage_from_lines

LOG_LIMIT_BYTES = 4 * 1024 * 1024
TEMPLATE_CACHE_SECONDS = 30.0
LOG_READERS = 8
LIST_TAIL_LINES = 20
"""Log lines list_agents reads per running task: its last line, and its usage so far among them."""

Obj = dict[str, Any]


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self, environment: EnvironmentSettings, settings: Settings, kube: KubeClient | None = None
    ) -> None:
        self.env = environment
        self.settings = settings
        self.environment = environment.name
        self.namespace = environment.namespace
        hint = (
            f"Ask a cluster admin to add your identity to rbac.subjects of the chart release "
            f"{environment.release!r} in namespace {environment.namespace!r}"
        )
        self.kube = kube or KubeClient(
            load_api_client(environment.kubeconfig, environment.kube_context), forbidden_hint=hint
        )
        self._template: tuple[float, Obj] | None = None

    # -- paths -----------------------------------------------------------------------------------

    @property
    def _jobs(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.namespace}/jobs"

    @property
    def _pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def _access(self, verb: str, resource: str) -> Access:
        return Access(verb, resource, self.namespace)

    # -- the chart's PodTemplate -----------------------------------------------------------------

    def pod_template(self) -> Obj:
        cached = self._template
        if cached is not None and time.monotonic() - cached[0] < TEMPLATE_CACHE_SECONDS:
            return cached[1]
        name = self.env.pod_template
        try:
            template = self.kube.request(
                "GET",
                f"/api/v1/namespaces/{self.namespace}/podtemplates/{name}",
                self._access("get", "podtemplates"),
            )
        except NotFound:
            raise RunnerError(
                f"no PodTemplate {name!r} in namespace {self.namespace!r}: the chart release "
                f"{self.env.release!r} is not installed there. Install it (helm install {self.env.release} "
                f"chart/ -n {self.namespace}) or point AGENTIC_NAMESPACE / AGENTIC_RELEASE at the "
                "right release."
            ) from None
        self._template = (time.monotonic(), template)
        return template

    def _template_defaults(self) -> Mapping[str, str]:
        return self.pod_template().get("metadata", {}).get("annotations") or {}

    def branch_pattern(self) -> str:
        return self._template_defaults().get(naming.TEMPLATE_BRANCH_PATTERN) or chart_defaults().branch_pattern

    def default_base_branch(self) -> str | None:
        return self._template_defaults().get(naming.TEMPLATE_DEFAULT_BASE_BRANCH) or None

    def _int_default(self, key: str) -> int | None:
        value = self._template_defaults().get(key)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError:
            raise RunnerError(
                f"the PodTemplate {self.env.pod_template!r} has annotation {key}={value!r}, "
                "which is not a whole number. Fix the chart values."
            ) from None

    # -- spawn -----------------------------------------------------------------------------------

    def job_manifest(self, spec: TaskSpec) -> Obj:
        template = self.pod_template()
        pod = copy.deepcopy(template.get("template") or {})
        if pod.get("spec", {}).get("restartPolicy") not in ("Never", "OnFailure"):
            raise RunnerError(
                f"the PodTemplate {self.env.pod_template!r} has restartPolicy "
                f"{pod.get('spec', {}).get('restartPolicy')!r}; a Job needs Never or OnFailure. "
                "Fix the chart."
            )
        labels = naming.task_labels(spec.task_id, spec.base_branch, self.environment, spec.attempt)
        deadline = (
            spec.timeout_minutes * 60
            if spec.timeout_minutes
            else self._int_default(naming.TEMPLATE_ACTIVE_DEADLINE)
        )
        # The runner stops by itself at the deadline (the Job is created right after this).
        context = spec.context()
        if deadline:
            context.deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=deadline)
        meta = pod.setdefault("metadata", {})
        meta.pop("creationTimestamp", None)
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            naming.ANNOTATION_TASK_CONTEXT: context.model_dump_json(),
        }
        job_spec: Obj = {
            "template": pod,
            "backoffLimit": self._int_default(naming.TEMPLATE_BACKOFF_LIMIT) or 0,
        }
        if deadline:
            job_spec["activeDeadlineSeconds"] = deadline
        ttl = self._int_default(naming.TEMPLATE_TTL_AFTER_FINISHED)
        if ttl is not None:
            job_spec["ttlSecondsAfterFinished"] = ttl
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": naming.job_name(spec.task_id, spec.base_branch, spec.attempt),
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {
                    naming.ANNOTATION_REPO: spec.repo,
                    naming.ANNOTATION_BASE_BRANCH: spec.base_branch,
                    naming.ANNOTATION_TASK_BRANCH: spec.task_branch,
                    naming.ANNOTATION_DESCRIPTION: spec.summary,
                    **({naming.ANNOTATION_FEATURE_DIR: spec.feature_dir} if spec.feature_dir else {}),
                    **(
                        {naming.ANNOTATION_PREVIOUS_USAGE: spec.previous_usage.model_dump_json()}
                        if spec.previous_usage is not None
                        else {}
                    ),
                },
            },
            "spec": job_spec,
        }

    def _handle(self, job: Obj, created: bool) -> TaskHandle:
        meta = job["metadata"]
        annotations = meta.get("annotations") or {}
        return TaskHandle(
            task_id=meta["labels"][naming.LABEL_TASK_ID],
            job=meta["name"],
            namespace=self.namespace,
            environment=self.environment,
            branch=annotations.get(naming.ANNOTATION_TASK_BRANCH, ""),
            base_branch=annotations.get(naming.ANNOTATION_BASE_BRANCH, ""),
            created=created,
            backend="kubernetes",
            attempt=naming.attempt_of(meta["labels"]),
        )

    def spawn(self, spec: TaskSpec) -> TaskHandle:
        manifest = self.job_manifest(spec)
        name = manifest["metadata"]["name"]
        try:
            job = self.kube.request("POST", self._jobs, self._access("create", "jobs.batch"), body=manifest)
            return self._handle(job, created=True)
        except AlreadyExists:
            pass
        try:
            existing = self.kube.request("GET", f"{self._jobs}/{name}", self._access("get", "jobs.batch"))
        except NotFound:
            raise Conflict(
                f"task {spec.task_id} on {spec.base_branch!r} was being deleted while it was "
                "spawned again; retry in a few seconds."
            ) from None
        annotations = existing["metadata"].get("annotations") or {}
        labels = existing["metadata"].get("labels") or {}
        if (
            labels.get(naming.LABEL_TASK_ID) != spec.task_id
            or annotations.get(naming.ANNOTATION_BASE_BRANCH) != spec.base_branch
        ):
            raise Conflict(
                f"the Job {name!r} in namespace {self.namespace!r} exists but is not task "
                f"{spec.task_id} on {spec.base_branch!r}; delete it or use another task id."
            )
        if existing["metadata"].get("deletionTimestamp"):
            raise Conflict(
                f"task {spec.task_id} on {spec.base_branch!r} is being cancelled; spawn it again "
                "once it is gone (a few seconds)."
            )
        if annotations.get(naming.ANNOTATION_REPO) != spec.repo:
            raise Conflict(
                f"task {spec.task_id} on {spec.base_branch!r} exists already for another "
                "repository; cancel it first or use another task id."
            )
        return self._handle(existing, created=False)

    # -- reading ---------------------------------------------------------------------------------

    def _list(self, path: str, resource: str, selector: str) -> list[Obj]:
        data = self.kube.request(
            "GET", path, self._access("list", resource), query={"labelSelector": selector}
        )
        return list(data.get("items") or [])

    def _jobs_and_pods(
        self, ref: TaskRef | None = None, all_attempts: bool = False
    ) -> tuple[list[Obj], dict[str, list[Obj]]]:
        """The environment's task Jobs (one LIST) and their pods by Job name (one LIST); of a retried
        task only its latest attempt unless `all_attempts`."""
        selector = naming.selector(
            self.environment, ref.task_id if ref else None, ref.base_branch if ref else None
        )
        jobs = self._list(self._jobs, "jobs.batch", selector)
        pods_by_job: dict[str, list[Obj]] = {job["metadata"]["name"]: [] for job in jobs}
        if jobs:
            for pod in self._list(self._pods, "pods", selector):
                owner = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") or (
                    pod["metadata"].get("labels") or {}
                ).get("job-name")
                if owner in pods_by_job:
                    pods_by_job[owner].append(pod)
        jobs.sort(key=lambda j: j["metadata"].get("creationTimestamp") or "", reverse=True)
        return (jobs if all_attempts else latest_attempts(jobs)), pods_by_job

    def _log(self, pod: str, query: Mapping[str, Any]) -> str:
        try:
            return self.kube.request(
                "GET",
                f"{self._pods}/{pod}/log",
                self._access("get", "pods/log"),
                query={"container": naming.AGENT_CONTAINER, **query},
                text=True,
            )
        except NotFound:
            return ""
        except BadRequest:
            return ""  # the container is not started yet or has no log (yet): no lines

    def _last_lines(self, pods: Sequence[Obj | None]) -> list[list[str]]:
        """The last log lines of each (started) pod (LIST_TAIL_LINES: the last one, and the latest
        usage line among them), read concurrently."""

        def last(pod: Obj | None) -> list[str]:
            if pod is None or not pod_started(pod):
                return []
            body = self._log(pod["metadata"]["name"], {"tailLines": LIST_TAIL_LINES})
            return [line for line in body.splitlines() if line.strip()]

        wanted = [p for p in pods if p is not None and pod_started(p)]
        if len(wanted) <= 1:
            return [last(p) for p in pods]
        with ThreadPoolExecutor(max_workers=min(LOG_READERS, len(wanted))) as pool:
            return list(pool.map(last, pods))

    def _statuses(
        self, jobs: Sequence[Obj], pods_by_job: Mapping[str, list[Obj]], last_lines: bool = True
    ) -> list[TaskStatus]:
        now = datetime.now(UTC)
        pods = [newest(pods_by_job.get(j["metadata"]["name"], [])) for j in jobs]
        tails = self._last_lines(pods) if last_lines else [[] for _ in jobs]
        return [
            derive_status(job, pods_by_job.get(job["metadata"]["name"], []), self.environment, now,
                          tail[-1] if tail else None, log_usage=usage_from_lines(tail))
            for job, tail in zip(jobs, tails, strict=True)
        ]

    def list_tasks(self) -> list[TaskStatus]:
        jobs, pods_by_job = self._jobs_and_pods()
        return self._statuses(jobs, pods_by_job)

    def _one(self, ref: TaskRef) -> tuple[Obj | None, list[Obj]]:
        jobs, pods_by_job = self._jobs_and_pods(ref)
        job = pick_one(ref, jobs, _base_branch)
        return (job, pods_by_job[job["metadata"]["name"]]) if job is not None else (None, [])

    def status(self, ref: TaskRef) -> TaskStatus:
        job, pods = self._one(ref)
        if job is None:
            raise TaskNotFound.in_namespace([ref.task_id], self.environment, self.namespace, ref.base_branch)
        pod = newest(pods)
        tail: list[str] = []
        if pod is not None and pod_started(pod):
            tail = [
                line
                for line in self._log(pod["metadata"]["name"], {"tailLines": 50}).splitlines()
                if line.strip()
            ]
        log_result = result_from_lines(tail) if pod is not None and pod_terminated(pod) else None
        return derive_status(
            job, pods, self.environment, datetime.now(UTC), tail[-1] if tail else None, log_result,
            usage_from_lines(tail),
        )

    def task_context(self, ref: TaskRef) -> TaskContext:
        """The task context the task's (latest) pod was given: what a retry starts from."""
        job, _pods = self._one(ref)
        if job is None:
            raise TaskNotFound.in_namespace([ref.task_id], self.environment, self.namespace, ref.base_branch)
        annotations = job.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        return TaskContext.model_validate_json(annotations.get(naming.ANNOTATION_TASK_CONTEXT) or "{}")

    # -- logs ------------------------------------------------------------------------------------

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        """Each selected task with its started pods (one LIST of Jobs, one of pods)."""
        jobs, pods_by_job = self._jobs_and_pods()
        if refs is not None:
            jobs = [j for j in jobs if any(ref.matches(*_ids(j)) for ref in refs)]
        statuses = self._statuses(jobs, pods_by_job, last_lines=False)
        return [
            TaskStreams(
                status,
                tuple(
                    LogStream(pod["metadata"]["name"], ended=pod_terminated(pod))
                    for pod in pods_by_job.get(status.job, [])
                    if pod_started(pod)
                ),
            )
            for status in statuses
        ]

    def read_stream(self, stream: str, position: StreamPosition) -> StreamRead:
        """The `agent` container's log of pod `stream` from the second of `position` on (timestamps,
        at most LOG_LIMIT_BYTES: a cut read says so and its last, maybe partial, line is dropped)."""
        query: dict[str, Any] = {"timestamps": "true", "limitBytes": LOG_LIMIT_BYTES}
        if position.after:
            query["sinceTime"] = since_time(position.after)
        body = self._log(stream, query)
        truncated = len(body.encode("utf-8")) >= LOG_LIMIT_BYTES
        return StreamRead(parse_timestamped(stream, body, truncated), truncated)

    # -- cancel / cleanup ------------------------------------------------------------------------

    def _delete_job(self, name: str) -> bool:
        try:
            self.kube.request(
                "DELETE",
                f"{self._jobs}/{name}",
                self._access("delete", "jobs.batch"),
                body={"propagationPolicy": "Foreground"},
            )
            return True
        except NotFound:
            return False

    def cancel(self, ref: TaskRef) -> CancelResult:
        job, pods = self._one(ref)
        if job is None:
            return CancelResult.nothing(
                ref.task_id, self.environment, self.namespace, f"Job in namespace {self.namespace!r}"
            )
        name = job["metadata"]["name"]
        pod_names = sorted(p["metadata"]["name"] for p in pods)
        already = bool(job["metadata"].get("deletionTimestamp"))
        follower = None if already else self._follow_final_result(pods)
        deleted = self._delete_job(name)
        result = follower.wait(self._pod_gone) if follower is not None and deleted else None
        if follower is not None and not deleted:
            follower.close()
        if not deleted:
            pod_names = []
        earlier = self._delete_earlier_attempts(job) if deleted else []
        what = f"Job {name}" + (f" and pod {', '.join(pod_names)}" if pod_names else "")
        message = (
            f"task {ref.task_id} was already being cancelled; deletion of {what} is in progress."
            if already
            else f"cancelled task {ref.task_id}: deleted {what}." + _reported(result)
            if deleted
            else f"task {ref.task_id} is gone already: nothing to cancel."
        )
        return CancelResult(
            task_id=ref.task_id,
            environment=self.environment,
            namespace=self.namespace,
            deleted_jobs=[name, *earlier] if deleted else [],
            deleted_pods=pod_names,
            message=message,
            result=result,
        )

    def _delete_earlier_attempts(self, job: Obj) -> list[str]:
        """The Jobs of the task's earlier attempts (finished: a retry follows only those), deleted
        with the latest, so the cancelled task does not reappear as its previous attempt."""
        task_id, base = _ids(job)
        if task_id is None or naming.attempt_of(job["metadata"].get("labels") or {}) <= 1:
            return []
        jobs, _pods = self._jobs_and_pods(TaskRef(task_id=task_id, base_branch=base), all_attempts=True)
        names = [j["metadata"]["name"] for j in jobs if j["metadata"]["name"] != job["metadata"]["name"]
                 and _ids(j) == (task_id, base)]
        return [n for n in names if self._delete_job(n)]

    def _follow_final_result(self, pods: Sequence[Obj]) -> FinalResult | None:
        """A follower of the running agent's log, opened before its Job is deleted (final_result)."""
        pod = newest(pods)
        if pod is None or not pod_started(pod) or pod_terminated(pod):
            return None
        follower = FinalResult(self.kube, self.namespace, pod)
        follower.start()
        return follower

    def _pod_gone(self, name: str) -> bool:
        try:
            self.kube.request("GET", f"{self._pods}/{name}", self._access("get", "pods"))
            return False
        except NotFound:
            return True

    def cleanup(self, older_than_seconds: float | None, dry_run: bool) -> CleanupResult:
        jobs, pods_by_job = self._jobs_and_pods(all_attempts=True)
        statuses = self._statuses(jobs, pods_by_job, last_lines=False)
        taken, kept = cleanup_choice(statuses, older_than_seconds, datetime.now(UTC))
        chosen = [CleanupItem.from_status(status) for status in taken]
        if not dry_run:
            chosen = [item for item in chosen if self._delete_job(item.job)]
        return CleanupResult.of(dry_run, chosen, kept, f"environment {self.environment!r}")


def _reported(result: TaskResult | None) -> str:
    """What the stopped agent reported, for the cancel message."""
    if result is None:
        return ""
    pushed = "pushed nothing"
    if result.pushed and result.head_sha:
        pushed = f"pushed {result.branch} at {result.head_sha[:12]}"
    return f" The agent reported {result.status}: {result.commits} commit(s), {pushed}."


def _ids(job: Obj) -> tuple[str | None, str | None]:
    """The task id and base branch of a task's Job."""
    meta = job["metadata"]
    return (meta.get("labels") or {}).get(naming.LABEL_TASK_ID), _base_branch(job)


def _base_branch(job: Obj) -> str | None:
    return (job["metadata"].get("annotations") or {}).get(naming.ANNOTATION_BASE_BRANCH)
