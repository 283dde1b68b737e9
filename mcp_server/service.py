"""The operations, shared by the MCP server (server.py) and the CLI (cli.py).

Each operation takes its request model (validated once, at the edge: the MCP tool's input or the
CLI's arguments) and returns its result model; every failure is a `RunnerError`. The service keeps
no state of its own beyond one backend per environment and what it learnt of the repository it runs
in: what it knows about tasks it reads back from the backend (the cluster) on every call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mcp_server import feature, feature_docs, naming, repo, repohosts, retry, speckit
from mcp_server.async_state import AsyncState, delegation_prompt
from mcp_server.backends.base import Backend
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.errors import ConfigError, InvalidInput, RunnerError, TaskNotFound
from mcp_server.handoff import ObservingSource, Projector, register_doc_tasks
from mcp_server.logs import relay
from mcp_server.logs.cursor import decode_cursor, encode_cursor
from mcp_server.logs.positions import Resume
from mcp_server.merge import GitMerge, plan_merge
from mcp_server.models import (
    PHASES,
    AgentInfo,
    AgentList,
    CancelResult,
    CleanupRequest,
    CleanupResult,
    ListAgentsRequest,
    LogBatch,
    LogChunk,
    MergeRequest,
    MergeResult,
    RetryRequest,
    SpawnAsyncRequest,
    SpawnAsyncResult,
    SpawnTaskRequest,
    StreamLogsRequest,
    SyncRequest,
    SyncResult,
    TaskHandle,
    TaskRef,
    TaskRequest,
    TaskSpec,
    TaskStatus,
    UsageTotals,
)
from mcp_server.planning import plan_spawns, sync_ready
from mcp_server.runner.contract import ContextFile
from mcp_server.tasks_meta import TasksMeta
from mcp_server.timeutil import now

BackendFactory = Callable[[EnvironmentSettings, Settings], Backend]

TASKS_FILE = speckit.TASKS_FILE
TASKS_FILE_MAX_BYTES = 1024 * 1024
CONTEXT_JSON_MAX_BYTES = 200 * 1024  # the pod annotation; all annotations together must stay < 256 KiB
CONTEXT_RESERVE_BYTES = 8 * 1024
"""What the task context keeps free of the documents for its other fields."""


def default_backend_factory(environment: EnvironmentSettings, settings: Settings) -> Backend:
    if environment.backend == "kubernetes":
        from mcp_server.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(environment, settings)
    try:
        from mcp_server.backends.local import LocalBackend  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(
            f"environment {environment.name!r} uses the local backend, which is not available "
            "in this installation. Configure a cluster (AGENTIC_BACKEND=kubernetes)."
        ) from None
    return LocalBackend(environment, settings)  # type: ignore[no-any-return,unused-ignore]


def _check_repo(backend: Backend, url: str) -> None:
    """Refuse a repo the environment's host rules do not allow (before anything is created)."""
    rules = backend.repo_hosts()
    if rules is None:
        return
    try:
        repohosts.check_repo_url(url, rules, cluster=backend.name == "kubernetes")
    except repohosts.RepoURLError as exc:
        raise InvalidInput(exc.field, exc.problem, exc.allowed) from None


def _check_ssh_secret(backend: Backend, name: str | None) -> None:
    """Refuse a git Secret the environment does not list (before anything is created)."""
    if name is None:
        return
    allowed = backend.git_secrets()
    if name not in allowed:
        listed = (f"one of {', '.join(allowed)}" if allowed else
                  "none: this environment lists no git Secret a task may select (chart values git.secrets, "
                  "with git.auth ssh)")
        raise InvalidInput("ssh_secret", f"the git Secret {name} is not one environment "
                           f"{backend.environment!r} lists", listed)


