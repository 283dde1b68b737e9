"""The data the server, the CLI and the backends exchange (pydantic at the edges).

- Input field types (`TaskIdField`, `BranchField`, ...) carry their JSON-schema constraints and a
  validator that refuses bad input with an `InvalidInput`-style message; the MCP tools and the CLI use
  the same types, so both refuse the same things with the same words.
- `TaskContext` is the JSON document the pod reads (docs/contracts.md, "Task context").
- `TaskSpec` is a fully resolved request handed to a backend's `spawn`.
- `TaskHandle`, `TaskStatus`, `AgentInfo`, `LogChunk`, ... are what the tools return.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from mcp_server import naming
from mcp_server.errors import InvalidInput
from mcp_server.runner.contract import TaskContext  # the runner's contract, also the server's
from mcp_server.runner.result import TaskResult, TaskUsage

Phase = Literal[
    "pending", "running", "succeeded", "failed", "timed_out", "cancelled", "budget_exceeded", "stalled"
]
PHASES: tuple[str, ...] = (
    "pending", "running", "succeeded", "failed", "timed_out", "cancelled", "budget_exceeded", "stalled"
)
FINISHED_PHASES = frozenset({"succeeded", "failed", "timed_out", "cancelled", "budget_exceeded", "stalled"})
RETRYABLE_PHASES = frozenset({"failed", "timed_out", "budget_exceeded", "stalled"})
"""The phases retry_task starts a new attempt from."""
BackendName = Literal["kubernetes", "local"]
CANCELLING = "Cancelled"
"""The reason of a task whose cancel is under way: a Job being deleted, a local run being stopped."""


def _checked(check: Callable[[str, str], str]) -> AfterValidator:
    """Run a naming check; turn its InvalidInput into a pydantic error that keeps problem + allowed.

    The field name is filled in from the error location by `mcp_server.validation`."""

    def validate(value: str) -> str:
        try:
            return check(value, "value")
        except InvalidInput as exc:
            raise PydanticCustomError("invalid_input", exc.problem, {"allowed": exc.allowed or ""}) from None

    return AfterValidator(validate)


TaskIdField = Annotated[
    str,
    Field(
        description="Task id, e.g. the spec-kit id `T012`.",
        json_schema_extra={
            "pattern": r"^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$",
            "maxLength": naming.TASK_ID_MAX,
        },
    ),
    _checked(naming.validate_task_id),
]
BranchField = Annotated[
    str,
    Field(json_schema_extra={"pattern": r"^[A-Za-z0-9+_][A-Za-z0-9/._+-]*$", "maxLength": naming.BRANCH_MAX}),
    _checked(naming.validate_branch),
]
RepoField = Annotated[
    str,
    Field(json_schema_extra={"maxLength": naming.REPO_MAX}),
    _checked(naming.validate_repo_url),
]
NameField = Annotated[
    str,
    Field(json_schema_extra={"pattern": r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"}),
    _checked(naming.validate_name),
]
SecretNameField = Annotated[
    str,
    Field(json_schema_extra={"pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}),
    _checked(naming.validate_secret_name),
]
EnvironmentField = Annotated[
    str,
    Field(json_schema_extra={"pattern": r"^[a-z][a-z0-9-]{0,19}$"}),
    _checked(naming.validate_environment_name),
]
CONTINUE_TOKEN_MAX = 4096
CONTINUE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_=-]+$")


def _continue_token(value: str, field: str) -> str:
    if not 0 < len(value) <= CONTINUE_TOKEN_MAX or CONTINUE_TOKEN_RE.fullmatch(value) is None:
        raise InvalidInput(
            field,
            "it is not a continue token of list_agents",
            "the `continue_token` of the previous list_agents result of the same environment, or empty",
        )
    return value


ContinueTokenField = Annotated[
    str,
    Field(json_schema_extra={"pattern": CONTINUE_TOKEN_RE.pattern, "maxLength": CONTINUE_TOKEN_MAX}),
    _checked(_continue_token),
]
DescriptionField = Annotated[str, Field(min_length=1, max_length=4000)]
TimeoutMinutesField = Annotated[int, Field(ge=1, le=1440)]
MaxCostField = Annotated[float, Field(gt=0, le=100000)]
MaxTokensField = Annotated[int, Field(ge=1, le=10_000_000_000)]
_MAX_COST_DESCRIPTION = (
    "Budget in USD: the agent is stopped (status budget_exceeded, work so far pushed) once the cost "
    "OpenCode computes from the model's prices passes it. Default: the environment's (chart) default."
)
_MAX_TOKENS_DESCRIPTION = (
    "Budget in tokens (input, output, reasoning, cache read and write): as max_cost. Default: the "
    "environment's (chart) default."
)
RepoPathField = Annotated[str, Field(min_length=1, max_length=1024)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- what goes into the pod (the runner's contract: runner/contract.py) -----------------------


class TaskSpec(TaskContext):
    """A resolved task handed to a backend. `timeout_minutes=None` means the environment's default."""

    timeout_minutes: int | None = None
    attempt: int = Field(1, ge=1, description="Which attempt of the task (retry_task makes the next).")
    previous_usage: TaskUsage | None = None
    """What the task's earlier attempts used together (a retry's)."""
    title: str | None = None
    """The task's line (its Job's description annotation) when `description` is a longer prompt,
    such as the delegation prompt spec-kit wrote for it."""
    ssh_secret: str | None = None
    """The git Secret the git containers mount (one the environment lists); None: its default."""

    def context(self) -> TaskContext:
        return TaskContext.model_validate(
            self.model_dump(exclude={"timeout_minutes", "title", "ssh_secret", "attempt", "previous_usage"})
        )

    @property
    def summary(self) -> str:
        """What the task is, in one line (at most 500 characters)."""
        lines = (self.title or self.description).strip().splitlines()
        text = lines[0] if lines else ""
        return text if len(text) <= 500 else text[:499] + "…"


