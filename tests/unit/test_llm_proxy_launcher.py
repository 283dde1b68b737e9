"""runner/llmproxy.py: the llm-proxy container's launcher hands nginx the LLM keys in a file of its
own (mode 0600), never echoes one, and refuses a value nginx would misread."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mcp_server.runner import llmproxy

KEY = "sk-ant-REALKEY-0123456789abcdef"


def setup_dirs(tmp_path: Path, providers: list[dict[str, object]], keys: dict[str, str]) -> tuple[Path, Path, Path]:
    config, secret, run = tmp_path / "config", tmp_path / "secret", tmp_path / "run"
    config.mkdir()
    secret.mkdir()
    (config / "providers.json").write_text(json.dumps(providers))
    (config / "nginx.conf").write_text("events {}\n")
    for name, value in keys.items():
        (secret / name).write_text(value + "\n")
    return config, secret, run


def test_each_provider_gets_its_key_with_its_prefix_in_a_private_file(tmp_path: Path) -> None:
    providers = [{"index": 0, "name": "anthropic", "header": "x-api-key", "valuePrefix": "", "secretKey": "A"},
                 {"index": 1, "name": "openai", "header": "Authorization", "valuePrefix": "Bearer ",
                  "secretKey": "O"}]
    config, secret, run = setup_dirs(tmp_path, providers, {"A": KEY, "O": "sk-openai-1"})
    warnings: list[str] = []
    conf = llmproxy.prepare(config, secret, run, warnings.append)
    assert conf == run / "nginx.conf" and conf.read_text() == "events {}\n"
    keys = run / llmproxy.KEYS_FILE
    assert keys.read_text().splitlines()[1:] == [
        f'map $host $llm_key_0 {{ default "{KEY}"; }}',
        'map $host $llm_key_1 { default "Bearer sk-openai-1"; }']
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert warnings == []


@pytest.mark.parametrize(("keys", "warning"), [
    ({}, "provider anthropic: the LLM Secret has no key A (llmProxy.providers[].secretKey); "
         "requests go out without a key"),
    ({"A": 'sk-"; } server { listen 0.0.0.0:80'}, "provider anthropic: the value of A has characters a header "
                                                    "cannot carry; requests go out without a key"),
    ({"A": "sk-$host"}, "provider anthropic: the value of A has characters a header cannot carry; "
                        "requests go out without a key"),
])
def test_a_missing_or_unusable_key_is_left_out_with_a_warning_that_does_not_show_it(
        tmp_path: Path, keys: dict[str, str], warning: str) -> None:
    providers = [{"index": 0, "name": "anthropic", "header": "x-api-key", "valuePrefix": "", "secretKey": "A"}]
    config, secret, run = setup_dirs(tmp_path, providers, keys)
    warnings: list[str] = []
    llmproxy.prepare(config, secret, run, warnings.append)
    assert warnings == [warning]
    assert (run / llmproxy.KEYS_FILE).read_text().splitlines()[1:] == ['map $host $llm_key_0 { default ""; }']
    for value in keys.values():
        assert value not in " ".join(warnings)


def test_a_secret_key_that_leaves_the_secret_directory_is_refused(tmp_path: Path) -> None:
    providers = [{"index": 0, "name": "x", "header": "x-api-key", "valuePrefix": "", "secretKey": "../../etc/shadow"}]
    config, secret, run = setup_dirs(tmp_path, providers, {})
    with pytest.raises(llmproxy.ProxyConfigError, match="secretKey '../../etc/shadow' is not a key of a Secret"):
        llmproxy.prepare(config, secret, run, print)
    assert not (run / llmproxy.KEYS_FILE).exists()


def test_the_launcher_exits_2_when_the_config_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = llmproxy.main([], {"AGENTIC_LLM_PROXY_DIR": str(tmp_path / "none"), "AGENTIC_LLM_PROXY_RUN": str(tmp_path)})
    assert code == 2
    assert capsys.readouterr().err.startswith(f"llm-proxy: cannot read {tmp_path / 'none' / 'providers.json'}")