class RunnerService:
    def __init__(
        self,
        settings: Settings,
        backend_factory: BackendFactory = default_backend_factory,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self._factory = backend_factory
        self._backends: dict[str, Backend] = {}
        self.repository = repo.Repository(settings.repo_root)
        self.files = repo.RepoFiles(
            settings.repo_root, settings.context_file_max_bytes, settings.context_total_max_bytes
        )
        self.projector = Projector(settings.repo_root, self._origin)

    # -- plumbing --------------------------------------------------------------------------------

    def backend(self, environment: str | None) -> Backend:
        env = self.settings.environment(environment)
        if env.name not in self._backends:
            self._backends[env.name] = self._factory(env, self.settings)
        return self._backends[env.name]

    def _base_branch(self, given: str | None, backend: Backend) -> str:
        """The given base branch, else the repository's current branch; outside a branch, the
        environment's default base branch (the chart's `task.baseBranch`), when it has one."""
        if given:
            return given
        try:
            return self.repository.current_branch()
        except InvalidInput:
            branch = backend.default_base_branch()
            if not branch:
                raise
            return naming.validate_branch(branch, "base_branch")

    def _spec(
        self,
        backend: Backend,
        *,
        task_id: str,
        description: str,
        repo_url: str,
        base_branch: str,
        timeout_minutes: int | None,
        model: str | None,
        agent: str | None,
        feature_dir: str | None,
        context_files: list[ContextFile],
        title: str | None = None,
        ssh_secret: str | None = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
    ) -> TaskSpec:
        _check_repo(backend, repo_url)
        _check_ssh_secret(backend, ssh_secret)
        branch = naming.render_branch(backend.branch_pattern(), base_branch, task_id)
        spec = TaskSpec(
            task_id=task_id,
            description=description,
            title=title,
            repo=repo_url,
            base_branch=base_branch,
            task_branch=branch,
            environment=backend.environment,
            model=model,
            agent=agent,
            feature_dir=feature_dir,
            context_files=context_files,
            timeout_minutes=timeout_minutes,
            ssh_secret=ssh_secret,
            max_cost=max_cost,
            max_tokens=max_tokens,
        )
        size = len(spec.context().model_dump_json().encode("utf-8"))
        if size > CONTEXT_JSON_MAX_BYTES:
            raise InvalidInput(
                "context_files",
                f"the task context would have {size} bytes",
                f"at most {CONTEXT_JSON_MAX_BYTES} bytes with the description",
            )
        return spec

    def _feature_docs(self, feature_dir: Path, description: str, given: list[ContextFile]) -> list[ContextFile]:
        """The feature's design documents that go along (`feature_docs`), within what the task
        context has left after the description and the given files."""
        used = sum(len(f.model_dump_json().encode("utf-8")) for f in given)
        budget = min(
            self.settings.context_total_max_bytes - used,
            CONTEXT_JSON_MAX_BYTES - CONTEXT_RESERVE_BYTES - len(description.encode("utf-8")) - used,
        )
        return feature_docs.bundle(
            self.settings.repo_root, feature_dir, max(0, budget), self.settings.context_file_max_bytes,
            {f.path for f in given},
        )

    def _tasks_doc(self, tasks_md: Path, field: str) -> speckit.TasksDoc:
        _path, text = repo.read_text(
            self.settings.repo_root, self.files.relative(tasks_md), field, TASKS_FILE_MAX_BYTES, "a spec-kit tasks.md"
        )
        return speckit.parse_tasks(text, field)

    def feature_dir(self, given: str | None, field: str = "feature") -> Path:
        """The spec-kit feature directory: `given`, else found as spec-kit finds it."""

        def branch() -> str | None:
            try:
                return self.repository.current_branch()
            except InvalidInput:
                return None

        return feature.resolve(self.settings.repo_root, given, self.environ, branch, field)

    def _origin(self) -> str | None:
        try:
            return self.repository.origin_url()
        except InvalidInput:
            return None

    # -- spawn -----------------------------------------------------------------------------------

    def spawn_task(self, req: SpawnTaskRequest) -> TaskHandle:
        root = self.settings.repo_root
        feature_path = repo.inside(root, req.feature_dir, "feature_dir") if req.feature_dir is not None else None
        title = req.description
        if title is None and feature_path is not None and (feature_path / TASKS_FILE).is_file():
            task = self._tasks_doc(feature_path / TASKS_FILE, "feature_dir").by_id().get(req.task_id)
            title = task.description if task is not None and task.description else None
        prompt = AsyncState(feature_path).prompt(req.task_id) if feature_path is not None else None
        description = prompt or title
        if description is None:
            raise InvalidInput(
                "description",
                "it was not given and no tasks.md line of the task was found",
                "the task text, or feature_dir with a tasks.md naming the task",
            )
        env = self.settings.environment(req.environment)
        repo_url = req.repo or self.repository.origin_url()
        context_files = self.files.context_files(req.context_files)
        feature_dir = None
        if feature_path is not None:
            feature_dir = self.files.relative(feature_path)
            context_files += self._feature_docs(feature_path, description, context_files)
        backend = self.backend(env.name)
        spec = self._spec(
            backend,
            task_id=req.task_id,
            description=description,
            title=title if prompt else None,
            repo_url=repo_url,
            base_branch=self._base_branch(req.base_branch, backend),
            timeout_minutes=req.timeout_minutes,
            model=req.model,
            agent=req.agent,
            feature_dir=feature_dir,
            context_files=context_files,
            ssh_secret=req.ssh_secret,
            max_cost=req.max_cost,
            max_tokens=req.max_tokens,
        )
        handle = backend.spawn(spec)
        if feature_path is not None:
            self._handed_over(feature_path, backend, [(spec, handle)])
        return handle

    def _handed_over(self, feature_path: Path, backend: Backend, made: list[tuple[TaskSpec, TaskHandle]]) -> None:
        """Tasks handed to agents: each one's delegation prompt (when spec-kit wrote none) and
        tasks_meta.json entry (in_progress), before the first observation. One status read for one
        task, one listing for a burst."""
        state = AsyncState(feature_path)
        for spec, handle in made:
            state.write_prompt_if_absent(
                delegation_prompt(spec.task_id, spec.summary, spec.feature_dir or "", handle.branch,
                                  handle.base_branch),
                spec.task_id,
            )
        if not made:
            return
        if len(made) == 1:
            handle = made[0][1]
            try:
                statuses = [backend.status(TaskRef(task_id=handle.task_id, base_branch=handle.base_branch))]
            except TaskNotFound:
                return
        else:
            jobs = {handle.job for _spec, handle in made}
            statuses = [s for s in backend.list_tasks() if s.job in jobs]
        self.projector.observe(statuses)

    def spawn_async(self, req: SpawnAsyncRequest) -> SpawnAsyncResult:
        env = self.settings.environment(req.environment)
        root = self.settings.repo_root
        if req.tasks_file is not None:
            tasks_path = repo.inside(root, req.tasks_file, "tasks_file")
        else:
            tasks_path = self.feature_dir(None, "tasks_file") / TASKS_FILE
        doc = self._tasks_doc(tasks_path, "tasks_file")
        feature_dir = tasks_path.parent
        dag = speckit.read_waves(feature_dir, [t.task_id for t in doc.tasks])
        speckit.check_selection(doc, req.task_ids)  # refuses unknown task_ids before anything
        repo_url = req.repo or self.repository.origin_url()
        feature_rel = self.files.relative(feature_dir)
        backend = self.backend(env.name)
        _check_repo(backend, repo_url)  # before the backend is read: a refusal touches nothing
        _check_ssh_secret(backend, req.ssh_secret)
        base = self._base_branch(req.base_branch, backend)
        meta = TasksMeta(feature_dir)
        state = AsyncState(feature_dir)

        existing = {s.task_id: s for s in backend.list_tasks() if s.base_branch == base}
        plan = plan_spawns(doc, dag, existing, req.max_parallel, req.task_ids, meta.completed())
        by_id = doc.by_id()
        specs = {}
        for task_id in plan.ids("spawn"):
            title = by_id[task_id].description or task_id
            description = state.prompt(task_id) or title
            specs[task_id] = self._spec(
                backend,
                task_id=task_id,
                description=description,
                title=title if description != title else None,
                repo_url=repo_url,
                base_branch=base,
                timeout_minutes=req.timeout_minutes,
                model=req.model,
                agent=None,
                feature_dir=feature_rel,
                context_files=self._feature_docs(feature_dir, description, []),
                ssh_secret=req.ssh_secret,
                max_cost=req.max_cost,
                max_tokens=req.max_tokens,
            )

        handles: list[TaskHandle] = []
        if not req.dry_run:
            register_doc_tasks(meta, doc.tasks, now())
            self.projector.observe(existing.values())
            workers = max(1, min(backend.spawn_parallelism, len(specs)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                handles = list(pool.map(backend.spawn, specs.values()))
            self._handed_over(feature_dir, backend, list(zip(specs.values(), handles, strict=True)))
        handles += [TaskHandle.from_status(existing[task_id]) for task_id in plan.ids("exists")]
        counts = {action: len(plan.ids(action)) for action in ("spawn", "exists", "wait")}
        verb = "would spawn" if req.dry_run else "spawned"
        message = f"{verb} {counts['spawn']}, {counts['exists']} already exist, {counts['wait']} waiting" + (
            " (call again when the running tasks have finished)" if counts["wait"] else ""
        )
        return SpawnAsyncResult(
            tasks_file=self.files.relative(tasks_path),
            feature_dir=feature_rel,
            base_branch=base,
            environment=backend.environment,
            dry_run=req.dry_run,
            waves=plan.waves,
            plan=plan.entries,
            handles=handles,
            warnings=doc.warnings,
            message=message,
        )

    # -- spec-kit: merge-back and sync --------------------------------------------------------------

    def _feature_tasks(
        self, feature_path: Path, backend: Backend, base: str | None, doc: speckit.TasksDoc
    ) -> dict[str, TaskStatus]:
        """The cluster's tasks of this feature (and feature branch), by task id. A task spawned
        without a feature directory counts when its id is one of tasks.md's."""
        rel = self.files.relative(feature_path)
        ids = set(doc.by_id())
        found: dict[str, TaskStatus] = {}
        for status in backend.list_tasks():
            if base is not None and status.base_branch != base:
                continue
            if status.feature_dir == rel or (status.feature_dir is None and status.task_id in ids):
                found.setdefault(status.task_id, status.model_copy(update={"feature_dir": rel}))
        return found

    def _feature(self, given: str | None) -> tuple[Path, speckit.TasksDoc, list[list[str]] | None]:
        feature_path = self.feature_dir(given)
        doc = self._tasks_doc(feature_path / TASKS_FILE, "feature")
        return feature_path, doc, speckit.read_waves(feature_path, [t.task_id for t in doc.tasks])

    def merge(self, req: MergeRequest) -> MergeResult:
        feature_path, doc, dag = self._feature(req.feature)
        rel = self.files.relative(feature_path)
        backend = self.backend(req.environment)
        base = self._base_branch(req.base_branch, backend)
        tasks = self._feature_tasks(feature_path, backend, base, doc)
        self.projector.observe(tasks.values())
        entries = plan_merge(doc, dag, tasks)
        pushed, conflict = False, None
        if not req.dry_run:
            git_merge = GitMerge(self.settings.repo_root)
            pushed, conflict = git_merge.run(git_merge.check(base, rel), entries, base, req.push)
        merged = {e.task_id for e in entries if e.action in ("merged", "merge")}
        ready = sync_ready(doc, dag, merged, TasksMeta(feature_path).completed())
        verb = "would merge" if req.dry_run else "merged"
        counts = {a: sum(1 for e in entries if e.action == a) for a in ("merge", "merged", "skip", "conflict")}
        message = f"{verb} {counts['merge'] if req.dry_run else counts['merged']} task branch(es) into {base}"
        message += f", skipped {counts['skip']}"
        if conflict is not None:
            message += f"; stopped at {conflict}: {next(e.detail for e in entries if e.task_id == conflict)}"
            message += " (merge aborted, working tree clean; resolve it by hand or rerun the task)"
        if pushed:
            message += f"; pushed {base}"
        if ready:
            message += f". Ready for the main session: {', '.join(ready)}"
        return MergeResult(
            feature_dir=rel,
            base_branch=base,
            dry_run=req.dry_run,
            entries=entries,
            pushed=pushed,
            conflict=conflict,
            sync_ready=ready,
            message=message + ".",
        )

    def sync(self, req: SyncRequest) -> SyncResult:
        feature_path, doc, _dag = self._feature(req.feature)
        backend = self.backend(req.environment)
        tasks = self._feature_tasks(feature_path, backend, req.base_branch, doc)
        register_doc_tasks(TasksMeta(feature_path), doc.tasks, now())
        changed = self.projector.observe(tasks.values())
        rel = self.files.relative(feature_path)
        return SyncResult(
            feature_dir=rel,
            tasks=sorted(tasks),
            changed=changed,
            message=f"{len(tasks)} task(s) of {rel} in environment {backend.environment!r}; "
            f"{len(changed)} brought up to date" + (f" ({', '.join(changed)})" if changed else "") + ".",
        )

    # -- read ------------------------------------------------------------------------------------

    def list_agents(self, req: ListAgentsRequest, read_tails: bool = False) -> AgentList:
        """`read_tails`: read each running task's last lines first (the CLI's one-shot listing, which
        holds no follow streams); the MCP tool reads no log (what the server holds is enough)."""
        paged = req.limit is not None or req.continue_token is not None
        if req.all_environments and paged:
            field = "limit" if req.limit is not None else "continue_token"
            raise InvalidInput(field, "pages are per environment", "empty with all_environments")
        if not req.all_environments:
            names = [self.settings.environment(req.environment).name]
        else:
            names = sorted(self.settings.environments)
        agents: list[AgentInfo] = []
        errors: list[str] = []
        page = None
        for name in names:
            try:
                backend = self.backend(name)
                if paged:
                    page = backend.list_page(req.limit, req.continue_token, read_tails=read_tails)
                    statuses = page.tasks
                else:
                    statuses = backend.list_tasks(read_tails=read_tails)
                self.projector.observe(statuses)
                agents.extend(AgentInfo.from_status(s) for s in statuses)
            except RunnerError as exc:
                if not req.all_environments:
                    raise
                errors.append(f"{name}: {exc}")
        counts = {phase: sum(1 for a in agents if a.phase == phase) for phase in PHASES}
        return AgentList(
            environments=names,
            agents=agents,
            counts=counts,
            errors=errors,
            continue_token=page.next_token if page is not None else None,
            remaining=page.remaining if page is not None else None,
            totals=UsageTotals.of(agents),
        )

    def status(self, req: TaskRequest) -> TaskStatus:
        status = self.backend(req.environment).status(TaskRef(task_id=req.task_id, base_branch=req.base_branch))
        self.projector.observe([status])
        return status

    def retry(self, req: RetryRequest) -> TaskHandle:
        """A new attempt of a task that ended badly, on its branch (`mcp_server.retry`); the spec-kit
        files say in_progress again."""
        backend = self.backend(req.environment)
        handle, _previous = retry.retry(backend, req)
        self.projector.observe([backend.status(TaskRef(task_id=handle.task_id, base_branch=handle.base_branch))])
        return handle

    def cancel(self, req: TaskRequest) -> CancelResult:
        backend = self.backend(req.environment)
        ref = TaskRef(task_id=req.task_id, base_branch=req.base_branch)
        try:
            before: TaskStatus | None = backend.status(ref)
        except TaskNotFound:
            before = None
        result = backend.cancel(ref)
        if before is not None and result.deleted_jobs and not before.finished:
            # The Job is gone with its end: the spec-kit files say so now.
            self.projector.observe([before.model_copy(update={"phase": "cancelled", "finished_at": now()})])
        return result

    def cleanup(self, req: CleanupRequest) -> CleanupResult:
        older = req.older_than_minutes * 60 if req.older_than_minutes is not None else None
        backend = self.backend(req.environment)
        if not req.dry_run:  # the last look at the tasks it deletes
            self.projector.observe(backend.list_tasks())
        return backend.cleanup(older, req.dry_run)

    # -- logs ------------------------------------------------------------------------------------

    async def stream_logs(self, req: StreamLogsRequest, on_batch: relay.OnBatch | None = None) -> LogChunk:
        """New lines since the cursor, waiting up to wait_seconds for them (`mcp_server.logs.relay`).
        `on_batch` sees every read (also empty ones) as it happens."""
        env = self.settings.environment(req.environment)
        resume = decode_cursor(req.cursor, env.name)
        backend = self.backend(env.name)
        refs = [TaskRef(task_id=i, base_branch=req.base_branch) for i in req.task_ids] or None

        source = ObservingSource(backend, self.projector)

        fresh = req.wait_seconds == 0  # a call that does not wait reads every stream itself, now

        def read(at: Resume, max_lines: int) -> relay.Batch:
            return relay.read_batch(source, refs, at, max_lines, fresh)

        def check_selected(batch: LogBatch) -> None:
            if refs is None:
                return
            missing = [r.task_id for r in refs if all(t.task_id != r.task_id for t in batch.tasks)]
            if missing:
                raise TaskNotFound.in_namespace(missing, backend.environment, backend.namespace)

        followed = await relay.follow(
            read,
            resume,
            max_lines=req.max_lines,
            wait_seconds=req.wait_seconds,
            poll_seconds=self.settings.log_poll_seconds,
            linger_seconds=self.settings.log_linger_seconds,
            on_batch=on_batch,
            on_first=check_selected,
        )
        return LogChunk(
            lines=followed.lines,
            tasks=followed.tasks,
            cursor=encode_cursor(backend.environment, followed.resume),
            more=followed.more,
            all_finished=bool(followed.tasks) and all(t.finished for t in followed.tasks),
        )