# -- what comes back ----------------------------------------------------------------------------


class TaskHandle(_Model):
    task_id: str
    job: str = Field(description="Name of the Kubernetes Job (or the local run) of the task.")
    namespace: str
    environment: str
    branch: str = Field(description="The task branch the agent commits to and pushes.")
    base_branch: str
    created: bool = Field(description="False when the task already existed and was returned as is.")
    backend: BackendName = "kubernetes"
    attempt: int = Field(1, description="Which attempt of the task (retry_task makes the next).")

    @classmethod
    def from_status(cls, status: TaskStatus, created: bool = False) -> TaskHandle:
        """The handle of a task that exists; `created`: this call made it."""
        return cls(
            task_id=status.task_id,
            job=status.job,
            namespace=status.namespace,
            environment=status.environment,
            branch=status.branch or "",
            base_branch=status.base_branch or "",
            created=created,
            backend=status.backend,
            attempt=status.attempt,
        )


class TaskRef(_Model):
    """Which task: its id, and the feature branch when the id exists on several."""

    task_id: str
    base_branch: str | None = None

    def matches(self, task_id: str | None, base_branch: str | None) -> bool:
        """A task with this id and base branch is the one named (any base branch when none is)."""
        return task_id == self.task_id and self.base_branch in (None, base_branch)


class TaskStatus(_Model):
    task_id: str
    environment: str
    namespace: str
    job: str
    backend: BackendName = "kubernetes"
    base_branch: str | None = None
    branch: str | None = None
    repo: str | None = None
    description: str | None = None
    feature_dir: str | None = Field(None, description="The spec-kit feature directory of the task (repo-relative).")
    phase: Phase
    attempt: int = Field(1, description="Which attempt of the task this is (retry_task makes the next).")
    step: str | None = Field(None, description="The runner's last reported step (clone, agent, push, ...).")
    reason: str | None = Field(None, description="Why the task is in its phase, e.g. DeadlineExceeded.")
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    age_seconds: float | None = None
    duration_seconds: float | None = None
    node: str | None = None
    pods: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    last_log_line: str | None = None
    result: TaskResult | None = None
    usage: TaskUsage | None = Field(
        None, description="Tokens, cost, steps, tool calls: the final figure of a finished task, the usage "
        "so far (its latest usage log line) of a running one.")
    previous_usage: TaskUsage | None = Field(
        None, description="What the task's earlier attempts used together (null for a first attempt).")

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def cancelling(self) -> bool:
        """Its cancel is under way: it goes by itself, and the cancel says so."""
        return self.phase == "cancelled" and self.reason == CANCELLING


