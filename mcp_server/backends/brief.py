"""The listing's view of a task's Jobs and pods: a LIST response decoded into plain JSON dicts that hold
only the fields a task's status is derived from (`mcp_server.jobstatus`, the grouping and ordering in
`mcp_server.backends.kubernetes`), every other field skipped while parsing.

Why: a list of 1,000 task Jobs or pods is ~10 MB of JSON, nearly all of it what a status never reads
(each pod's spec and managedFields, each Job's pod template with the task-context annotation). Parsed
whole, the response became a million Python objects, and building them (and the garbage collector's
passes over them) was most of list_agents' time; decoded to this view it is a few thousand. msgspec
decodes into these TypedDicts, skipping unknown fields without building them; the result is the same
plain dicts, less the fields left out, so everything downstream reads them as before.

A field the status code reads must be listed here (tests/unit/test_brief_view.py derives every
status of the status tests from full and from brief objects and compares). A response this view
cannot hold (a field of a type it does not expect) is parsed whole instead: never a wrong status.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec


class _PodMeta(TypedDict, total=False):
    name: str
    namespace: str
    creationTimestamp: str | None
    deletionTimestamp: str | None
    labels: dict[str, str] | None


class _JobMeta(_PodMeta, total=False):
    annotations: dict[str, str] | None
    """A Job's (task id, repo, description...); a pod's are left out: its task context is large."""


class _Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str | None
    lastTransitionTime: str | None


class _JobSpec(TypedDict, total=False):
    suspend: bool | None


class _JobStatus(TypedDict, total=False):
    conditions: list[_Condition] | None
    startTime: str | None
    completionTime: str | None


class _Job(TypedDict, total=False):
    metadata: _JobMeta
    spec: _JobSpec
    status: _JobStatus


class _ContainerStatus(TypedDict, total=False):
    name: str
    state: dict[str, Any] | None
    """running / waiting / terminated, each kept whole (reason, exitCode, message, times)."""


class _PodSpec(TypedDict, total=False):
    nodeName: str | None


class _PodStatus(TypedDict, total=False):
    phase: str | None
    reason: str | None
    containerStatuses: list[_ContainerStatus] | None
    initContainerStatuses: list[_ContainerStatus] | None


class _Pod(TypedDict, total=False):
    metadata: _PodMeta
    spec: _PodSpec
    status: _PodStatus


class _JobList(TypedDict, total=False):
    metadata: dict[str, Any]  # continue, remainingItemCount, resourceVersion
    items: list[_Job] | None


class _PodList(TypedDict, total=False):
    metadata: dict[str, Any]
    items: list[_Pod] | None


_JOBS = msgspec.json.Decoder(_JobList)
_PODS = msgspec.json.Decoder(_PodList)


def _decoder(typed: msgspec.json.Decoder[Any]) -> Any:
    def decode(data: bytes) -> Any:
        try:
            return typed.decode(data)
        except msgspec.ValidationError:  # valid JSON of a shape this view does not expect: all of it
            return json.loads(data)
        except msgspec.DecodeError as exc:  # not JSON: what json.loads says of it, as before
            raise ValueError(str(exc)) from None

    return decode


decode_job_list = _decoder(_JOBS)
"""A JobList response as the listing's view of its Jobs (plain dicts)."""
decode_pod_list = _decoder(_PODS)
"""A PodList response as the listing's view of its pods (plain dicts)."""
