"""Real git remotes for the runner's tests, all on 127.0.0.1: a bare repository (file://), the same
served by `git daemon` (git://, push enabled), by a throwaway `sshd` with a generated host key and
client key (ssh://, strict host-key checking through a known_hosts file), and by `git http-backend`
behind HTTP basic auth (https-style token auth over http://127.0.0.1)."""

from __future__ import annotations

import atexit
import base64
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_BRANCH = "001-feature"
SEED_FILES = {
    "README.md": "hello world\n",
    "src/app.py": 'def greet() -> str:\n    return "hello"\n',
    "specs/001-feature/tasks.md": "# Tasks\n\n- [ ] T001 [ASYNC] Change the greeting in README.md\n",
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass(frozen=True)
class BareRemote:
    """A bare repository with `main` and the feature branch BASE_BRANCH (one commit ahead)."""

    path: Path

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def sha(self, branch: str) -> str | None:
        out = git(
            "--git-dir", str(self.path), "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False
        )
        return out.strip() or None

    def branches(self) -> list[str]:
        out = git("--git-dir", str(self.path), "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return out.split()

    def show(self, branch: str, path: str) -> str:
        return git("--git-dir", str(self.path), "show", f"{branch}:{path}")

    def log(self, branch: str, fmt: str = "%s") -> list[str]:
        return git("--git-dir", str(self.path), "log", f"--format={fmt}", branch).splitlines()

    def install_hook(self, name: str, script: str) -> None:
        hook = self.path / "hooks" / name
        hook.write_text(script)
        hook.chmod(0o755)


def make_bare_remote(root: Path, name: str = "project.git") -> BareRemote:
    work = root / "seed"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    for rel, content in SEED_FILES.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "initial", cwd=work)
    git("switch", "-q", "-c", BASE_BRANCH, cwd=work)
    (work / "specs/001-feature/plan.md").write_text("# Plan\n\nKeep it small.\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "feature: plan", cwd=work)
    bare = root / name
    git("clone", "-q", "--bare", str(work), str(bare))
    git("--git-dir", str(bare), "config", "http.receivepack", "true")
    shutil.rmtree(work)
    return BareRemote(bare)


@contextmanager
def git_daemon(base: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """`git daemon` serving every repository under `base` (push enabled) on `host` (127.0.0.1; the
    real node's gateway address for pods there); yields the URL prefix `git://<host>:<port>`."""
    port = free_port(host)
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            f"--base-path={base}",
            f"--listen={host}",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, host=host)
        yield f"git://{host}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_SERVED: list[tuple[subprocess.Popen[bytes], int]] = []


def served_url(repo: Path) -> str:
    """`repo` (under /tmp) through one `git daemon` per test process on 127.0.0.1 (fetch and push),
    started at the first call and stopped when the process exits: a URL a cluster task may be given
    (the test releases allow 127.0.0.1 as an insecure host; `file://` is refused for pods)."""
    if not _SERVED:
        port = free_port()
        proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors",
             "--listen=127.0.0.1", f"--port={port}", "/tmp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        atexit.register(proc.terminate)
        wait_for_port(port)
        _SERVED.append((proc, port))
    return f"git://127.0.0.1:{_SERVED[0][1]}{repo.resolve()}"


@dataclass(frozen=True)
class SshKeys:
    """A client key pair and the secret directory the runner reads (ssh-privatekey, known_hosts)."""

    secret_dir: Path
    private_key: Path
    public_key: str


def make_client_key(root: Path, name: str = "client") -> SshKeys:
    root.mkdir(parents=True, exist_ok=True)
    key = root / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)], check=True
    )
    secret = root / f"{name}-secret"
    secret.mkdir()
    shutil.copy(key, secret / "ssh-privatekey")
    (secret / "ssh-privatekey").chmod(0o400)
    return SshKeys(secret, key, (root / f"{name}.pub").read_text().strip())


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    host_key_line: str

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def known_hosts(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_line}\n"


@contextmanager
def sshd(root: Path, authorized: list[str]) -> Iterator[SshServer]:
    """A throwaway sshd on 127.0.0.1 that accepts only the given public keys, for this user."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd_bin).exists():
        raise AssertionError("sshd not found: run scripts/install-deps.sh (openssh-server)")
    root.mkdir(parents=True, exist_ok=True)
    host_key = root / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized_keys = root / "authorized_keys"
    authorized_keys.write_text("".join(k + "\n" for k in authorized))
    authorized_keys.chmod(0o600)
    user = pwd.getpwuid(os.getuid()).pw_name
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized_keys}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                f"PidFile {root / 'sshd.pid'}",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    if os.getuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (root / "sshd.log").open("w")
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        host_line = " ".join((root / "host_ed25519.pub").read_text().split()[:2])
        yield SshServer(port, user, host_line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@contextmanager
def http_git(base: Path, username: str, token: str, host: str = "127.0.0.1") -> Iterator[str]:
    """`git http-backend` (smart HTTP, push enabled) behind HTTP basic auth on `host` (127.0.0.1; the
    real node's gateway for pods there); yields the URL prefix `http://<host>:<port>`. Requests
    without the right user and token get 401."""
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(base),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": username,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(base),
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").split("\r\n"):
                if not line:
                    continue
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                else:
                    headers.append((key.strip(), value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
