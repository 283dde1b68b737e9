"""Shared fixtures: the test control plane (session-scoped) and a fresh namespace per test."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.runner_harness import provision_opencode
from tests.support.testenv import TestEnv, TestEnvError

# kubernetes/kubernetes#130887 (open, PR #141015): the API server stops its informer of a built-in
# paramKind for good once no ValidatingAdmissionPolicyBinding names that kind, after which every
# policy with that paramKind finds no params (or stale ones) until the API server restarts. Tests install
# and drop chart releases (whose policy takes a PodTemplate as its param) all the time, so this policy
# and binding, which match nothing, keep one PodTemplate binding in the cluster for the session.
PARAM_INFORMER_KEEPER = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: podtemplate-param-informer-keeper.agentic-sdlc.dev}
spec:
  failurePolicy: Ignore
  paramKind: {apiVersion: v1, kind: PodTemplate}
  matchConstraints:
    resourceRules: [{apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}]
    namespaceSelector: {matchLabels: {agentic-sdlc.dev/never: "true"}}
  validations: [{expression: "true"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: podtemplate-param-informer-keeper.agentic-sdlc.dev}
spec:
  policyName: podtemplate-param-informer-keeper.agentic-sdlc.dev
  validationActions: [Deny]
  paramRef: {name: none, namespace: default, parameterNotFoundAction: Allow}
  matchResources:
    namespaceSelector: {matchLabels: {agentic-sdlc.dev/never: "true"}}
"""


@pytest.fixture(scope="session")
def testenv() -> Iterator[TestEnv]:
    """The control plane, brought up once per session. A control plane that cannot start is a
    failure (never a skip): the tests that need it cannot say anything without it.
    It is stopped at the end only if this session started it and AGENTIC_TESTENV_KEEP is unset."""
    try:
        env, started = TestEnv.up()
    except TestEnvError as exc:
        pytest.fail(str(exc), pytrace=False)
    env.kubectl("apply", "-f", "-", input=PARAM_INFORMER_KEEPER)
    yield env
    if started and not os.environ.get("AGENTIC_TESTENV_KEEP"):
        TestEnv.down()


@pytest.fixture(scope="session")
def opencode_bin() -> str:
    """The pinned OpenCode binary (container/opencode.version), provisioned on first use."""
    try:
        return provision_opencode()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def admin_api(testenv: TestEnv) -> client.ApiClient:
    return testenv.api_client("admin")


def wait_until(predicate, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    """Poll predicate() until it returns a truthy value; return it, or fail naming `message`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


@pytest.fixture
def namespace(request: pytest.FixtureRequest, admin_api: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own, with its default ServiceAccount ready; deleted afterwards."""
    core = client.CoreV1Api(admin_api)
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def default_sa_exists() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    wait_until(default_sa_exists, message=f"ServiceAccount default in {name}")
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    _delete_admission_of(admin_api, name)


def _delete_admission_of(api: client.ApiClient, namespace: str) -> None:
    """The chart's cluster-scoped admission policy and binding of a release in `namespace` (helm
    releases in test namespaces are not uninstalled: the namespace goes, these would stay)."""
    admission = client.AdmissionregistrationV1Api(api)
    suffix = f".{namespace}.jobs.agentic-sdlc.dev"
    for lister, deleter in (
        (admission.list_validating_admission_policy_binding, admission.delete_validating_admission_policy_binding),
        (admission.list_validating_admission_policy, admission.delete_validating_admission_policy),
    ):
        for item in lister().items:
            if item.metadata.name.endswith(suffix):
                try:
                    deleter(item.metadata.name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
