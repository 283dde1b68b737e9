"""`agentic-runner run-task` / `python -m mcp_server.runner`: run the task of this pod (or local
process) and report its result. `python -m mcp_server.runner git-clone` and `... git-push` are the
pod's git containers (`gitclone`, `gitpush`). Configured by environment variables and the task context file
(docs/contracts.md); the options override the matching variables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mcp_server.errors import ConfigError
from mcp_server.runner.context import load_context, partial_ids
from mcp_server.runner.output import Output
from mcp_server.runner.redact import Redactor
from mcp_server.runner.result import TaskResult
from mcp_server.runner.settings import DEFAULT_CONTEXT_FILE, DEFAULT_RESULT_FILE, Settings
from mcp_server.runner.stop import StopControl, StopTriggers
from mcp_server.runner.task import run_task


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentic-runner run-task",
        description="Clone the repository, let OpenCode do the task on its own branch, commit, push "
                    "and write the result JSON. Configuration: AGENTIC_* environment variables "
                    "(docs/contracts.md).",
    )
    parser.add_argument("--context", metavar="FILE", help="task context JSON (AGENTIC_TASK_CONTEXT_FILE)")
    parser.add_argument("--workspace", metavar="DIR", help="where to clone (AGENTIC_WORKSPACE)")
    parser.add_argument("--result-file", metavar="FILE",
                        help="where the result JSON goes (AGENTIC_RESULT_FILE)")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["git-clone"]:
        from mcp_server.runner.gitclone import main as clone_main

        return clone_main(environ)
    if args_list[:1] == ["git-push"]:
        from mcp_server.runner.gitpush import main as push_main

        return push_main(environ)
    if args_list[:1] == ["run-task"]:
        args_list = args_list[1:]
    args = build_parser().parse_args(args_list)
    env = dict(os.environ if environ is None else environ)
    for option, name in ((args.context, "AGENTIC_TASK_CONTEXT_FILE"), (args.workspace, "AGENTIC_WORKSPACE"),
                         (args.result_file, "AGENTIC_RESULT_FILE")):
        if option:
            env[name] = option
    out = Output(Redactor.from_environ(env))
    result = _run(env, out)
    _write_result_file(Path(env.get("AGENTIC_RESULT_FILE") or DEFAULT_RESULT_FILE), result, out)
    out.line(result.marker_line())
    return result.exit_code


def _run(env: Mapping[str, str], out: Output) -> TaskResult:
    context_file = Path(env.get("AGENTIC_TASK_CONTEXT_FILE") or DEFAULT_CONTEXT_FILE)
    try:
        settings = Settings.from_environ(env)
        ctx = load_context(settings.context_file)
    except ConfigError as exc:
        task_id, branch, base = partial_ids(context_file)
        message = out.redact(str(exc))
        out.log("setup", message, level="error")
        out.log("done", f"task {task_id or '(unknown)'} failed before it started", status="failed")
        return TaskResult(task_id=task_id, status="failed", branch=branch, base=base, error=message)
    stop = StopControl()
    triggers = StopTriggers(stop, ctx.deadline, settings.deadline_tolerance_seconds,
                            lambda msg: out.log("done", msg, level="warning"))
    triggers.install()
    try:
        return run_task(settings, ctx, out, stop)
    except Exception as exc:  # a bug must still give a result, not a traceback without one
        message = out.redact(f"internal error: {type(exc).__name__}: {exc}")
        out.log("done", message, level="error")
        return TaskResult(task_id=ctx.task_id, status=stop.reason or "failed", branch=ctx.task_branch,
                          base=ctx.base_branch, error=message)
    finally:
        triggers.close()


def _write_result_file(path: Path, result: TaskResult, out: Output) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(out.redact(result.to_json()))
    except OSError as exc:
        out.log("done", f"cannot write the result file {path} (AGENTIC_RESULT_FILE): {exc.strerror or exc}",
                level="warning")
