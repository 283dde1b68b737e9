"""Tasks as `batch/v1` Jobs made from the chart's PodTemplate `<release>-agent`.

RBAC it needs (the chart's Role): jobs create/get/list/watch/delete, pods get/list/watch, pods/log get,
podtemplates get/list. Nothing else: the task context travels in a pod annotation that the chart's
PodTemplate mounts through the downward API (no ConfigMap, no Secret).

Requests per operation: a listing (list_tasks, log_streams, cleanup) is one LIST of Jobs and one of
pods, whatever the number of tasks, each decoded to only the fields a status is derived from
(`mcp_server.backends.brief`); no log is read for it (a task's last line is the one the log
relay holds, `mcp_server.logs.follow`). A running pod's log, once a waiting stream_task_logs call
read it, is followed by one open request, read from memory afterwards.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_server import naming, repohosts
from mcp_server.backends import brief as brief_view
from mcp_server.backends.base import CONTINUE_ALLOWED, TaskPage, check_same_repo, cleanup_choice, pick_one
from mcp_server.backends.final_result import FinalResult
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.defaults import chart_defaults
from mcp_server.errors import Conflict, InvalidInput, RunnerError, TaskNotFound
from mcp_server.jobstatus import derive_status, latest_attempts, newest, pod_started, pod_terminated
from mcp_server.kube import (
    Access,
    AdmissionDenied,
    AlreadyExists,
    BadRequest,
    Gone,
    KubeClient,
    NotFound,
    load_api_client,
)
from mcp_server.logs.follow import Followers, StreamGone
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
from mcp_server.repohosts import HostRule
from mcp_server.runner.contract import TaskContext
from mcp_server.runner.usage import usage_from_lines

LOG_LIMIT_BYTES = 4 * 1024 * 1024
TEMPLATE_CACHE_SECONDS = 30.0
LOG_LIMIT_LINES = 5000
FOLLOW_CHUNK_BYTES = 64 * 1024
FOLLOW_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds of a follow stream: one silent for a minute is opened again."""
LIST_TAIL_LINES = 20
"""Log lines a one-shot CLI listing reads per running task: its last line and usage so far among them."""
TAIL_READERS = 8
"""How many of those tails a one-shot CLI listing reads at a time."""
ADMISSION_WAIT_SECONDS = 20.0
"""How long spawn retries while the chart's admission policy has not seen its PodTemplate yet (a
release installed a moment ago)."""

Obj = dict[str, Any]


