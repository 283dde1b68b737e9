"""Property-based fuzzing (hypothesis) of every MCP tool's input against the real control plane.

For any arguments object: the server does not crash (no `UnexpectedToolError`; over stdio, no bare
"Error executing tool X"); whatever the tool's request model refuses is refused as
"invalid <field>: ..." naming one of the given (or required) fields; a refused input creates
nothing (the namespace's Jobs counted before and after); and no error repeats a secret that came in.

Two edges, the same strategies:
- in process, `FUZZ_EXAMPLES` (500) cases per tool through the server object itself
  (`RunnerMCPServer.call_tool`: the SDK's argument validation, the server's error shaping and the
  service, against the real API server) — everything but the stdio framing, which adds nothing to
  validation;
- over real stdio (the SDK's client and `agentic-runner-mcp`), `STDIO_EXAMPLES` (50) cases per tool.

Valid-looking values are drawn from small sets (three task ids, two branches), so that the inputs
that do pass make a handful of Jobs, not hundreds; stream_task_logs always gets a `wait_seconds`
(a valid one is 0) so that no case waits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import BaseModel, ValidationError

from mcp_server.config import load_settings
from mcp_server.models import (
    CleanupRequest,
    ListAgentsRequest,
    MergeRequest,
    SpawnAsyncRequest,
    SpawnTaskRequest,
    StreamLogsRequest,
    TaskRequest,
)
from mcp_server.server import build_server
from mcp_server.service import RunnerService
from tests.conftest import wait_until
from tests.support.mcp_client import connect
from tests.support.runner_env import FEATURE, install_chart, make_repo, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = 500
STDIO_EXAMPLES = 50
SECRET = "hunter2"

TOOLS: dict[str, type[BaseModel]] = {
    "spawn_task_pod": SpawnTaskRequest,
    "spawn_async_tasks": SpawnAsyncRequest,
    "stream_task_logs": StreamLogsRequest,
    "list_agents": ListAgentsRequest,
    "get_task_status": TaskRequest,
    "cancel_task": TaskRequest,
    "merge_task_branches": MergeRequest,
    "cleanup_tasks": CleanupRequest,
}

# -- values ---------------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "\n", "\x00", "T1\n", "../..", "/etc/passwd", "$(id)", "`id`", "a;rm -rf /", "-rf", "--help",
    "x" * 300, "x" * 70000, "ünïcödé", "\u202eevil", "T001 T002", "T0/../1", "~root", "{{ .Values }}",
    "%2e%2e%2f", "\\\\server\\share", "CON", "T001\r", "null", "[]", "{}", "[1, 2]", '{"a": 1}', "1e999",
    f"https://user:{SECRET}@git.example.com/x.git", "ext::sh -c touch% /tmp/pwned", "file:///etc",
])
WRONG_TYPES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
ANY_TEXT = st.text(max_size=40)


def anything(*plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(*plausible, NASTY_TEXT, WRONG_TYPES, ANY_TEXT)


TASK_ID = anything(st.sampled_from(["T001", "T002", "T003"]), st.from_regex(r"[A-Za-z0-9_-]{0,70}", fullmatch=True))
BRANCH = anything(st.sampled_from([FEATURE, "002-other"]), st.sampled_from(["a..b", "x.lock", "-x", "a b", "@{", "a/"]))
ENVIRONMENT = anything(st.sampled_from(["dev", "stg", "qa", "DEV", "prod-1"]))
REPO = anything(st.sampled_from([
    "https://git.example.com/org/repo.git", "git@git.example.com:org/repo.git", "ssh://git@h/x.git",
    f"https://x-access-token:{SECRET}@github.com/o/r.git", "http://h/x.git", "https://h/x.git?token=" + SECRET,
]))
PATH = anything(st.sampled_from([
    f"specs/{FEATURE}", f"specs/{FEATURE}/tasks.md", "README.md", "specs", ".git/config", "../../etc/passwd",
    "/etc/passwd", "specs/../../x", "nope/tasks.md",
]))
PATHS = anything(st.lists(PATH, max_size=25))
TASK_IDS = anything(st.lists(TASK_ID, max_size=5), st.lists(st.just("T001"), min_size=101, max_size=205))
MINUTES = anything(st.integers(min_value=-10, max_value=2000), st.floats(min_value=-1, max_value=600000))
COUNT = anything(st.integers(min_value=-10, max_value=6000))
FLAG = anything(st.booleans(), st.sampled_from(["true", "yes", 0, 1]))
NAME = anything(st.sampled_from(["anthropic/claude-sonnet-4-5", "build", "a" * 129, "x y", "-x"]))
DESCRIPTION = anything(st.text(min_size=1, max_size=60), st.just("d" * 4001))
CURSOR = anything(st.sampled_from(["garbage", "eyJ2IjogMX0=", "e30=", "=" * 10, "A" * 70000]))
WAIT = st.sampled_from([0, 0.0, -1, -0.001, 50.5, 51, 1e9, "0", "x", None, float("nan"), float("inf"), [], {}])

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "task_id": TASK_ID, "description": DESCRIPTION, "repo": REPO, "base_branch": BRANCH, "environment": ENVIRONMENT,
    "timeout_minutes": MINUTES, "model": NAME, "agent": NAME, "feature_dir": PATH, "context_files": PATHS,
    "tasks_file": PATH, "task_ids": TASK_IDS, "max_parallel": COUNT, "dry_run": FLAG, "cursor": CURSOR,
    "wait_seconds": WAIT, "max_lines": COUNT, "all_environments": FLAG, "feature": PATH, "push": FLAG,
    "older_than_minutes": MINUTES, "limit": COUNT, "continue_token": CURSOR,
}
EXTRA_KEYS = st.sampled_from(["ctx", "__proto__", "taskId", "namespace", "kubeconfig", "unknown", ""])


def arguments(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the tool's fields with any values, sometimes with keys it does not have."""
    model = TOOLS[tool]
    fields = {name: FIELDS.get(name, anything()) for name in model.model_fields}  # a new field: any value
    required = {"wait_seconds": WAIT} if tool == "stream_task_logs" else {}
    optional = {k: v for k, v in fields.items() if k not in required}
    extra = st.dictionaries(EXTRA_KEYS, anything(), max_size=2)
    return st.tuples(st.fixed_dictionaries(required, optional=optional), extra).map(lambda t: {**t[1], **t[0]})


