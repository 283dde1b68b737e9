"""The MCP stdio server `agentic-runner-mcp`: the tools, thin over `service.py`.

Each tool's input schema is its request model from `models.py` (the same validation the CLI uses);
the SDK validates the arguments against it once, and the tool hands the service that request model.
Its output is a pydantic model (structured content + JSON text). A refused input or a failed
operation is a tool error whose text says what was wrong, with which input, and what to do.

The service (settings, the repository's git facts, the Kubernetes client) is built at the first
tool call, not before `tools/list`: start-up imports only the SDK and the request/result models.
When the configuration is unusable, the server still starts and every tool call reports why.
"""

from __future__ import annotations

import copy
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from mcp_server import __version__
from mcp_server.errors import RunnerError
from mcp_server.models import (
    AgentList,
    CancelResult,
    CleanupRequest,
    CleanupResult,
    ListAgentsRequest,
    LogChunk,
    LogLine,
    MergeRequest,
    MergeResult,
    RetryRequest,
    SpawnAsyncRequest,
    SpawnAsyncResult,
    SpawnTaskRequest,
    StreamLogsRequest,
    TaskHandle,
    TaskLogState,
    TaskRequest,
    TaskStatus,
)
from mcp_server.validation import invalid_input

if TYPE_CHECKING:  # the service (config, yaml, backends) is imported at the first tool call
    from mcp_server.service import RunnerService

SERVER_NAME = "agentic-runner"
HEARTBEAT_SECONDS = 5.0
PROGRESS_MESSAGE_MAX = 500

INSTRUCTIONS = """\
Run spec-kit [ASYNC] tasks as autonomous OpenCode agents, each in its own Kubernetes pod (or local
process), and watch them. Typical flow: spawn_async_tasks (or spawn_task_pod for one task) -> \
stream_task_logs repeatedly with the returned cursor until every task is finished -> \
get_task_status for each result (branch, commits, summary) -> merge_task_branches -> cleanup_tasks. \
list_agents shows every task; cancel_task stops one. Tasks handed to agents are theirs: do not do them \
yourself. Every observing call updates the feature's tasks_meta.json and .async_state/ files, which \
spec-kit's check-status reads. Tasks live in the cluster: they keep running when this session ends."""

ServiceGetter = Callable[[], "RunnerService"]