class KubernetesBackend:
    name = "kubernetes"
    spawn_parallelism = 8  # creates in flight at once in a burst (the API server takes them in parallel)

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
        self.logs = Followers(self._open_follow)
        self._lister = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"list-{self.namespace}")
        self._running: set[str] = set()  # streams running at their last listing: followed

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

    def repo_hosts(self) -> tuple[HostRule, ...]:
        """The chart's `git.hosts` (annotation agentic-sdlc.dev/repo-hosts; an older chart without it:
        the defaults of the chart this package carries)."""
        text = self._template_defaults().get(naming.TEMPLATE_REPO_HOSTS) or chart_defaults().repo_hosts
        try:
            return repohosts.parse_rules(text, source=f"annotation {naming.TEMPLATE_REPO_HOSTS}")
        except repohosts.RepoURLError as exc:
            raise RunnerError(f"the PodTemplate {self.env.pod_template!r} has a bad {exc.field}: {exc.problem}. "
                              "Fix the chart values (git.hosts).") from None

    def git_secrets(self) -> tuple[str, ...]:
        text = self._template_defaults().get(naming.TEMPLATE_GIT_SECRETS) or ""
        return tuple(name for name in text.split(",") if name)

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
        if spec.ssh_secret is not None:
            _select_git_secret(pod, spec.ssh_secret, self.env.pod_template)
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
                    **({naming.ANNOTATION_SSH_SECRET: spec.ssh_secret} if spec.ssh_secret else {}),
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

    def _create_job(self, spec: TaskSpec) -> Obj:
        """POST the task's Job. Refused by the chart's admission policy: once more with the PodTemplate
        read afresh (a `helm upgrade` may have changed the shape since it was cached), and for a
        while when the policy has not seen its PodTemplate yet (a release installed a moment ago)."""
        give_up = time.monotonic() + ADMISSION_WAIT_SECONDS
        fresh = False
        while True:
            manifest = self.job_manifest(spec)
            try:
                return self.kube.request("POST", self._jobs, self._access("create", "jobs.batch"), body=manifest)
            except AdmissionDenied as exc:
                message = str(exc)
                if not fresh:
                    self._template, fresh = None, True
                    continue
                if "no params found" in message and time.monotonic() < give_up:
                    time.sleep(1.0)
                    continue
                raise RunnerError(
                    f"the admission policy of the chart release {self.env.release!r} refused the Job of task "
                    f"{spec.task_id}: {message}. The Job was made from the PodTemplate {self.env.pod_template!r} "
                    "as it is now; if the release was installed or upgraded just now, retry in a few seconds, "
                    "else ask its operator to check the release."
                ) from None

    def spawn(self, spec: TaskSpec) -> TaskHandle:
        name = naming.job_name(spec.task_id, spec.base_branch, spec.attempt)
        try:
            job = self._create_job(spec)
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
        check_same_repo(spec, annotations.get(naming.ANNOTATION_REPO))
        return self._handle(existing, created=False)

    # -- reading ---------------------------------------------------------------------------------

    def _list(
        self, path: str, resource: str, selector: str, query: Mapping[str, Any] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Obj:
        return dict(
            self.kube.request(
                "GET", path, self._access("list", resource), query={"labelSelector": selector, **(query or {})},
                decode=decode,
            )
        )

    def _jobs_and_pods(
        self, ref: TaskRef | None = None, limit: int | None = None, token: str | None = None,
        all_attempts: bool = False, brief: bool = False,
    ) -> tuple[list[Obj], dict[str, list[Obj]], Obj]:
        """The environment's task Jobs (one LIST; a page of `limit` from `token` on) and their pods
        by Job name (one LIST: of the page's Jobs only, when paged), and the Jobs' list metadata; of a
        retried task only its latest attempt unless `all_attempts`. `brief`: only the fields a status
        is derived from (`mcp_server.backends.brief`), for the callers that need no more."""
        jobs_decode = brief_view.decode_job_list if brief else None
        pods_decode = brief_view.decode_pod_list if brief else None
        selector = naming.selector(
            self.environment, ref.task_id if ref else None, ref.base_branch if ref else None
        )
        paged = limit is not None or token is not None
        # Unpaged, the two lists go at once (the pods' selector does not wait for the Jobs).
        pods_later = (
            None if paged else self._lister.submit(self._list, self._pods, "pods", selector, None, pods_decode)
        )
        try:
            listed = self._list(
                self._jobs, "jobs.batch", selector, {"limit": limit, "continue": token}, jobs_decode
            )
        except (BadRequest, Gone) as exc:
            if token is None:
                raise RunnerError(f"the Kubernetes API server refused to list jobs.batch: {exc}") from None
            problem = "it has expired" if isinstance(exc, Gone) else "it is not a continue token of this list"
            raise InvalidInput("continue_token", problem + "; list again from the start", CONTINUE_ALLOWED) from None
        jobs = list(listed.get("items") or [])
        pods_by_job: dict[str, list[Obj]] = {job["metadata"]["name"]: [] for job in jobs}
        pods: list[Obj] = []
        if pods_later is not None:
            pods = pods_later.result().get("items") or []
        elif jobs:
            pod_selector = f"{selector},batch.kubernetes.io/job-name in ({','.join(sorted(pods_by_job))})"
            pods = self._list(self._pods, "pods", pod_selector, decode=pods_decode).get("items") or []
        for pod in pods:
            owner = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") or (
                pod["metadata"].get("labels") or {}
            ).get("job-name")
            if owner in pods_by_job:
                pods_by_job[owner].append(pod)
        jobs.sort(key=lambda j: j["metadata"].get("creationTimestamp") or "", reverse=True)
        return (jobs if all_attempts else latest_attempts(jobs)), pods_by_job, dict(listed.get("metadata") or {})

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

    def _statuses(
        self, jobs: Sequence[Obj], pods_by_job: Mapping[str, list[Obj]], last_lines: bool = True,
        read_tails: bool = False,
    ) -> list[TaskStatus]:
        """Each Job's status; with `last_lines`, the last log line (and usage line) the log relay holds
        of its newest pod (no request: a pod nobody followed shows none); with `read_tails` (a one-shot
        CLI listing, which holds nothing), the last LIST_TAIL_LINES of each running pod are read first."""
        now = datetime.now(UTC)
        if read_tails:
            self._read_tails(jobs, pods_by_job)
        statuses = []
        for job in jobs:
            pods = pods_by_job.get(job["metadata"]["name"], [])
            pod = newest(pods)
            line = usage_line = None
            if last_lines and pod is not None:
                line = self.logs.last_line(pod["metadata"]["name"])
                usage_line = self.logs.last_usage_line(pod["metadata"]["name"])
            statuses.append(derive_status(job, pods, self.environment, now, line,
                                          log_usage=usage_from_lines([usage_line] if usage_line else [])))
        return statuses

    def _read_tails(self, jobs: Sequence[Obj], pods_by_job: Mapping[str, list[Obj]]) -> None:
        """The last LIST_TAIL_LINES of each running task's newest pod, TAIL_READERS requests at a time,
        noted for the relay's last line and usage so far."""
        running = []
        for job in jobs:
            pod = newest(pods_by_job.get(job["metadata"]["name"], []))
            if pod is not None and pod_started(pod) and not pod_terminated(pod):
                running.append(pod["metadata"]["name"])
        if not running:
            return
        with ThreadPoolExecutor(max_workers=min(TAIL_READERS, len(running))) as pool:
            tails = pool.map(lambda name: self._log(name, {"tailLines": LIST_TAIL_LINES}), running)
            for name, tail in zip(running, tails, strict=True):
                self.logs.note_lines(name, [t for t in tail.splitlines() if t.strip()])

    def list_tasks(self, read_tails: bool = False) -> list[TaskStatus]:
        jobs, pods_by_job, _meta = self._jobs_and_pods(brief=True)
        self.logs.keep_only(p["metadata"]["name"] for pods in pods_by_job.values() for p in pods)
        return self._statuses(jobs, pods_by_job, read_tails=read_tails)

    def list_page(self, limit: int | None, token: str | None, read_tails: bool = False) -> TaskPage:
        """A page of at most `limit` tasks from `token` (the API server's continue token) on."""
        jobs, pods_by_job, meta = self._jobs_and_pods(limit=limit, token=token, brief=True)
        remaining = meta.get("remainingItemCount")
        return TaskPage(
            self._statuses(jobs, pods_by_job, read_tails=read_tails), meta.get("continue") or None,
            int(remaining) if remaining is not None else None,
        )

    def _one(self, ref: TaskRef) -> tuple[Obj | None, list[Obj]]:
        jobs, pods_by_job, _meta = self._jobs_and_pods(ref)
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

    def task_spec(self, ref: TaskRef) -> TaskSpec:
        """What the task's latest Job was given: its pod's task context, the Job's deadline (whole
        minutes) and git Secret."""
        job, _pods = self._one(ref)
        if job is None:
            raise TaskNotFound.in_namespace([ref.task_id], self.environment, self.namespace, ref.base_branch)
        annotations = job.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        context = TaskContext.model_validate_json(annotations.get(naming.ANNOTATION_TASK_CONTEXT) or "{}")
        deadline = job.get("spec", {}).get("activeDeadlineSeconds")
        return TaskSpec(
            **context.model_dump(),
            timeout_minutes=-(-int(deadline) // 60) if deadline else None,
            ssh_secret=(job["metadata"].get("annotations") or {}).get(naming.ANNOTATION_SSH_SECRET),
        )

    # -- logs ------------------------------------------------------------------------------------

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        """Each selected task with its started pods (one LIST of Jobs, one of pods). A pod that has
        ended is read directly from then on (its follower, if any, is closed)."""
        jobs, pods_by_job, _meta = self._jobs_and_pods(brief=True)
        if refs is None:
            self.logs.keep_only(p["metadata"]["name"] for pods in pods_by_job.values() for p in pods)
        else:
            jobs = [j for j in jobs if any(ref.matches(*_ids(j)) for ref in refs)]
        statuses = self._statuses(jobs, pods_by_job, last_lines=False)
        tasks = []
        for status in statuses:
            streams = []
            unstarted: list[str] = []
            for pod in pods_by_job.get(status.job, []):
                created = pod["metadata"].get("creationTimestamp")
                if not pod_started(pod):
                    unstarted.append(created or "")
                    continue
                stream = LogStream(pod["metadata"]["name"], ended=pod_terminated(pod), created=created)
                if stream.ended:
                    self._running.discard(stream.name)
                    self.logs.stop(stream.name)
                else:
                    self._running.add(stream.name)
                streams.append(stream)
            since = min(unstarted) if unstarted else None
            tasks.append(TaskStreams(status, tuple(streams), since or (None if since is None else _EPOCH)))
        return tasks

    def read_stream(
        self, stream: str, position: StreamPosition, *, limit: int | None = None, fresh: bool = False
    ) -> StreamRead:
        """A running pod's lines from its follow stream (`mcp_server.logs.follow`: no request once
        it is open). Otherwise (an ended pod, a fresh read, a position older than what the follower
        holds) the `agent` container's log from the second of `position` on (timestamps, at most
        LOG_LIMIT_BYTES: a cut read says so and its last, maybe partial, line is dropped)."""
        if not fresh and stream in self._running:
            served = self.logs.read(stream, position, limit or LOG_LIMIT_LINES)
            if served is not None:
                return StreamRead(*served)
        query: dict[str, Any] = {"timestamps": "true", "limitBytes": LOG_LIMIT_BYTES}
        if position.after:
            query["sinceTime"] = since_time(position.after)
        body = self._log(stream, query)
        truncated = len(body.encode("utf-8")) >= LOG_LIMIT_BYTES
        lines = parse_timestamped(stream, body, truncated)
        self.logs.note_lines(stream, [line.text for line in lines])
        return StreamRead(lines, truncated)

    def _open_follow(self, stream: str, position: StreamPosition) -> FollowBody:
        """A follow stream of the `agent` container of pod `stream` from the second of `position`."""
        query: dict[str, Any] = {"container": naming.AGENT_CONTAINER, "follow": "true", "timestamps": "true"}
        if position.after:
            query["sinceTime"] = since_time(position.after)
        try:
            response = self.kube.stream(
                f"{self._pods}/{stream}/log", self._access("get", "pods/log"), query=query, timeout=FOLLOW_TIMEOUT
            )
        except NotFound:
            raise StreamGone(stream) from None
        return FollowBody(response)

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
        jobs, _pods, _meta = self._jobs_and_pods(TaskRef(task_id=task_id, base_branch=base), all_attempts=True)
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
        jobs, pods_by_job, _meta = self._jobs_and_pods(all_attempts=True, brief=True)
        statuses = self._statuses(jobs, pods_by_job, last_lines=False)
        taken, kept = cleanup_choice(statuses, older_than_seconds, datetime.now(UTC))
        chosen = [CleanupItem.from_status(status) for status in taken]
        if not dry_run:
            chosen = [item for item in chosen if self._delete_job(item.job)]
        return CleanupResult.of(dry_run, chosen, kept, f"environment {self.environment!r}")


class FollowBody:
    """An open follow response as the body a follower reads, chunk by chunk as it arrives."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response.stream(FOLLOW_CHUNK_BYTES, decode_content=True))

    def shutdown(self) -> None:
        self._response.shutdown()

    def close(self) -> None:
        self._response.close()


_EPOCH = "1970-01-01T00:00:00Z"
"""The creation time of a pod that has none (never, from an API server): nothing is left out."""


def _select_git_secret(pod: Obj, secret: str, template: str) -> None:
    """The task's git Secret in the `git-credentials` volume (the only pod field a task may choose;
    the chart's admission policy admits only the Secrets its PodTemplate lists)."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == naming.GIT_CREDENTIALS_VOLUME and isinstance(volume.get("secret"), dict):
            volume["secret"]["secretName"] = secret
            return
    raise RunnerError(f"the PodTemplate {template!r} has no {naming.GIT_CREDENTIALS_VOLUME} secret volume "
                      "(git.auth none?): a task cannot select a git Secret there. Fix the chart values.")


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