class AgentInfo(_Model):
    """One row of list_agents."""

    task_id: str
    environment: str
    base_branch: str | None = None
    branch: str | None = None
    job: str
    phase: Phase
    attempt: int = 1
    step: str | None = None
    feature_dir: str | None = None
    age_seconds: float | None = None
    duration_seconds: float | None = None
    node: str | None = None
    reason: str | None = Field(
        None, description="Why the task is in its phase, e.g. OOMKilled, DeadlineExceeded, BackoffLimitExceeded.")
    last_log_line: str | None = None
    result_summary: str | None = None
    usage: TaskUsage | None = Field(None, description="Final usage when finished, usage so far while running.")
    previous_usage: TaskUsage | None = Field(None, description="The earlier attempts' usage together.")

    @classmethod
    def from_status(cls, status: TaskStatus) -> AgentInfo:
        summary = None
        if (r := status.result) is not None:  # a task that did not succeed: its error first
            ok = r.status in ("succeeded", "no_changes")
            summary = ((r.summary or r.error) if ok else (r.error or r.summary)) or r.status
        return cls(
            task_id=status.task_id,
            environment=status.environment,
            base_branch=status.base_branch,
            branch=status.branch,
            job=status.job,
            phase=status.phase,
            attempt=status.attempt,
            step=status.step,
            feature_dir=status.feature_dir,
            age_seconds=status.age_seconds,
            duration_seconds=status.duration_seconds,
            node=status.node,
            reason=status.reason,
            last_log_line=status.last_log_line,
            result_summary=summary,
            usage=status.usage,
            previous_usage=status.previous_usage,
        )


class UsageTotals(_Model):
    """The listed tasks' usage summed (final figures and usage so far alike)."""

    all: TaskUsage = Field(default_factory=TaskUsage, description="Every attempt of every listed task.")
    by_environment: dict[str, TaskUsage] = Field(default_factory=dict)
    by_feature: dict[str, TaskUsage] = Field(
        default_factory=dict, description="By spec-kit feature directory (else the base branch).")

    @classmethod
    def of(cls, agents: list[AgentInfo]) -> UsageTotals:
        totals = cls()
        for agent in agents:
            for usage in (agent.usage, agent.previous_usage):  # every attempt counts
                if usage is None:
                    continue
                feature = agent.feature_dir or agent.base_branch or "(none)"
                totals.all = totals.all.plus(usage)
                env = totals.by_environment
                env[agent.environment] = env.get(agent.environment, TaskUsage(model=usage.model)).plus(usage)
                feat = totals.by_feature
                feat[feature] = feat.get(feature, TaskUsage(model=usage.model)).plus(usage)
        return totals


class AgentList(_Model):
    environments: list[str]
    agents: list[AgentInfo]
    counts: dict[str, int] = Field(description="Number of tasks per phase.")
    totals: UsageTotals = Field(default_factory=UsageTotals, description="Usage summed per environment and feature.")
    errors: list[str] = Field(
        default_factory=list,
        description="With all_environments: why an environment could not be listed (the others are).")
    continue_token: str | None = Field(
        None,
        description="With limit: more tasks follow; pass this as continue_token (same environment and "
        "limit) for the next page. Empty on the last page.")
    remaining: int | None = Field(None, description="With limit: how many tasks come after this page, when known.")


# -- logs ---------------------------------------------------------------------------------------


class StreamPosition(_Model):
    """How far one log stream (a pod's container, a local run's log file) has been read.

    `after` is the timestamp of the last delivered line and `count` how many lines carrying exactly
    that timestamp were delivered (a backend without timestamps leaves `after` empty and counts
    lines). `offset`, for a stream that is a file, is the byte offset just after the last delivered
    line. `done` means the stream is finished and fully delivered."""

    after: str | None = None
    count: int = 0
    done: bool = False
    offset: int | None = None


class LogLine(_Model):
    task_id: str
    job: str
    stream: str = Field(description="The pod (or local run) the line comes from.")
    time: str | None = None
    text: str


