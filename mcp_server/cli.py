"""`agentic-runner`: the service's operations for humans and scripts.

Exit codes: 0 ok; 1 a task failed, was not found, or the operation failed; 2 bad usage or input;
130 interrupted. `--output json` prints the same documents the MCP tools return (logs: one JSON
line per log line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from pydantic import BaseModel

from mcp_server import __version__, agent_table
from mcp_server.errors import RunnerError
from mcp_server.logs.prefix import Prefixer
from mcp_server.models import (
    AgentList,
    CleanupRequest,
    ListAgentsRequest,
    LogLine,
    MergeRequest,
    RetryRequest,
    SpawnAsyncRequest,
    SpawnTaskRequest,
    StreamLogsRequest,
    SyncRequest,
    TaskLogState,
    TaskRequest,
    TaskStatus,
)
from mcp_server.runner.usage import describe as describe_usage
from mcp_server.validation import parse

if TYPE_CHECKING:
    from mcp_server.service import RunnerService

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FOLLOW_WAIT_SECONDS = 10.0
FAILED_PHASES = ("failed", "timed_out", "cancelled", "budget_exceeded", "stalled")


# -- argument parsing ---------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--env",
        "-e",
        dest="env",
        default=default,
        help="environment (dev, stg, prod or configured); default: AGENTIC_ENV or dev",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=("table", "json"),
        default="table" if top else argparse.SUPPRESS,
        help="output format (default: table)",
    )


def _budget_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-cost", type=float, metavar="USD",
                   help="stop the agent (budget_exceeded, work pushed) once its cost passes this")
    p.add_argument("--max-tokens", type=int, metavar="N", help="the same for its tokens (all kinds)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentic-runner",
        description="Run spec-kit [ASYNC] tasks as autonomous OpenCode agents in Kubernetes pods.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, top=False)
        return p

    p = command("spawn", "start an agent on one task")
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument(
        "description",
        metavar="DESCRIPTION",
        nargs="?",
        help="the task text (default: the task's line in CONTEXT_DIR/tasks.md)",
    )
    p.add_argument("--repo", help="clone URL (default: the origin remote)")
    p.add_argument("--ssh-secret", metavar="NAME",
                   help="git Secret of the environment (chart git.secrets) the pod's git containers use")
    p.add_argument("--base-branch", "--branch", dest="base_branch", help="feature branch (default: current)")
    p.add_argument("--timeout-minutes", type=int)
    _budget_options(p)
    p.add_argument("--model")
    p.add_argument("--agent")
    p.add_argument(
        "--context-file",
        dest="context_files",
        action="append",
        default=[],
        metavar="PATH",
        help="repository file for the agent's prompt (repeatable)",
    )
    p.add_argument(
        "--context-dir",
        metavar="DIR",
        help="spec-kit feature directory: its tasks.md, spec.md and plan.md go into the prompt",
    )

    p = command("spawn-async", "start agents on the open [ASYNC] tasks of a tasks.md, phase by phase")
    p.add_argument(
        "tasks_file", metavar="TASKS_MD", nargs="?",
        help="default: tasks.md of the current spec-kit feature (SPECIFY_FEATURE_DIRECTORY, "
        ".specify/feature.json, specs/<branch>)",
    )
    p.add_argument("--base-branch", "--branch", dest="base_branch")
    p.add_argument("--task-id", dest="task_ids", action="append", metavar="ID", help="only this task (repeatable)")
    p.add_argument("--max-parallel", type=int, default=5)
    p.add_argument("--dry-run", action="store_true", help="print the plan; spawn nothing")
    p.add_argument("--repo")
    p.add_argument("--ssh-secret", metavar="NAME", help="git Secret of the environment (chart git.secrets)")
    p.add_argument("--timeout-minutes", type=int)
    _budget_options(p)
    p.add_argument("--model")

    p = command("logs", "print the tasks' logs (-f: follow, like stern)")
    p.add_argument("task_ids", metavar="TASK_ID", nargs="*", help="default: every task, new ones join")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--base-branch", "--branch", dest="base_branch")
    p.add_argument("--cursor", help="continue after a cursor printed by an earlier run (json output)")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="coloured task prefixes (auto: when stdout is a terminal and NO_COLOR is unset)",
    )
    p.add_argument("--no-color", dest="color", action="store_const", const="never", help="same as --color never")

    p = command("list", "list the tasks")
    p.add_argument("--all-environments", "-A", action="store_true")
    p.add_argument("--limit", type=int, help="at most this many tasks (a page); prints how to get the next one")
    p.add_argument("--continue", dest="continue_token", metavar="TOKEN", help="the next page (printed by --limit)")
    p.add_argument(
        "--watch", "-w", action="store_true",
        help="redraw the table in place until every task has ended (q or Ctrl-C quits); with -o json one "
        "document per refresh",
    )
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="refresh interval of --watch")

    p = command("retry", "start the next attempt of a failed, timed-out, budget-stopped or stalled task")
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("--base-branch", "--branch", dest="base_branch")
    p.add_argument("--fresh", action="store_true",
                   help="start from the base branch on a branch of its own, not from the task branch's head")
    _budget_options(p)
    p.add_argument("--timeout-minutes", type=int, help="a new time limit (default: the previous attempt's)")

    for name, text in (("status", "show one task and its result"), ("cancel", "stop and delete one task")):
        p = command(name, text)
        p.add_argument("task_id", metavar="TASK_ID")
        p.add_argument("--base-branch", "--branch", dest="base_branch")

    p = command("cleanup", "delete finished tasks")
    p.add_argument(
        "--older-than",
        dest="older_than_minutes",
        type=float,
        metavar="MINUTES",
        help="only tasks finished longer ago (default: every finished task)",
    )
    p.add_argument("--dry-run", action="store_true")

    p = command("merge", "merge the succeeded task branches into the feature branch, in dependency order")
    p.add_argument("feature", metavar="FEATURE", nargs="?", help="feature directory (default: the current one)")
    p.add_argument("--base-branch", "--branch", dest="base_branch", help="feature branch (default: current)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; merge nothing")
    p.add_argument("--no-push", dest="push", action="store_false", help="do not push the feature branch")

    p = command("speckit", "spec-kit: sync the feature's files with the cluster, install the extension")
    speckit_sub = p.add_subparsers(dest="speckit_command", metavar="SUBCOMMAND", required=True)
    s = speckit_sub.add_parser(
        "sync", help="rebuild tasks_meta.json and .async_state/ of a feature from the cluster",
        description="rebuild tasks_meta.json and .async_state/ of a feature from the cluster",
    )
    _common(s, top=False)
    s.add_argument("feature", metavar="FEATURE", nargs="?", help="feature directory (default: the current one)")
    s.add_argument("--base-branch", "--branch", dest="base_branch")
    s = speckit_sub.add_parser(
        "install", help="install the agentic-runner spec-kit extension into a repository",
        description="install the agentic-runner spec-kit extension into a repository (as `specify extension "
        "add --dev` does: .specify/extensions/agentic-runner/, the registry, the hooks in "
        ".specify/extensions.yml, the commands for OpenCode in .opencode/commands/)",
    )
    s.add_argument("--output", "-o", choices=("table", "json"), default=argparse.SUPPRESS)
    s.add_argument("--repo", dest="target", default=".", help="the repository (default: the current directory)")

    p = command("demo", "a throwaway spec-kit feature run by local agents against a scripted model (no cluster)")
    p.add_argument("--keep", metavar="DIR", help="make the demo in DIR and keep it (default: a temporary dir)")
    p.add_argument("--opencode", metavar="PATH", help="the OpenCode binary (default: see README)")

    p = command("run-task", "run one task in this process (what the agent pod runs); must come first")
    p.add_argument("runner_args", nargs=argparse.REMAINDER, help="passed to the task runner")
    return parser


# -- output -------------------------------------------------------------------------------------


def _table(rows: list[list[str]], out: TextIO) -> None:
    for line in agent_table.render(rows):
        out.write(line + "\n")


def print_agents(result: AgentList, out: TextIO) -> None:
    for error in result.errors:
        out.write(f"warning: {error}\n")
    if not result.agents:
        out.write(f"no tasks in {', '.join(result.environments)}\n")
        return
    _table([agent_table.HEADER, *(agent_table.row(a) for a in result.agents)], out)
    for line in agent_table.totals_lines(result):
        out.write(line + "\n")
    if result.continue_token:
        left = f" ({result.remaining} more)" if result.remaining is not None else ""
        out.write(f"next page{left}: --continue {result.continue_token}\n")


def print_status(status: TaskStatus, out: TextIO) -> None:
    fields: list[tuple[str, Any]] = [
        ("task", status.task_id),
        ("phase", status.phase + (f" ({status.reason})" if status.reason else "")),
        ("environment", f"{status.environment} (namespace {status.namespace})"),
        ("job", status.job),
        ("branch", f"{status.branch} (from {status.base_branch})"),
        ("repo", status.repo),
        ("step", status.step),
        ("node", status.node),
        ("pods", ", ".join(status.pods) or None),
        ("attempt", status.attempt),
        ("age", agent_table.age(status.age_seconds)),
        ("duration", agent_table.age(status.duration_seconds)),
        ("exit code", status.exit_code),
        ("last line", status.last_log_line),
    ]
    if status.result is not None:
        r = status.result
        fields += [
            ("result", r.status),
            ("commits", r.commits),
            ("head", r.head_sha),
            ("pushed", r.pushed),
            ("files", ", ".join(r.files_changed) or None),
            ("summary", r.summary),
            ("error", r.error),
        ]
    if status.usage is not None:
        u = status.usage
        fields += [
            ("usage", ("" if status.finished else "so far: ") + describe_usage(u)
             + (f", model {u.model}" if u.model else "")),
            ("tokens", f"input {u.input_tokens}, output {u.output_tokens}, reasoning {u.reasoning_tokens}, "
             f"cache read {u.cache_read_tokens}, cache write {u.cache_write_tokens}"),
        ]
    for key, value in fields:
        if value not in (None, ""):
            out.write(f"{key + ':':<13}{value}\n")


def _print(result: BaseModel, output: str, out: TextIO, human: Callable[[Any, TextIO], None] | None = None) -> None:
    if output == "json" or human is None:
        out.write(result.model_dump_json(indent=2) + "\n")
    else:
        human(result, out)


def _message(result: Any, out: TextIO) -> None:
    out.write(result.message + "\n")


def _handle(result: Any, out: TextIO) -> None:
    state = "created" if result.created else "exists already"
    attempt = f" attempt {result.attempt}," if result.attempt > 1 else ""
    out.write(
        f"{result.task_id}:{attempt} job {result.job} in {result.namespace} ({result.environment}), "
        f"branch {result.branch} — {state}\n"
    )


def _plan(result: Any, out: TextIO) -> None:
    for warning in result.warnings:
        out.write(f"warning: {result.tasks_file}: {warning}\n")
    rows = [["TASK", "WAVE", "ACTION", "REASON"]]
    rows += [[p.task_id, str(p.wave), p.action, p.reason or ""] for p in result.plan]
    if result.plan:
        _table(rows, out)
    out.write(result.message + "\n")


def _merge(result: Any, out: TextIO) -> None:
    rows = [["TASK", "BRANCH", "ACTION", "DETAIL"]]
    rows += [[e.task_id, e.branch, e.action, e.detail or ""] for e in result.entries]
    if result.entries:
        _table(rows, out)
    out.write(result.message + "\n")


# -- commands -----------------------------------------------------------------------------------


def _repo_path(service: RunnerService, path: str | None) -> str | None:
    """A path the user gave relative to where they are, as the repository-relative path requests take."""
    if path is None:
        return None
    given = Path(path)
    return os.path.relpath(given if given.is_absolute() else Path.cwd() / given, service.settings.repo_root)


def _spawn_request(service: RunnerService, args: argparse.Namespace) -> SpawnTaskRequest:
    return parse(
        SpawnTaskRequest,
        _given(
            task_id=args.task_id,
            description=args.description,
            repo=args.repo,
            base_branch=args.base_branch,
            environment=args.env,
            timeout_minutes=args.timeout_minutes,
            max_cost=args.max_cost,
            max_tokens=args.max_tokens,
            model=args.model,
            agent=args.agent,
            feature_dir=_repo_path(service, args.context_dir),
            context_files=[_repo_path(service, f) for f in args.context_files],
            ssh_secret=args.ssh_secret,
        ),
    )


def _given(**values: Any) -> dict[str, Any]:
    """The options the user gave (argparse's None means not given: the request's default applies)."""
    return {k: v for k, v in values.items() if v is not None}


def _logs(service: RunnerService, args: argparse.Namespace, out: TextIO) -> int:
    auto = out.isatty() and not os.environ.get("NO_COLOR")
    color = args.output == "table" and (args.color == "always" or (args.color == "auto" and auto))
    prefixer = Prefixer(color)
    base = _given(task_ids=args.task_ids, base_branch=args.base_branch, environment=args.env)

    async def on_batch(lines: list[LogLine], _states: list[TaskLogState]) -> None:
        for line in lines:
            out.write((line.model_dump_json() if args.output == "json" else prefixer.format(line)) + "\n")
        out.flush()

    cursor = args.cursor
    while True:
        wait = FOLLOW_WAIT_SECONDS if args.follow else 0.0
        request = parse(StreamLogsRequest, {**base, **_given(cursor=cursor), "wait_seconds": wait})
        chunk = anyio.run(partial(service.stream_logs, request, on_batch=on_batch))
        cursor = chunk.cursor
        if chunk.more:
            continue
        if not args.follow or (args.task_ids and chunk.all_finished):
            if args.output == "json":
                out.write(json.dumps({"cursor": cursor, "tasks": [t.model_dump() for t in chunk.tasks]}) + "\n")
            failed = any(t.phase in FAILED_PHASES for t in chunk.tasks)
            return EXIT_FAILED if args.follow and failed else EXIT_OK


def run(
    argv: Sequence[str],
    service_factory: Callable[[str | None], RunnerService] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(argv)
    if argv[:1] == ["run-task"]:  # everything after it belongs to the runner, options included
        from mcp_server import runner

        return int(runner.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "speckit" and args.speckit_command == "install":
        from mcp_server.speckit_extension.install import install_command

        return install_command(args.target, args.output, out, err)
    if args.command == "demo":
        from mcp_server.demo import demo_command

        return demo_command(args.keep, args.opencode, out, err)

    def make(env: str | None) -> RunnerService:
        # Imported here: `run-task` (the agent image) needs neither the service nor its clients.
        from mcp_server.config import load_settings
        from mcp_server.service import RunnerService

        return RunnerService(load_settings(environment=env))

    try:
        service = (service_factory or make)(args.env)
        if args.command == "spawn":
            _print(service.spawn_task(_spawn_request(service, args)), args.output, out, _handle)
        elif args.command == "spawn-async":
            request = parse(
                SpawnAsyncRequest,
                _given(
                    tasks_file=_repo_path(service, args.tasks_file),
                    base_branch=args.base_branch,
                    task_ids=args.task_ids,
                    max_parallel=args.max_parallel,
                    dry_run=args.dry_run,
                    environment=args.env,
                    repo=args.repo,
                    timeout_minutes=args.timeout_minutes,
                    max_cost=args.max_cost,
                    max_tokens=args.max_tokens,
                    model=args.model,
                    ssh_secret=args.ssh_secret,
                ),
            )
            _print(service.spawn_async(request), args.output, out, _plan)
        elif args.command == "merge":
            request = parse(
                MergeRequest,
                _given(
                    feature=_repo_path(service, args.feature), base_branch=args.base_branch,
                    environment=args.env, dry_run=args.dry_run, push=args.push,
                ),
            )
            result = service.merge(request)
            _print(result, args.output, out, _merge)
            return EXIT_FAILED if result.conflict else EXIT_OK
        elif args.command == "speckit":
            request = parse(
                SyncRequest,
                _given(feature=_repo_path(service, args.feature), base_branch=args.base_branch, environment=args.env),
            )
            _print(service.sync(request), args.output, out, _message)
        elif args.command == "logs":
            return _logs(service, args, out)
        elif args.command == "list":
            request = parse(
                ListAgentsRequest,
                _given(
                    environment=args.env,
                    all_environments=args.all_environments,
                    limit=args.limit,
                    continue_token=args.continue_token,
                ),
            )
            if args.watch:
                from mcp_server.watch import watch

                return watch(lambda: service.list_agents(request, read_tails=True), args.output, args.interval, out)
            _print(service.list_agents(request, read_tails=True), args.output, out, print_agents)
        elif args.command == "retry":
            retry_request = parse(
                RetryRequest,
                _given(task_id=args.task_id, base_branch=args.base_branch, environment=args.env,
                       fresh=args.fresh, max_cost=args.max_cost, max_tokens=args.max_tokens,
                       timeout_minutes=args.timeout_minutes),
            )
            _print(service.retry(retry_request), args.output, out, _handle)
        elif args.command in ("status", "cancel"):
            ref = parse(TaskRequest, _given(task_id=args.task_id, base_branch=args.base_branch, environment=args.env))
            if args.command == "cancel":
                _print(service.cancel(ref), args.output, out, _message)
                return EXIT_OK
            status = service.status(ref)
            _print(status, args.output, out, print_status)
            return EXIT_FAILED if status.phase in FAILED_PHASES else EXIT_OK
        elif args.command == "cleanup":
            request = parse(
                CleanupRequest,
                _given(older_than_minutes=args.older_than_minutes, dry_run=args.dry_run, environment=args.env),
            )
            _print(service.cleanup(request), args.output, out, _message)
    except RunnerError as exc:
        err.write(f"agentic-runner: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
