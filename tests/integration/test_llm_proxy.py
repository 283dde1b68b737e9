"""The LLM proxy as the pod runs it, on the host: the chart's rendered nginx.conf and providers.json
(real helm), the launcher (`python -m mcp_server.runner.llmproxy`) and Debian's nginx, in front of the
scripted model. The agent's side sends a placeholder key; the provider gets the real one; nothing
else is reachable through the proxy; an upstream whose certificate is not trusted gets nothing; no
key reaches a log."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mcp_server.runner.llmproxy import KEYS_FILE
from tests.conftest import wait_until
from tests.support.chart import CHART_DIR, Helm, find
from tests.support.scripted_model import ScriptedModel, Turn
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration

KEY = "sk-scripted-REALKEY-5f4e3d2c1b0a"
TLS_KEY = "sk-tls-REALKEY-0a1b2c3d4e5f"
NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UntrustedTLS:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate (a man in the middle): it records
    whether any request reached it."""

    def __init__(self, tmp: Path) -> None:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                hits.append(self.headers.get("x-api-key") or "")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen[str]
    run_dir: Path
    log: Path

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def raw(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)


@pytest.fixture(scope="module")
def helm(testenv: TestEnv) -> Helm:
    return Helm.for_testenv(testenv)


@pytest.fixture
def proxy(helm: Helm, tmp_path: Path) -> Iterator[tuple[Proxy, ScriptedModel, UntrustedTLS]]:
    assert Path(NGINX).exists(), "nginx is missing: make deps (scripts/install-deps.sh) installs it"
    with ScriptedModel([Turn(text="hello through the proxy")]) as model:
        tls = UntrustedTLS(tmp_path)
        port = free_port()
        values = {
            "externalSecrets": {"enabled": False}, "existingSecret": {"llm": "llm"},
            "llmProxy": {"port": port, "providers": [
                {"name": "scripted", "upstream": model.base_url, "header": "Authorization",
                 "valuePrefix": "Bearer ", "secretKey": "SCRIPTED_API_KEY", "insecure": True},
                {"name": "mitm", "upstream": f"https://localhost:{tls.port}/v1", "header": "x-api-key",
                 "secretKey": "TLS_API_KEY"},
            ]}}
        docs = helm.render(CHART_DIR, release="t", namespace="ns", values=values)
        data = find(docs, "ConfigMap", "t-agentic-sdlc-agent-runner-llm-proxy")["data"]
        config, secret, run = tmp_path / "config", tmp_path / "secret", tmp_path / "run"
        for directory in (config, secret, run):
            directory.mkdir()
        for name, text in data.items():
            (config / name).write_text(text)
        (secret / "SCRIPTED_API_KEY").write_text(KEY)
        (secret / "TLS_API_KEY").write_text(TLS_KEY)
        log = tmp_path / "proxy.log"
        env = {"PATH": os.environ["PATH"], "AGENTIC_LLM_PROXY_DIR": str(config),
               "AGENTIC_LLM_AUTH_DIR": str(secret), "AGENTIC_LLM_PROXY_RUN": str(run)}
        with open(log, "a") as out:  # append: nginx reopens /dev/stdout with its own offset
            process = subprocess.Popen([sys.executable, "-m", "mcp_server.runner.llmproxy"], cwd=REPO_ROOT,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        running = Proxy(port, process, run, log)
        try:
            def listening() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False

            wait_until(listening, timeout=30, message="nginx to listen")
            yield running, model, tls
        finally:
            process.terminate()
            process.wait(timeout=30)
            tls.close()


def chat(proxy: Proxy, provider: str, key: str = "agentic-llm-proxy") -> tuple[int, bytes]:
    body = json.dumps({"model": "scripted-1", "messages": [{"role": "user", "content": "hi"}]}).encode()
    return proxy.request("POST", f"/{provider}/chat/completions", body,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                          "x-api-key": key})


def test_the_provider_gets_the_real_key_and_the_agent_needs_none(proxy) -> None:  # type: ignore[no-untyped-def]
    running, model, _tls = proxy
    status, body = chat(running, "scripted")
    assert status == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == "hello through the proxy"
    assert model.recorded.authorizations == [f"Bearer {KEY}"]


@pytest.mark.parametrize("path", ["/", "/v1/chat/completions", "/other/chat/completions", "/scripted",
                                  "/scripted/../other/x", "/%2e%2e/x", "//evil.example/v1/chat/completions"])
def test_nothing_but_the_configured_providers_is_reachable(proxy, path: str) -> None:  # type: ignore[no-untyped-def]
    running, model, _tls = proxy
    status, body = running.request("POST", path, b"{}")
    # 403 from the catch-all location, 400 for a path nginx refuses, 301 from /scripted to /scripted/ on the proxy
    assert status in (403, 400) or (status == 301 and path == "/scripted"), (path, status, body)
    assert model.recorded.requests == []


def test_an_absolute_url_or_a_host_header_does_not_choose_the_upstream(proxy) -> None:  # type: ignore[no-untyped-def]
    """A proxy-style request for another host still goes to the configured upstream or nowhere."""
    running, model, _tls = proxy
    answer = running.raw(b"GET http://evil.example/steal HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    status, _ = running.request("POST", "/scripted/chat/completions", b"{}", {"Host": "evil.example"})
    assert status == 200  # the scripted model answered: the only upstream there is
    assert len(model.recorded.requests) == 1


def test_an_upstream_whose_certificate_is_not_trusted_gets_nothing(proxy) -> None:  # type: ignore[no-untyped-def]
    running, _model, tls = proxy
    status, _ = chat(running, "mitm")
    assert status == 502
    assert tls.hits == []


def test_no_key_reaches_the_logs_or_a_file_other_users_can_read(proxy) -> None:  # type: ignore[no-untyped-def]
    running, _model, _tls = proxy
    chat(running, "scripted")
    chat(running, "mitm")
    running.process.terminate()
    running.process.wait(timeout=30)
    log = running.log.read_text()
    assert "POST /scripted/chat/completions" in log  # the access log is there ...
    assert KEY not in log and TLS_KEY not in log  # ... without the keys
    keys = running.run_dir / KEYS_FILE
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert KEY not in (running.run_dir / "nginx.conf").read_text()