class TaskLogState(_Model):
    task_id: str
    base_branch: str | None = None
    job: str
    phase: Phase
    finished: bool = Field(description="The task is finished and all its lines are delivered.")

    @classmethod
    def from_status(cls, status: TaskStatus, drained: bool) -> TaskLogState:
        """The task's log state; `drained`: every line of its streams is delivered."""
        return cls(
            task_id=status.task_id,
            base_branch=status.base_branch,
            job=status.job,
            phase=status.phase,
            finished=status.finished and drained,
        )


class LogBatch(_Model):
    """One read of a backend: new lines since the positions, the positions after them, the tasks."""

    lines: list[LogLine]
    positions: dict[str, StreamPosition]
    tasks: list[TaskLogState]
    more: bool = Field(False, description="Lines were left for the next read (max_lines or a size limit).")


class LogChunk(_Model):
    """What stream_task_logs returns."""

    lines: list[LogLine]
    tasks: list[TaskLogState]
    cursor: str = Field(description="Pass this back as `cursor` to get only the lines after these.")
    more: bool = Field(description="More lines are already waiting (max_lines was reached).")
    all_finished: bool = Field(description="Every selected task is finished and fully delivered.")


# -- cancel / cleanup / spawn_async -------------------------------------------------------------


class CancelResult(_Model):
    task_id: str
    environment: str
    namespace: str
    deleted_jobs: list[str]
    deleted_pods: list[str]
    message: str
    result: TaskResult | None = Field(
        None,
        description="The result the agent reported while it stopped (status cancelled, the WIP it "
        "pushed); null when it had not started or its pod ended without one.")

    @classmethod
    def nothing(cls, task_id: str, environment: str, namespace: str, where: str) -> CancelResult:
        """The result of cancelling a task that is gone already: `where` says what it has not,
        e.g. "local run" or "Job in namespace 'x'"."""
        return cls(
            task_id=task_id,
            environment=environment,
            namespace=namespace,
            deleted_jobs=[],
            deleted_pods=[],
            message=f"task {task_id} has no {where}: nothing to cancel (it is gone already).",
        )


class CleanupItem(_Model):
    task_id: str
    environment: str
    job: str
    phase: Phase
    finished_at: datetime | None = None

    @classmethod
    def from_status(cls, status: TaskStatus) -> CleanupItem:
        return cls(
            task_id=status.task_id,
            environment=status.environment,
            job=status.job,
            phase=status.phase,
            finished_at=status.finished_at,
        )


class CleanupResult(_Model):
    dry_run: bool
    deleted: list[CleanupItem] = Field(description="What was deleted (with dry_run: what would be).")
    kept: int = Field(description="Tasks kept: unfinished or younger than the given age.")
    message: str

    @classmethod
    def of(cls, dry_run: bool, deleted: list[CleanupItem], kept: int, where: str) -> CleanupResult:
        """The result with its one-line message; `where`, e.g. "environment 'dev'"."""
        verb = "would delete" if dry_run else "deleted"
        listing = ", ".join(f"{item.task_id} ({item.phase})" for item in deleted) or "nothing"
        return cls(
            dry_run=dry_run,
            deleted=deleted,
            kept=kept,
            message=f"{verb} {len(deleted)} finished task(s) in {where}: {listing}; kept {kept}.",
        )


class PlannedTask(_Model):
    task_id: str
    wave: int = Field(description="1-based position of the task's group: its phase, or its wave of tasks_dag.json.")
    phase: str = Field("", description="The group's name, e.g. `Phase 2` or `wave 3`.")
    description: str
    action: Literal["spawn", "exists", "wait"]
    reason: str | None = None
    waits_for: list[str] = Field(default_factory=list, description="The tasks it waits for (action wait).")


class SpawnAsyncResult(_Model):
    tasks_file: str
    feature_dir: str
    base_branch: str
    environment: str
    dry_run: bool
    waves: list[list[str]] = Field(description="The open [ASYNC] task ids, phase by phase (or wave by wave).")
    plan: list[PlannedTask]
    handles: list[TaskHandle]
    warnings: list[str] = Field(
        default_factory=list, description="Lines of tasks.md that were skipped, and why.")
    message: str


class MergeEntry(_Model):
    task_id: str
    branch: str
    head_sha: str | None = None
    action: Literal["merge", "merged", "skip", "conflict"] = Field(
        description="merge: will be merged (dry run); merged: done (or was already); skip: not merged "
        "(see detail); conflict: stopped here, nothing of it merged.")
    detail: str | None = None
    conflicts: list[str] = Field(default_factory=list, description="The files in conflict.")