class RunnerMCPServer(MCPServer):
    """MCPServer whose input validation errors name the field and what is allowed (never the value)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:  # type: ignore[type-arg]
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(f"Error executing tool {name}: {invalid_input(exc.__cause__)}") from None
            raise


def _signature(request: type[BaseModel], output: type[BaseModel]) -> tuple[inspect.Signature, dict[str, Any]]:
    """A keyword-only signature with one parameter per request field (plus the MCP context)."""
    params = []
    annotations: dict[str, Any] = {}
    for name, field in request.model_fields.items():
        info = copy.copy(field)
        info.default = PydanticUndefined
        info.default_factory = None
        annotation = Annotated[field.annotation, info]
        if field.is_required():
            default = inspect.Parameter.empty
        else:
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
        annotations[name] = annotation
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    annotations["ctx"] = Context
    annotations["return"] = output
    return inspect.Signature(params, return_annotation=output), annotations


def _bounds(model: type[BaseModel], name: str) -> str:
    """`default D, max M` of a request field, from the model itself (the tool text never disagrees)."""
    info = model.model_fields[name]
    top = next(m.le for m in info.metadata if getattr(m, "le", None) is not None)
    return f"default {info.default:g}, max {top:g}"


def _add_tool(
    server: MCPServer,
    name: str,
    title: str,
    description: str,
    request: type[BaseModel],
    output: type[BaseModel],
    annotations: ToolAnnotations,
    run: Callable[[Context, Any], Awaitable[BaseModel]],
) -> None:  # type: ignore[type-arg]
    async def tool(ctx: Context, **arguments: Any) -> BaseModel:  # type: ignore[type-arg]
        try:
            # The SDK has validated every argument against the request model's own fields.
            return await run(ctx, request.model_construct(**arguments))
        except RunnerError as exc:
            raise ToolError(str(exc)) from None

    tool.__name__ = name
    tool.__signature__, tool.__annotations__ = _signature(request, output)  # type: ignore[attr-defined]
    server.add_tool(
        tool, name=name, title=title, description=description, annotations=annotations, structured_output=True
    )


def build_server(get_service: ServiceGetter) -> RunnerMCPServer:
    server = RunnerMCPServer(
        SERVER_NAME, title="Agentic SDLC Agent Runner", version=__version__, instructions=INSTRUCTIONS
    )
    read_only = ToolAnnotations(
        readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True
    )

    def call(operation: str) -> Callable[[Context, Any], Awaitable[BaseModel]]:  # type: ignore[type-arg]
        """The service's operation `operation`, run in a worker thread."""

        async def run(_ctx: Context, request: Any) -> BaseModel:  # type: ignore[type-arg]
            def invoke() -> BaseModel:
                result: BaseModel = getattr(get_service(), operation)(request)
                return result

            return await anyio.to_thread.run_sync(invoke)

        return run

    _add_tool(
        server,
        "spawn_task_pod",
        "Spawn an agent for one task",
        "Start an autonomous OpenCode agent on ONE task in its own pod (a Kubernetes Job made from the "
        "environment's chart). The agent clones `repo`, works on a new task branch (it contains the task "
        "id), commits and pushes. Returns at once with a handle; the task keeps running on its own. "
        "Idempotent: calling again for the same task_id and base_branch returns the existing task with "
        "created=false. Use spawn_async_tasks for all [ASYNC] tasks of a tasks.md; follow progress with "
        "stream_task_logs and read the result with get_task_status.",
        SpawnTaskRequest,
        TaskHandle,
        ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True),
        call("spawn_task"),
    )
    _add_tool(
        server,
        "spawn_async_tasks",
        "Spawn the [ASYNC] tasks of a spec-kit tasks.md",
        "Hand every open [ASYNC] task of a spec-kit tasks.md (not [X] done, not [SYNC]) to its own agent "
        "pod, in spec-kit's order: phase by phase (`## Phase N` headings), or wave by wave when the feature's "
        "tasks_dag.json has execution_waves, plus each task's `(depends on ...)`. A task starts only when "
        "every task of the earlier phases/waves ([SYNC] ones included) and every task it depends on is done "
        "([X] in tasks.md, completed in tasks_meta.json, or an agent task that succeeded); the plan says what "
        "each waiting task waits for. At most max_parallel of the feature's tasks run at once. The delegation "
        "prompt spec-kit's dispatch-async wrote (.async_state/delegation_prompts/<id>.md) is the agent's "
        "prompt; the feature's design documents go along. Call it again later to start the waiting ones; "
        "tasks already started are returned, not started twice. Every observing tool keeps the feature's "
        "tasks_meta.json and .async_state/ (what spec-kit's check-status reads) in step with the cluster. "
        "Do NOT implement the spawned tasks yourself. With dry_run it only returns the plan.",
        SpawnAsyncRequest,
        SpawnAsyncResult,
        ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True),
        call("spawn_async"),
    )

    async def stream(ctx: Context, request: StreamLogsRequest) -> BaseModel:  # type: ignore[type-arg]
        started = time.monotonic()
        sent = {"at": started, "progress": 0.0}

        async def on_batch(lines: list[LogLine], states: list[TaskLogState]) -> None:
            now = time.monotonic()
            if not lines and now - sent["at"] < HEARTBEAT_SECONDS:
                return
            if lines:
                message = f"[{lines[-1].task_id}] {lines[-1].text}"
            else:
                phases = ", ".join(f"{s.task_id} {s.phase}" for s in states) or "no tasks yet"
                message = f"waiting for log lines ({phases})"
            progress = max(round(now - started, 3), sent["progress"] + 0.001)
            sent.update(at=now, progress=progress)
            await ctx.report_progress(progress, None, message[:PROGRESS_MESSAGE_MAX])

        service = await anyio.to_thread.run_sync(get_service)
        return await service.stream_logs(request, on_batch=on_batch)

    _add_tool(
        server,
        "stream_task_logs",
        "Stream the agents' logs",
        "Return the new log lines of tasks since `cursor`, each with its task id, plus every task's phase "
        f"and the next cursor. Waits up to wait_seconds ({_bounds(StreamLogsRequest, 'wait_seconds')}) for the "
        "first line, sending progress notifications with the latest line meanwhile; once lines are there it "
        "gathers a moment more (up to max_lines) and returns; it also returns when every selected task is "
        "finished. "
        "Call it again with the returned cursor to continue exactly after the last "
        "line (no line is lost or repeated, also across server restarts). Empty task_ids: every task of "
        "the environment, including ones started later. `more`=true means lines are already waiting. "
        "wait_seconds 0 reads every log once, now; waiting calls are served from streams the server "
        "keeps open.",
        StreamLogsRequest,
        LogChunk,
        read_only,
        stream,
    )
    _add_tool(
        server,
        "list_agents",
        "List the agent tasks",
        "List every task of an environment (or of all configured environments): task id, branch, phase "
        "(pending, running, succeeded, failed, timed_out, cancelled, budget_exceeded, stalled), attempt, "
        "step, age, duration, node, result summary, usage (tokens, cost, steps, tool calls; while running: "
        "so far, from the lines this server has seen) and the last log line this server has seen "
        "(stream_task_logs; get_task_status reads it for one task), newest first, with counts per phase and "
        "usage totals per environment and feature. For a large namespace, page with limit and the "
        "result's continue_token.",
        ListAgentsRequest,
        AgentList,
        read_only,
        call("list_agents"),
    )
    _add_tool(
        server,
        "get_task_status",
        "Get one task's status and result",
        "Everything about one task: phase and why, times, pod and node, exit code, last log line and the "
        "structured result the agent reported (status succeeded/failed/no_changes/timed_out/cancelled/"
        "budget_exceeded/stalled, usage, "
        "branch, commits, head_sha, pushed, files_changed, summary, error).",
        TaskRequest,
        TaskStatus,
        read_only,
        call("status"),
    )
    _add_tool(
        server,
        "retry_task",
        "Retry a task that failed, timed out, passed its budget or stalled",
        "Start the next attempt of a task that ended failed, timed_out, budget_exceeded or stalled: the same "
        "task context (model, agent, budgets unless given anew), continuing from the task branch's pushed "
        "head (the previous attempt's work in progress) unless fresh, with the previous attempt's error "
        "and the end of its log in the prompt. Attempts are numbered (`attempt`, the Job name ends in "
        "-a<n>); racing retries make one attempt. A running, pending, succeeded or cancelled task is "
        "refused and nothing is created. The spec-kit files say in_progress again.",
        RetryRequest,
        TaskHandle,
        ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True),
        call("retry"),
    )
    _add_tool(
        server,
        "cancel_task",
        "Cancel a task",
        "Stop a task now: deletes its Job and its pod. The agent gets the pod's grace period to commit and "
        "push its work so far (a WIP commit on the task branch); the call waits for that and returns what "
        "was deleted and the result the agent reported (`result`). Idempotent: cancelling a task that is "
        "gone already deletes nothing and says so.",
        TaskRequest,
        CancelResult,
        ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=True),
        call("cancel"),
    )
    _add_tool(
        server,
        "merge_task_branches",
        "Merge the succeeded task branches into the feature branch",
        "Merge-back for a spec-kit feature: fetch each succeeded agent task's pushed branch and merge it into "
        "the feature branch checked out in this repository, in the feature's dependency order (phases or "
        "tasks_dag.json waves, then `depends on`), with --no-ff and never forcing; then push the feature "
        "branch (fast-forward only). It stops at the first conflict, names the files and aborts that merge, "
        "so the working tree is left clean. Already merged tasks are skipped. Run it when a phase's [ASYNC] "
        "tasks have finished and before a [SYNC] task that depends on them; `sync_ready` lists the [SYNC] "
        "tasks that can start then. With dry_run it only shows the plan.",
        MergeRequest,
        MergeResult,
        ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True),
        call("merge"),
    )
    _add_tool(
        server,
        "cleanup_tasks",
        "Clean up finished tasks",
        "Delete finished tasks (succeeded, failed, timed out, cancelled) that finished longer ago than "
        "older_than_minutes, or all finished ones when it is empty. Running and pending tasks are never "
        "touched. With dry_run it lists what it would delete. Pushed branches stay.",
        CleanupRequest,
        CleanupResult,
        ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=True),
        call("cleanup"),
    )
    return server


def prepared_service(build: Callable[[], RunnerService] | None = None) -> ServiceGetter:
    """The service, built once, at the first tool call (so `tools/list` needs none of it); a
    configuration it cannot use is reported by every tool call instead, so the client still sees the
    tools and the reason."""
    lock = threading.Lock()
    built: list[RunnerService] = []
    failed: list[RunnerError] = []

    def default() -> RunnerService:
        from mcp_server.config import load_settings
        from mcp_server.service import RunnerService

        return RunnerService(load_settings())

    def get() -> RunnerService:
        with lock:
            if not built and not failed:
                try:
                    built.append((build or default)())
                except RunnerError as exc:  # a ConfigError, or an unknown AGENTIC_ENV
                    failed.append(exc)
        if failed:
            raise failed[0]
        return built[0]

    return get


def main() -> None:
    build_server(prepared_service()).run("stdio")
