"""The operations, shared by the MCP server (server.py) and the CLI (cli.py).

Inputs arrive as plain values and are validated here with the request models of `models.py`; every
failure is a `RunnerError`. The service keeps no state of its own beyond one backend per environment:
what it knows about tasks it reads back from the backend (the cluster) on every call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from mcp_server import logs, naming, repo, speckit
from mcp_server.backends.base import Backend
from mcp_server.config import EnvironmentSettings, Settings
from mcp_server.errors import (
    BackendUnavailable,
    ConfigError,
    Forbidden,
    InvalidInput,
    RunnerError,
    TaskNotFound,
)
from mcp_server.models import (
    PHASES,
    AgentInfo,
    AgentList,
    CancelResult,
    CleanupRequest,
    CleanupResult,
    ListAgentsRequest,
    LogChunk,
    LogLine,
    PlannedTask,
    SpawnAsyncRequest,
    SpawnAsyncResult,
    SpawnTaskRequest,
    StreamLogsRequest,
    TaskHandle,
    TaskLogState,
    TaskRef,
    TaskRequest,
    TaskSpec,
    TaskStatus,
)
from mcp_server.validation import parse

BackendFactory = Callable[[EnvironmentSettings, Settings], Backend]
OnBatch = Callable[[list[LogLine], list[TaskLogState]], Awaitable[None]]

FEATURE_DOCS = ("spec.md", "plan.md")
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

    # -- plumbing --------------------------------------------------------------------------------

    def backend(self, environment: str | None) -> Backend:
        env = self.settings.environment(environment)
        if env.name not in self._backends:
            self._backends[env.name] = self._factory(env, self.settings)
        return self._backends[env.name]

    @property
    def files(self) -> repo.RepoFiles:
        return repo.RepoFiles(
            self.settings.repo_root,
            self.settings.context_file_max_bytes,
            self.settings.context_total_max_bytes,
        )

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
        context_files: list[Any],
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

    # -- spawn -----------------------------------------------------------------------------------

    def spawn_task(self, **values: Any) -> TaskHandle:
        req = parse(SpawnTaskRequest, values)
        env = self.settings.environment(req.environment)
        root = self.settings.repo_root
        feature_dir = None
        if req.feature_dir is not None:
            feature_dir = self.files.relative(repo.inside(root, req.feature_dir, "feature_dir"))
        repo_url = req.repo or repo.origin_url(root)
        context_files = self.files.context_files(req.context_files)
        base = req.base_branch or self._base_branch(env.name)
        backend = self.backend(env.name)
        spec = self._spec(
            backend,
            task_id=req.task_id,
            description=req.description,
            repo_url=repo_url,
            base_branch=base,
            timeout_minutes=req.timeout_minutes,
            model=req.model,
            agent=req.agent,
            feature_dir=feature_dir,
            context_files=context_files,
        )
        return backend.spawn(spec)

    def _base_branch(self, environment: str) -> str:
        """The current branch of the repository; outside one, the environment's default base branch
        (the chart's `agentic-sdlc.dev/default-base-branch`), when the backend has one."""
        try:
            return repo.current_branch(self.settings.repo_root)
        except InvalidInput:
            default = getattr(self.backend(environment), "default_base_branch", None)
            branch = default() if callable(default) else None
            if not branch:
                raise
            return naming.validate_branch(branch, "base_branch")

    def spawn_async(self, **values: Any) -> SpawnAsyncResult:
        req = parse(SpawnAsyncRequest, values)
        env = self.settings.environment(req.environment)
        root = self.settings.repo_root
        tasks_path, text = repo.read_text(
            root, req.tasks_file, "tasks_file", TASKS_FILE_MAX_BYTES, "a spec-kit tasks.md"
        )
        tasks = speckit.parse_tasks(text)
        feature_dir = tasks_path.parent
        dag = speckit.read_waves(feature_dir)
        open_waves = speckit.open_async_waves(tasks, dag, req.task_ids)
        repo_url = req.repo or repo.origin_url(root)
        feature_rel = self.files.relative(feature_dir)
        docs = self._feature_docs(feature_dir)
        base = req.base_branch or self._base_branch(env.name)
        backend = self.backend(env.name)

        existing = {s.task_id: s for s in backend.list_tasks() if s.base_branch == base}
        state = speckit.AsyncState(feature_dir)
        by_wave = speckit.waves_with_all(tasks, dag)
        current = next(
            (k for k, wave in enumerate(by_wave) if any(not self._done(t, existing) for t in wave)),
            len(by_wave),
        )
        active = sum(1 for s in existing.values() if s.phase in ("pending", "running"))
        selected = {t.task_id for wave in open_waves for t in wave}

        plan: list[PlannedTask] = []
        specs: dict[str, TaskSpec] = {}
        for k, wave in enumerate(by_wave):
            for task in wave:
                if task.task_id not in selected:
                    continue
                entry = PlannedTask(
                    task_id=task.task_id, wave=k + 1, description=task.description, action="spawn"
                )
                if task.task_id in existing:
                    entry.action, entry.reason = "exists", f"phase {existing[task.task_id].phase}"
                elif k > current:
                    blockers = [t.task_id for t in by_wave[current] if not self._done(t, existing)]
                    entry.action = "wait"
                    entry.reason = f"wave {current + 1} is not finished ({', '.join(blockers)})"
                elif active >= req.max_parallel:
                    entry.action, entry.reason = "wait", f"max_parallel ({req.max_parallel}) tasks are active"
                else:
                    active += 1
                    specs[task.task_id] = self._spec(
                        backend,
                        task_id=task.task_id,
                        description=task.description or task.task_id,
                        repo_url=repo_url,
                        base_branch=base,
                        timeout_minutes=req.timeout_minutes,
                        model=req.model,
                        agent=None,
                        feature_dir=feature_rel,
                        context_files=docs,
                    )
                plan.append(entry)

        handles: list[TaskHandle] = []
        if not req.dry_run:
            for status in existing.values():
                if status.task_id in selected:
                    state.record(status)
            by_id = {t.task_id: t for t in tasks}
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
        for entry in plan:
            if entry.action == "exists":
                handles.append(TaskHandle.from_status(existing[entry.task_id]))
        counts = {
            action: sum(1 for e in plan if e.action == action) for action in ("spawn", "exists", "wait")
        }
        verb = "would spawn" if req.dry_run else "spawned"
        message = f"{verb} {counts['spawn']}, {counts['exists']} already exist, {counts['wait']} waiting" + (
            " (call again when the running tasks have finished)" if counts["wait"] else ""
        )
        return SpawnAsyncResult(
            tasks_file=self.files.relative(tasks_path),
            base_branch=base,
            environment=backend.environment,
            dry_run=req.dry_run,
            waves=[[t.task_id for t in wave] for wave in open_waves],
            plan=plan,
            handles=handles,
            message=message,
        )

    @staticmethod
    def _done(task: speckit.SpecTask, existing: dict[str, TaskStatus]) -> bool:
        status = existing.get(task.task_id)
        return task.done or (status is not None and status.phase == "succeeded")

    def _feature_docs(self, feature_dir: Path) -> list[Any]:
        docs = []
        for name in FEATURE_DOCS:
            path = feature_dir / name
            if path.is_file():
                try:
                    docs.extend(self.files.context_files([self.files.relative(path.resolve())]))
                except InvalidInput:
                    continue  # too big or not text: the agent reads it from the clone
        return docs

    # -- read ------------------------------------------------------------------------------------

    def list_agents(self, **values: Any) -> AgentList:
        req = parse(ListAgentsRequest, values)
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

    def status(self, **values: Any) -> TaskStatus:
        req = parse(TaskRequest, values)
        return self.backend(req.environment).status(TaskRef(task_id=req.task_id, base_branch=req.base_branch))

    def cancel(self, **values: Any) -> CancelResult:
        req = parse(TaskRequest, values)
        return self.backend(req.environment).cancel(TaskRef(task_id=req.task_id, base_branch=req.base_branch))

    def cleanup(self, **values: Any) -> CleanupResult:
        req = parse(CleanupRequest, values)
        older = req.older_than_minutes * 60 if req.older_than_minutes is not None else None
        return self.backend(req.environment).cleanup(older, req.dry_run)

    # -- logs ------------------------------------------------------------------------------------

    async def stream_logs(self, on_batch: OnBatch | None = None, **values: Any) -> LogChunk:
        """New lines since the cursor, waiting up to wait_seconds for them. `on_batch` sees every read
        (also empty ones) as it happens. An unreachable API server is retried until the wait is over."""
        req = parse(StreamLogsRequest, values)
        env = self.settings.environment(req.environment)
        positions = logs.decode_cursor(req.cursor, env.name)
        backend = self.backend(env.name)
        refs = [TaskRef(task_id=i, base_branch=req.base_branch) for i in req.task_ids] or None
        deadline = time.monotonic() + req.wait_seconds
        collected: list[LogLine] = []
        states: dict[str, TaskLogState] = {}
        more = False
        error: RunnerError | None = None
        reads = 0
        while True:
            try:
                batch = await anyio.to_thread.run_sync(
                    backend.read_logs, refs, positions, req.max_lines - len(collected)
                )
            except BackendUnavailable as exc:
                error, batch = exc, None
            except Forbidden as exc:
                # After a successful read in this call, a 403 is an API server that has just restarted
                # and not yet loaded its RBAC rules: retry until the wait is over.
                if reads == 0:
                    raise
                error, batch = exc, None
            if batch is not None:
                if reads == 0 and refs is not None:
                    missing = [r.task_id for r in refs if all(t.task_id != r.task_id for t in batch.tasks)]
                    if missing:
                        raise TaskNotFound.in_namespace(missing, backend.environment, backend.namespace)
                reads += 1
                positions, more = batch.positions, batch.more
                collected.extend(batch.lines)
                gone = {job: s for job, s in states.items() if all(t.job != job for t in batch.tasks)}
                states = {t.job: t for t in batch.tasks}
                states.update(
                    {
                        job: s.model_copy(update={"phase": "cancelled", "finished": True})
                        if not s.finished
                        else s
                        for job, s in gone.items()
                    }
                )
                if on_batch is not None:
                    await on_batch(batch.lines, list(states.values()))
                if len(collected) >= req.max_lines or (states and all(s.finished for s in states.values())):
                    break
            elif on_batch is not None:
                await on_batch([], list(states.values()))
            now = time.monotonic()
            if now >= deadline:
                break
            if batch is None or not more:
                await anyio.sleep(min(self.settings.log_poll_seconds, deadline - now))
        if error is not None and (reads == 0 or (isinstance(error, Forbidden) and batch is None)):
            raise error
        tasks = list(states.values())
        return LogChunk(
            lines=collected,
            tasks=tasks,
            cursor=logs.encode_cursor(backend.environment, positions),
            more=more,
            all_finished=bool(tasks) and all(t.finished for t in tasks),
        )
