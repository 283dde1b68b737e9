"""The secret material scan used on every rendered release: it must catch what it claims to catch,
or the release scans in tests/integration/test_chart_render.py could pass by saying nothing."""

from __future__ import annotations

import copy

import pytest

from tests.support.chart import Doc, scan_for_secret_material

# Fake values built at run time so this file itself holds no token-shaped literal.
FAKE = {
    "github": "ghp_" + "a1B2c3D4" * 5,
    "github_pat": "github_pat_" + "11AAAA" * 8,
    "openai": "sk-" + "proj-" + "Zz09" * 8,
    "anthropic": "sk-" + "ant-api03-" + "Qq" * 20,
    "aws": "AKIA" + "ABCDEFGH" * 2,
    "pem": "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END",
    "rsa": "-----BEGIN " + "RSA PRIVATE KEY-----",
    "jwt": "eyJ" + "hbGciOiJSUzI1NiJ9" + ".eyJ" + "zdWIiOiJzeXN0ZW06c2EifQ" + ".sig",
    "url": "https://" + "bot:hunter2" + "@git.example.com/org/repo.git",
}


def clean_docs() -> list[Doc]:
    """A small rendered release as the chart makes it: credentials by reference only."""
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r-config"},
         "data": {"AGENTIC_GIT_AUTH": "token", "AGENTIC_BRANCH_PATTERN": "agentic/{base_branch}/{task_id}",
                  "AGENTIC_OPENCODE_MODEL": "anthropic/claude-sonnet-4-5"}},
        {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "r-llm"},
         "spec": {"data": [{"secretKey": "ANTHROPIC_API_KEY",
                            "remoteRef": {"key": "agentic-sdlc/dev/llm", "property": "anthropic-api-key"}}]}},
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "r-agent"},
         "template": {"metadata": {"annotations": {"note": "task-context stays in an annotation"}},
                      "spec": {"containers": [{
                          "name": "agent",
                          "env": [
                              {"name": "AGENTIC_WORKSPACE", "value": "/workspace"},
                              {"name": "AGENTIC_GIT_TOKEN",
                               "valueFrom": {"secretKeyRef": {"name": "r-git", "key": "token"}}},
                          ],
                          "envFrom": [{"secretRef": {"name": "r-llm"}}]}],
                          "volumes": [{"name": "git-ssh", "secret": {"secretName": "r-git",
                                                                     "defaultMode": 256}}]}}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "empty"}, "type": "Opaque"},
    ]


def test_clean_render_has_no_findings() -> None:
    assert scan_for_secret_material(clean_docs()) == []


def test_secret_with_data_or_string_data_is_found() -> None:
    for field in ("data", "stringData"):
        docs = clean_docs() + [{"kind": "Secret", "metadata": {"name": "leak"}, field: {"token": "eA=="}}]
        findings = scan_for_secret_material(docs)
        assert [(f.obj, f.where) for f in findings] == [("Secret/leak", field)]


@pytest.mark.parametrize("name", ["AGENTIC_GIT_TOKEN", "ANTHROPIC_API_KEY", "DB_PASSWORD", "client_secret",
                                  "GOOGLE_APPLICATION_CREDENTIALS", "SSH_PRIVATE"])
def test_env_literal_under_credential_like_name_is_found(name: str) -> None:
    docs = clean_docs()
    docs[2]["template"]["spec"]["containers"][0]["env"].append({"name": name, "value": "plain"})
    findings = scan_for_secret_material(docs)
    assert [str(f) for f in findings] == [
        "PodTemplate/r-agent .template.spec.containers[0].env[2]: "
        f"env literal under credential-like name {name}"
    ]


def test_env_literal_in_a_job_init_container_is_found() -> None:
    job = {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "env": [{"name": "API_KEY", "value": ""}]}]}}}}
    found = [f.where for f in scan_for_secret_material([job])]
    assert found == [".spec.template.spec.initContainers[0].env[0]"]


def test_credential_like_configmap_key_is_found() -> None:
    docs = clean_docs()
    docs[0]["data"]["OPENAI_API_KEY"] = "not-a-pattern"
    assert [str(f) for f in scan_for_secret_material(docs)] == [
        "ConfigMap/r-config data.OPENAI_API_KEY: credential-like key in a ConfigMap"
    ]


@pytest.mark.parametrize(("kind", "expected"), [
    ("github", "GitHub token"), ("github_pat", "GitHub token"), ("openai", "OpenAI/Anthropic style key"),
    ("anthropic", "OpenAI/Anthropic style key"), ("aws", "AWS access key id"), ("pem", "PEM private key"),
    ("rsa", "PEM private key"), ("jwt", "JWT"), ("url", "basic-auth URL"),
])
def test_token_patterns_in_a_configmap_value_are_found(kind: str, expected: str) -> None:
    docs = clean_docs()
    docs[0]["data"]["AGENTIC_NOTE"] = f"see {FAKE[kind]} here"
    whats = {f.what for f in scan_for_secret_material(docs)}
    assert expected in whats
    assert {f.obj for f in scan_for_secret_material(docs)} == {"ConfigMap/r-config"}


def test_token_patterns_anywhere_are_found_in_keys_and_nested_values() -> None:
    docs = clean_docs()
    pod_meta = docs[2]["template"]["metadata"]
    pod_meta["annotations"]["leak"] = FAKE["github"]
    pod_meta["labels"] = {FAKE["aws"]: "x"}
    found = {(f.where, f.what) for f in scan_for_secret_material(docs)}
    assert found == {(".template.metadata.annotations.leak", "GitHub token"),
                     (".template.metadata.labels", "AWS access key id")}


def test_benign_look_alikes_are_not_found() -> None:
    docs = clean_docs()
    docs[0]["data"].update({
        "AGENTIC_TASK_CONTEXT_FILE": "/etc/agentic-sdlc/task/context.json",  # "task-..." is not "sk-..."
        "AGENTIC_REPO": "ssh://git@git.example.com/org/repo.git",  # a user without password
        "AGENTIC_DESC": "use the ask-for-review-and-merge flow",
    })
    assert scan_for_secret_material(docs) == []


def test_scan_does_not_change_its_input() -> None:
    docs = clean_docs()
    before = copy.deepcopy(docs)
    scan_for_secret_material(docs)
    assert docs == before
