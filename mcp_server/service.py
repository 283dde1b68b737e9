"""The operations, shared by the MCP server (server.py) and the CLI (cli.py).

Each operation takes its request model (validated once, at the edge: the MCP tool's input or the
CLI's arguments) and returns its result model; every failure is a `RunnerError`. The service keeps
no state of its own beyond one backend per environment and what it learnt of the repository it runs
in: what it knows about tasks it reads back from the backend (the cluster) on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mcp_server import naming, repo, speckit
from mcp_server.backends.base import Backend
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.errors import ConfigError, InvalidInput, RunnerError, TaskNotFound
from mcp_server.logs import relay
from mcp_server.logs.cursor import decode_cursor, encode_cursor
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
    SpawnAsyncRequest,
    SpawnAsyncResult,
    SpawnTaskRequest,
    StreamLogsRequest,
    StreamPosition,
    TaskHandle,
    TaskRef,
    TaskRequest,
    TaskSpec,
    TaskStatus,
)
from mcp_server.planning import plan_spawns
from mcp_server.runner.contract import ContextFile

BackendFactory = Callable[[EnvironmentSettings, Settings], Backend]

FEATURE_DOCS = ("spec.md", "plan.md", "tasks.md")
"""The feature documents that go into the prompt of a task of a feature (when they fit)."""
TASKS_FILE = "tasks.md"
TASKS_FILE_MAX_BYTES = 1024 * 1024
CONTEXT_JSON_MAX_BYTES = 200 * 1024  # the pod annotation; all annotations together must stay < 256 KiB


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


class RunnerService:
    def __init__(self, settings: Settings, backend_factory: BackendFactory = default_backend_factory) -> None:
        self.settings = settings
        self._factory = backend_factory
        self._backends: dict[str, Backend] = {}
        self.repository = repo.Repository(settings.repo_root)
        self.files = repo.RepoFiles(
            settings.repo_root, settings.context_file_max_bytes, settings.context_total_max_bytes
        )

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
    ) -> TaskSpec:
        branch = naming.render_branch(backend.branch_pattern(), base_branch, task_id)
        spec = TaskSpec(
            task_id=task_id,
            description=description,
            repo=repo_url,
            base_branch=base_branch,
            task_branch=branch,
            environment=backend.environment,
            model=model,
            agent=agent,
            feature_dir=feature_dir,
            context_files=context_files,
            timeout_minutes=timeout_minutes,
        )
        size = len(spec.context().model_dump_json().encode("utf-8"))
        if size > CONTEXT_JSON_MAX_BYTES:
            raise InvalidInput(
                "context_files",
                f"the task context would have {size} bytes",
                f"at most {CONTEXT_JSON_MAX_BYTES} bytes with the description",
            )
        return spec

    def _feature_docs(self, feature_dir: Path) -> list[ContextFile]:
        """The feature's documents that exist and fit the context limits (the agent reads the others
        from its clone)."""
        docs: list[ContextFile] = []
        for name in FEATURE_DOCS:
            path = feature_dir / name
            if path.is_file():
                try:
                    docs.extend(self.files.context_files([self.files.relative(path.resolve())]))
                except InvalidInput:
                    continue  # too big or not text
        return docs

    def _task_line(self, feature_dir: Path, task_id: str) -> str | None:
        """The description of `task_id` on its line of the feature's tasks.md, if there is one."""
        tasks_md = feature_dir / TASKS_FILE
        if not tasks_md.is_file():
            return None
        _path, text = repo.read_text(
            self.settings.repo_root, self.files.relative(tasks_md.resolve()), "feature_dir",
            TASKS_FILE_MAX_BYTES, "a spec-kit tasks.md",
        )
        task = next((t for t in speckit.parse_tasks(text, "feature_dir") if t.task_id == task_id), None)
        return task.description if task is not None and task.description else None

    # -- spawn -----------------------------------------------------------------------------------

    def spawn_task(self, req: SpawnTaskRequest) -> TaskHandle:
        root = self.settings.repo_root
        feature_path = repo.inside(root, req.feature_dir, "feature_dir") if req.feature_dir is not None else None
        description = req.description
        if description is None and feature_path is not None:
            description = self._task_line(feature_path, req.task_id)
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
            known = {f.path for f in context_files}
            context_files += [doc for doc in self._feature_docs(feature_path) if doc.path not in known]
        backend = self.backend(env.name)
        spec = self._spec(
            backend,
            task_id=req.task_id,
            description=description,
            repo_url=repo_url,
            base_branch=self._base_branch(req.base_branch, backend),
            timeout_minutes=req.timeout_minutes,
            model=req.model,
            agent=req.agent,
            feature_dir=feature_dir,
            context_files=context_files,
        )
        return backend.spawn(spec)

    def spawn_async(self, req: SpawnAsyncRequest) -> SpawnAsyncResult:
        env = self.settings.environment(req.environment)
        root = self.settings.repo_root
        tasks_path, text = repo.read_text(
            root, req.tasks_file, "tasks_file", TASKS_FILE_MAX_BYTES, "a spec-kit tasks.md"
        )
        tasks = speckit.parse_tasks(text)
        feature_dir = tasks_path.parent
        dag = speckit.read_waves(feature_dir)
        speckit.open_async_waves(tasks, dag, req.task_ids)  # refuses unknown task_ids before anything
        repo_url = req.repo or self.repository.origin_url()
        feature_rel = self.files.relative(feature_dir)
        docs = self._feature_docs(feature_dir)
        backend = self.backend(env.name)
        base = self._base_branch(req.base_branch, backend)

        existing = {s.task_id: s for s in backend.list_tasks() if s.base_branch == base}
        plan = plan_spawns(tasks, dag, existing, req.max_parallel, req.task_ids)
        by_id = {t.task_id: t for t in tasks}
        specs = {
            task_id: self._spec(
                backend,
                task_id=task_id,
                description=by_id[task_id].description or task_id,
                repo_url=repo_url,
                base_branch=base,
                timeout_minutes=req.timeout_minutes,
                model=req.model,
                agent=None,
                feature_dir=feature_rel,
                context_files=docs,
            )
            for task_id in plan.ids("spawn")
        }

        handles: list[TaskHandle] = []
        if not req.dry_run:
            state = speckit.AsyncState(feature_dir)
            selected = {entry.task_id for entry in plan.entries}
            for status in existing.values():
                if status.task_id in selected:
                    state.record(status)
            for task_id, spec in specs.items():
                handle = backend.spawn(spec)
                handles.append(handle)
                state.write_prompt(by_id[task_id], handle)
                state.update_meta(
                    task_id,
                    {
                        "status": "delegated",
                        "job": handle.job,
                        "branch": handle.branch,
                        "environment": handle.environment,
                    },
                )
        handles += [TaskHandle.from_status(existing[task_id]) for task_id in plan.ids("exists")]
        counts = {action: len(plan.ids(action)) for action in ("spawn", "exists", "wait")}
        verb = "would spawn" if req.dry_run else "spawned"
        message = f"{verb} {counts['spawn']}, {counts['exists']} already exist, {counts['wait']} waiting" + (
            " (call again when the running tasks have finished)" if counts["wait"] else ""
        )
        return SpawnAsyncResult(
            tasks_file=self.files.relative(tasks_path),
            base_branch=base,
            environment=backend.environment,
            dry_run=req.dry_run,
            waves=plan.waves,
            plan=plan.entries,
            handles=handles,
            message=message,
        )

    # -- read ------------------------------------------------------------------------------------

    def list_agents(self, req: ListAgentsRequest) -> AgentList:
        if not req.all_environments:
            names = [self.settings.environment(req.environment).name]
        else:
            names = sorted(self.settings.environments)
        agents: list[AgentInfo] = []
        errors: list[str] = []
        for name in names:
            try:
                agents.extend(AgentInfo.from_status(s) for s in self.backend(name).list_tasks())
            except RunnerError as exc:
                if not req.all_environments:
                    raise
                errors.append(f"{name}: {exc}")
        counts = {phase: sum(1 for a in agents if a.phase == phase) for phase in PHASES}
        return AgentList(environments=names, agents=agents, counts=counts, errors=errors)

    def status(self, req: TaskRequest) -> TaskStatus:
        return self.backend(req.environment).status(TaskRef(task_id=req.task_id, base_branch=req.base_branch))

    def cancel(self, req: TaskRequest) -> CancelResult:
        return self.backend(req.environment).cancel(TaskRef(task_id=req.task_id, base_branch=req.base_branch))

    def cleanup(self, req: CleanupRequest) -> CleanupResult:
        older = req.older_than_minutes * 60 if req.older_than_minutes is not None else None
        return self.backend(req.environment).cleanup(older, req.dry_run)

    # -- logs ------------------------------------------------------------------------------------

    async def stream_logs(self, req: StreamLogsRequest, on_batch: relay.OnBatch | None = None) -> LogChunk:
        """New lines since the cursor, waiting up to wait_seconds for them (`mcp_server.logs.relay`).
        `on_batch` sees every read (also empty ones) as it happens."""
        env = self.settings.environment(req.environment)
        positions = decode_cursor(req.cursor, env.name)
        backend = self.backend(env.name)
        refs = [TaskRef(task_id=i, base_branch=req.base_branch) for i in req.task_ids] or None

        def read(at: dict[str, StreamPosition], max_lines: int) -> LogBatch:
            return relay.read_batch(backend, refs, at, max_lines)

        def check_selected(batch: LogBatch) -> None:
            if refs is None:
                return
            missing = [r.task_id for r in refs if all(t.task_id != r.task_id for t in batch.tasks)]
            if missing:
                raise TaskNotFound.in_namespace(missing, backend.environment, backend.namespace)

        followed = await relay.follow(
            read,
            positions,
            max_lines=req.max_lines,
            wait_seconds=req.wait_seconds,
            poll_seconds=self.settings.log_poll_seconds,
            on_batch=on_batch,
            on_first=check_selected,
        )
        return LogChunk(
            lines=followed.lines,
            tasks=followed.tasks,
            cursor=encode_cursor(backend.environment, followed.positions),
            more=followed.more,
            all_finished=bool(followed.tasks) and all(t.finished for t in followed.tasks),
        )
