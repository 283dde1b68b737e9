"""Helpers for the chart's tests: render with the real helm, list objects, scan for secret material,
and server-side dry-run apply against the test control plane."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.testenv import REPO_ROOT, TestEnv

CHART_DIR = REPO_ROOT / "chart"
CHART_NAME = "agentic-sdlc-agent-runner"
RELEASES_DIR = REPO_ROOT / "releases"
ENVIRONMENTS = ("dev", "stg", "prod")

Doc = dict[str, Any]


def release_name(env: str) -> str:
    return f"{CHART_NAME}-{env}"


def release_dir(env: str) -> Path:
    return RELEASES_DIR / release_name(env)


def release_namespace(env: str) -> str:
    return f"agent-runner-{env}"


def seed_install_command(env: str) -> str:
    """The install command exactly as the issue and releases/README.md give it."""
    return (f"helm upgrade --install {release_name(env)} releases/{release_name(env)} "
            f"-n {release_namespace(env)} --create-namespace")


def subchart_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values for the chart, nested under the dependency's key for a release wrapper chart."""
    return {CHART_NAME: dict(values)}


# -- running helm ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Helm:
    """The pinned helm binary of the test environment, run from the repository root."""

    testenv: TestEnv
    kube_version: str  # the control plane's version, as ArgoCD passes the destination's

    @classmethod
    def for_testenv(cls, testenv: TestEnv) -> Helm:
        # `helm template` renders for --kube-version: without it the pinned build (no k8sVersion
        # ldflags) would assume v1.20 and refuse the chart's kubeVersion range.
        return cls(testenv, server_version(testenv))

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.testenv.bin_dir / "helm"), *args], env=self.testenv.environ(), cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {shlex.join(args)} failed (exit {proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def run_shell_command(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a documented `helm ...` command line as written (first word must be helm)."""
        argv = shlex.split(command)
        if argv[0] != "helm":
            raise ValueError(f"not a helm command: {command!r}")
        return self.run(*argv[1:], check=check)

    def template_args(self, chart: Path | str, *, release: str, namespace: str,
                      values: Mapping[str, Any] | None, values_dir: Path) -> list[str]:
        args = ["template", release, str(chart), "--namespace", namespace,
                "--kube-version", self.kube_version]
        if values:
            values_file = values_dir / "values.override.yaml"
            values_file.write_text(yaml.safe_dump(dict(values)), encoding="utf-8")
            args += ["--values", str(values_file)]
        return args

    def template(self, chart: Path | str, *, release: str, namespace: str,
                 values: Mapping[str, Any] | None = None, check: bool = True,
                 ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="chart-values-") as tmp:
            return self.run(*self.template_args(chart, release=release, namespace=namespace,
                                                values=values, values_dir=Path(tmp)), check=check)

    def render(self, chart: Path | str, *, release: str, namespace: str,
               values: Mapping[str, Any] | None = None) -> list[Doc]:
        return parse_manifests(self.template(chart, release=release, namespace=namespace,
                                             values=values).stdout)

    def render_release(self, env: str, values: Mapping[str, Any] | None = None) -> list[Doc]:
        """A release as ArgoCD or `helm upgrade --install` renders it (values nested for the subchart)."""
        return self.render(release_dir(env), release=release_name(env), namespace=release_namespace(env),
                           values=subchart_values(values) if values else None)


def parse_manifests(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def object_list(docs: Iterable[Doc]) -> list[str]:
    """`Kind/name` of every object, in render order."""
    return [f"{doc['kind']}/{doc['metadata']['name']}" for doc in docs]


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(matches) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(matches)}: "
                             f"{[d['metadata']['name'] for d in matches]}")
    return matches[0]


def to_yaml_stream(docs: Iterable[Doc]) -> str:
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in docs)


# -- the API server ----------------------------------------------------------------------------


def server_version(testenv: TestEnv) -> str:
    out = testenv.kubectl("version", "-o", "json").stdout
    return json.loads(out)["serverVersion"]["gitVersion"]


def server_dry_run_apply(testenv: TestEnv, docs: Iterable[Doc]) -> subprocess.CompletedProcess[str]:
    """Server-side apply with --dry-run=server and strict field validation: every object goes
    through the API server's defaulting, validation (CRD schemas included) and admission."""
    return testenv.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict",
        "--field-manager=chart-tests", "-f", "-", input=to_yaml_stream(docs), check=False,
    )


# -- the secret material scan ------------------------------------------------------------------

CREDENTIAL_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.IGNORECASE)

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY"),
    "OpenSSH private key body": re.compile(r"b3BlbnNzaC1rZXktdjE"),  # base64 of "openssh-key-v1"
    "GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    "GitLab token": re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    "OpenAI/Anthropic style key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "basic-auth URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
}


@dataclass(frozen=True)
class Finding:
    obj: str  # Kind/name
    where: str  # a path inside the object
    what: str

    def __str__(self) -> str:
        return f"{self.obj} {self.where}: {self.what}"


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def scan_for_secret_material(docs: Iterable[Doc]) -> list[Finding]:
    """Everything that looks like secret material in rendered manifests:
    - a Secret carrying data or stringData;
    - an env var with a credential-like name (TOKEN, KEY, SECRET, PASSWORD, CREDENTIAL, PRIVATE)
      given as a literal `value` instead of valueFrom;
    - a ConfigMap key with a credential-like name;
    - a token or key pattern (PEM private key, GitHub/GitLab/OpenAI/Anthropic/AWS/Google/Slack
      tokens, JWTs, credentials in URLs) in any string or key anywhere.
    """
    findings: list[Finding] = []
    for doc in docs:
        obj = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if doc.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if doc.get(field):
                    findings.append(Finding(obj, field, f"Secret with {field} ({', '.join(doc[field])})"))
        if doc.get("kind") == "ConfigMap":
            for field in ("data", "binaryData"):
                for key in doc.get(field) or {}:
                    if CREDENTIAL_NAME.search(key):
                        findings.append(Finding(obj, f"{field}.{key}", "credential-like key in a ConfigMap"))
        for path, node in _walk(doc):
            if path.endswith(".env") and isinstance(node, list):
                for i, var in enumerate(node):
                    if (isinstance(var, dict) and "value" in var
                            and CREDENTIAL_NAME.search(str(var.get("name", "")))):
                        findings.append(Finding(obj, f"{path}[{i}]",
                                                f"env literal under credential-like name {var['name']}"))
            texts = list(node) if isinstance(node, dict) else [node] if isinstance(node, str) else []
            for text in texts:
                for what, pattern in SECRET_PATTERNS.items():
                    if isinstance(text, str) and pattern.search(text):
                        findings.append(Finding(obj, path, what))
    return findings


def pod_from_template(podtemplate: Doc, name: str, task_context: Mapping[str, Any]) -> Doc:
    """A Pod with the PodTemplate's pod (labels, annotations, spec) and a task context annotation,
    the way the server builds a Job's pod from it."""
    template = podtemplate["template"]
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(meta.get("labels") or {}),
            "annotations": {**(meta.get("annotations") or {}),
                            "agentic-sdlc.dev/task-context": json.dumps(dict(task_context))},
        },
        "spec": template["spec"],
    }