# -- the world --------------------------------------------------------------------------------------


@dataclass
class FuzzWorld:
    testenv: TestEnv
    namespace: str
    repo: Path
    batch: client.BatchV1Api

    def env(self) -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo)

    def jobs(self) -> list[str]:
        return sorted(j.metadata.name for j in self.batch.list_namespaced_job(self.namespace).items)


@pytest.fixture(scope="module")
def fuzz_world(testenv: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    api = testenv.api_client("admin")
    core = client.CoreV1Api(api)
    name = f"fuzz-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(lambda: core.list_namespaced_service_account(name).items, message=f"ServiceAccount in {name}")
    install_chart(testenv, name)
    repo = make_repo(tmp_path_factory.mktemp("fuzz") / "repo")
    (repo.parent / "home").mkdir()
    (repo / "escape").symlink_to("/etc")
    yield FuzzWorld(testenv, name, repo, client.BatchV1Api(api))
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


Call = Callable[[str, dict[str, Any]], tuple[bool, str]]
"""(is_error, text) of one tool call; a crash fails the test inside it."""


@pytest.fixture(scope="module")
def in_process(fuzz_world: FuzzWorld, portal: BlockingPortal) -> Call:
    env = fuzz_world.env()
    service = RunnerService(load_settings({**env, "AGENTIC_KUBECONFIG": env["KUBECONFIG"]}), environ=env)
    server = build_server(lambda: service)

    def call(tool: str, args: dict[str, Any]) -> tuple[bool, str]:
        try:
            portal.call(server.call_tool, tool, args)
        except UnexpectedToolError as exc:
            pytest.fail(f"{tool} crashed on {args!r}: {exc.__cause__!r}")
        except ToolError as exc:
            return True, str(exc)
        return False, ""

    return call


@pytest.fixture(scope="module")
def over_stdio(fuzz_world: FuzzWorld, portal: BlockingPortal) -> Iterator[Call]:
    with portal.wrap_async_context_manager(connect(fuzz_world.env())) as mcp:

        def call(tool: str, args: dict[str, Any]) -> tuple[bool, str]:
            result = portal.call(mcp.call, tool, args)
            assert result.text != f"Error executing tool {tool}", f"{tool} crashed on {args!r}"
            return result.is_error, result.text

        yield call


# -- the properties -----------------------------------------------------------------------------------

INVALID = re.compile(r"^Error executing tool (?P<tool>\w+): invalid (?P<field>[^:\s]+): ")


def model_refuses(tool: str, args: dict[str, Any]) -> bool:
    """What the tool's request model says of the known fields (the SDK drops unknown keys; it turns a
    string holding JSON into the value for a non-string field, so the model sees the same)."""
    model = TOOLS[tool]
    known = {k: v for k, v in args.items() if k in model.model_fields}
    try:
        model.model_validate(known)
    except ValidationError as exc:
        return not _json_string_accepted(model, known, exc)
    return False


def _json_string_accepted(model: type[BaseModel], known: dict[str, Any], exc: ValidationError) -> bool:
    import json

    parsed = dict(known)
    for key, value in known.items():
        if isinstance(value, str) and model.model_fields[key].annotation is not str:
            try:
                parsed[key] = json.loads(value)
            except ValueError:
                continue
    if parsed == known:
        return False
    try:
        model.model_validate(parsed)
    except ValidationError:
        return False
    return True


def check_case(world: FuzzWorld, call: Call, tool: str, args: dict[str, Any]) -> None:
    before = world.jobs()
    is_error, text = call(tool, args)
    assert SECRET not in text, f"{tool} repeated a secret: {text}"
    assert "Traceback" not in text
    refused = INVALID.match(text) if is_error else None
    if model_refuses(tool, args):
        assert refused, f"{tool} did not refuse {args!r}: {text or 'it succeeded'}"
    if refused:
        field = re.split(r"[\[.]", refused["field"])[0]
        assert field in set(args) | set(TOOLS[tool].model_fields), f"{tool}: the error names {field!r}: {text}"
        assert world.jobs() == before, f"{tool} refused {args!r} but the Jobs changed"


def fuzz(tool: str, examples: int, fuzz_world: FuzzWorld, call: Call) -> int:
    """Run `examples` cases of the tool; how many ran."""
    ran = [0]

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    @given(args=arguments(tool))
    def run(args: dict[str, Any]) -> None:
        ran[0] += 1
        check_case(fuzz_world, call, tool, args)

    run()
    return ran[0]


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_fuzzed_inputs_in_process(tool: str, fuzz_world: FuzzWorld, in_process: Call) -> None:
    assert fuzz(tool, FUZZ_EXAMPLES, fuzz_world, in_process) >= FUZZ_EXAMPLES


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_fuzzed_inputs_over_stdio(tool: str, fuzz_world: FuzzWorld, over_stdio: Call) -> None:
    assert fuzz(tool, STDIO_EXAMPLES, fuzz_world, over_stdio) >= STDIO_EXAMPLES