class MergeResult(_Model):
    feature_dir: str
    base_branch: str
    dry_run: bool
    entries: list[MergeEntry] = Field(description="The feature's agent tasks in merge (dependency) order.")
    pushed: bool = Field(description="The feature branch was pushed (fast-forward) after the merges.")
    conflict: str | None = Field(None, description="The task whose merge conflicted (the merge stopped there).")
    sync_ready: list[str] = Field(
        default_factory=list,
        description="Open [SYNC] tasks whose agent dependencies are all merged now: the main session's next work.")
    message: str


class SyncResult(_Model):
    feature_dir: str
    tasks: list[str] = Field(description="The feature's tasks found in the cluster.")
    changed: list[str] = Field(description="Those whose spec-kit files changed.")
    message: str


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


# -- requests (the MCP tools' inputs and the CLI's, validated the same way) --------------------

_ENV_DESCRIPTION = (
    "Environment: dev, stg, prod or one configured in .agentic-sdlc/config.yaml. "
    "Default: the configured default environment."
)
_BASE_DESCRIPTION = (
    "Feature (base) branch the task belongs to. Only needed when the same task id "
    "exists on several feature branches."
)


class SpawnTaskRequest(_Model):
    task_id: TaskIdField = Field(
        description="Task id, e.g. the spec-kit id `T012`. Part of the task branch name."
    )
    description: DescriptionField | None = Field(
        None,
        description="What the agent must do: the task text, with the files it should touch. Default: "
        "the task's line in the tasks.md of feature_dir.",
    )
    repo: RepoField | None = Field(
        None,
        description="Clone URL of the repository. Default: the `origin` remote of the repository the "
        "server runs in. Never put credentials in it.",
    )
    base_branch: BranchField | None = Field(
        None, description="Feature branch the task branch starts from. Default: the current branch."
    )
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
    timeout_minutes: TimeoutMinutesField | None = Field(
        None, description="Hard time limit of the task. Default: the environment's (chart) default."
    )
    max_cost: MaxCostField | None = Field(None, description=_MAX_COST_DESCRIPTION)
    max_tokens: MaxTokensField | None = Field(None, description=_MAX_TOKENS_DESCRIPTION)
    model: NameField | None = Field(
        None,
        description="OpenCode model as provider/model, e.g. anthropic/claude-sonnet-4-5. "
        "Default: the environment's default model.",
    )
    agent: NameField | None = Field(None, description="OpenCode agent to run. Default: build.")
    feature_dir: RepoPathField | None = Field(
        None,
        description="The spec-kit feature directory, e.g. specs/001-feature (repo-relative): its "
        "spec.md, plan.md and tasks.md go into the agent's prompt (when they fit).",
    )
    context_files: Annotated[list[RepoPathField], Field(max_length=20)] = Field(
        default_factory=list,
        description="Repository paths whose content goes into the agent's prompt (text files, "
        "64 KiB each, 160 KiB in all).",
    )
    ssh_secret: SecretNameField | None = Field(
        None,
        description="The git Secret (e.g. a deploy key of this repository) the pod's git containers use; "
        "one of the environment's (the chart's git.secrets). Default: the environment's git Secret. The "
        "agent never sees it.",
    )


class SpawnAsyncRequest(_Model):
    tasks_file: RepoPathField | None = Field(
        None,
        description="Path of the spec-kit tasks.md (repo-relative), e.g. specs/001-feature/tasks.md. "
        "Default: tasks.md of the current feature, found as spec-kit finds it (SPECIFY_FEATURE_DIRECTORY, "
        ".specify/feature.json, then specs/<current branch>).",
    )
    base_branch: BranchField | None = Field(
        None, description="Feature branch of the tasks. Default: the current branch."
    )
    task_ids: Annotated[list[TaskIdField], Field(max_length=200)] | None = Field(
        None, description="Only these task ids. Default: every open [ASYNC] task."
    )
    max_parallel: Annotated[int, Field(ge=1, le=50)] = Field(
        5, description="At most this many of the feature's tasks pending or running at once."
    )
    dry_run: bool = Field(False, description="Only return the plan; spawn nothing, write nothing.")
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
    repo: RepoField | None = Field(None, description="Clone URL. Default: the `origin` remote.")
    timeout_minutes: TimeoutMinutesField | None = Field(
        None, description="Hard time limit per task. Default: the environment's default."
    )
    max_cost: MaxCostField | None = Field(None, description=_MAX_COST_DESCRIPTION)
    max_tokens: MaxTokensField | None = Field(None, description=_MAX_TOKENS_DESCRIPTION)
    model: NameField | None = Field(
        None, description="OpenCode model for every task. Default: the environment's."
    )
    ssh_secret: SecretNameField | None = Field(
        None,
        description="The git Secret (e.g. a deploy key of this repository) the pod's git containers use; "
        "one of the environment's (the chart's git.secrets). Default: the environment's git Secret. The "
        "agent never sees it.",
    )


class StreamLogsRequest(_Model):
    task_ids: Annotated[list[TaskIdField], Field(max_length=100)] = Field(
        default_factory=list, description="Tasks to follow; empty: every task of the environment."
    )
    base_branch: BranchField | None = Field(None, description="Only tasks of this feature branch.")
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
    cursor: Annotated[str, Field(max_length=65536)] | None = Field(
        None, description="The `cursor` of the previous call's result; empty on the first call."
    )
    wait_seconds: Annotated[float, Field(ge=0, le=50)] = Field(
        20,
        description="How long to wait for new lines before returning (at most 50, so the call ends "
        "inside a client's 60 s tool timeout). Returns earlier when every task is finished.",
    )
    max_lines: Annotated[int, Field(ge=1, le=5000)] = Field(
        2000, description="Return at most this many lines."
    )


class ListAgentsRequest(_Model):
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
    all_environments: bool = Field(False, description="List the tasks of every configured environment.")
    limit: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None,
        description="List at most this many tasks (one page, newest first within it; pages come in the "
        "cluster's order); the result's continue_token gives the next page. Default: every task. Not "
        "with all_environments.")
    continue_token: ContinueTokenField | None = Field(
        None, description="The continue_token of the previous page's result; empty for the first page.")


class TaskRequest(_Model):
    task_id: TaskIdField = Field(description="Task id, e.g. T012.")
    base_branch: BranchField | None = Field(None, description=_BASE_DESCRIPTION)
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)


class RetryRequest(TaskRequest):
    fresh: bool = Field(
        False, description="Start from the base branch, on a branch of its own (<task branch>-attempt-<n>), "
        "instead of continuing the task branch's pushed head (the previous attempt's work in progress).")
    max_cost: MaxCostField | None = Field(
        None, description="A new budget in USD for this attempt. Default: the previous attempt's.")
    max_tokens: MaxTokensField | None = Field(
        None, description="A new budget in tokens for this attempt. Default: the previous attempt's.")
    timeout_minutes: TimeoutMinutesField | None = Field(
        None, description="A new hard time limit for this attempt. Default: the previous attempt's.")


_FEATURE_DESCRIPTION = (
    "The spec-kit feature directory (repo-relative), e.g. specs/001-feature. Default: found as spec-kit "
    "finds it (SPECIFY_FEATURE_DIRECTORY, .specify/feature.json, then specs/<current branch>)."
)


class MergeRequest(_Model):
    feature: RepoPathField | None = Field(None, description=_FEATURE_DESCRIPTION)
    base_branch: BranchField | None = Field(
        None, description="The feature branch to merge into (it must be checked out). Default: the current branch."
    )
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
    dry_run: bool = Field(False, description="Only show the plan: what would be merged, in which order.")
    push: bool = Field(True, description="Push the feature branch after merging (never forced).")


class SyncRequest(_Model):
    feature: RepoPathField | None = Field(None, description=_FEATURE_DESCRIPTION)
    base_branch: BranchField | None = Field(None, description="Only tasks of this feature branch.")
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)


class CleanupRequest(_Model):
    older_than_minutes: Annotated[float, Field(ge=0, le=525600)] | None = Field(
        None, description="Delete finished tasks that finished longer ago than this; empty: all finished."
    )
    dry_run: bool = Field(False, description="Only list what would be deleted.")
    environment: EnvironmentField | None = Field(None, description=_ENV_DESCRIPTION)
