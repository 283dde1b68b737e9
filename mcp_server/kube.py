"""A thin JSON client over the Kubernetes API (the `kubernetes` package does auth and transport).

The backend works with plain JSON dicts: it reads objects back as the API server sends them (a
listing, only the fields it reads: `mcp_server.backends.brief`) and writes only the fields it means
to. Every failure becomes a `RunnerError` a user can act on: 403 -> `Forbidden` (verb, resource,
namespace), an unreachable server -> `BackendUnavailable`. 404, 400, 409 and 410 are raised as
`NotFound`, `BadRequest`, `AlreadyExists`, `Gone` for the backend to handle.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from mcp_server.errors import BackendUnavailable, ConfigError, Forbidden, RunnerError

# (connect, read) seconds: a dead API server is noticed quickly, a slow list still completes.
DEFAULT_TIMEOUT = (5.0, 30.0)
# A refused or reset connection is tried again (an API server restarting); a request that got no
# answer in time is not: urllib3's default (three retries) made one call of a tool wait 4 x 30 s on an
# API server whose etcd is down, past any MCP client's tool timeout.
RETRIES = urllib3.Retry(total=2, connect=2, read=0, redirect=0, status=0, other=0)
# Right after it (re)starts, an API server denies everyone but system:masters until its RBAC
# informers have synced. A 403 to an access it granted this client before is taken for that, for
# at most this long; after that it is a real denial.
RESTART_FORBIDDEN_SECONDS = 30.0

_USER_RE = re.compile(r'User "([^"]+)"')


class NotFound(Exception):
    """404 from the API server (handled by the backend, never shown as such)."""


class BadRequest(Exception):
    """400 from the API server (e.g. a log of a container that has not started)."""


class AdmissionDenied(Exception):
    """An admission policy refused the request (its message says which and why)."""


class AlreadyExists(Exception):
    """409 from the API server on create."""


class Gone(Exception):
    """410 from the API server (e.g. an expired continue token of a paged list)."""


@dataclass(frozen=True)
class Access:
    """What a request needs, to name it in a Forbidden error."""

    verb: str
    resource: str  # e.g. "jobs.batch", "pods/log"
    namespace: str


def load_api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """An ApiClient for a kubeconfig/context, or the in-cluster service account inside a pod."""
    files = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    have_file = any(Path(p).expanduser().is_file() for p in files.split(os.pathsep) if p)
    try:
        if have_file:
            configuration = client.Configuration()
            config.load_kube_config(
                config_file=files, context=context, client_configuration=configuration, persist_config=False
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
        else:
            raise ConfigError(
                f"no kubeconfig found ({files}) and not running in a cluster. Set KUBECONFIG or "
                "AGENTIC_KUBECONFIG, or use the local backend (AGENTIC_BACKEND=local)."
            )
    except ConfigException as exc:
        where = f"context {context!r}" if context else "the current context"
        raise ConfigError(
            f"cannot load the Kubernetes configuration for {where} from {files}: {exc}. "
            "Check AGENTIC_KUBECONTEXT / kube_context in .agentic-sdlc/config.yaml."
        ) from None
    configuration.retries = RETRIES
    return client.ApiClient(configuration=configuration)


class KubeClient:
    """GET/POST/DELETE of API paths with JSON bodies; errors mapped to RunnerErrors."""

    def __init__(
        self,
        api_client: client.ApiClient,
        forbidden_hint: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.api_client = api_client
        self.forbidden_hint = forbidden_hint
        self.timeout = timeout
        self._granted: set[tuple[str, str, str]] = set()
        self._denied_since: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        access: Access,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        timeout: tuple[float, float] | None = None,
        text: bool = False,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """The response's JSON body (`decode`: how to parse it; default json.loads), or with `text` its
        text."""
        response = self._send(method, path, access, query, body, timeout, text)
        try:
            response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc, access) from None
        status = int(response.status)
        data = response.data or b""
        key = (access.verb, access.resource, access.namespace)
        if status < 500 and status not in (401, 403):  # it got past authorization
            with self._lock:
                self._granted.add(key)
                self._denied_since.pop(key, None)
        if 200 <= status < 300:
            if text:
                return data.decode("utf-8", errors="replace")
            return (decode or json.loads)(data) if data else {}
        self._raise(status, data, access)

    def stream(
        self, path: str, access: Access, *, query: dict[str, Any] | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """A GET whose body is read as it arrives (e.g. a log with follow=true): the open response,
        once its headers are in. The caller closes it. Errors as for `request`."""
        response = self._send("GET", path, access, query, None, timeout, True)
        if 200 <= int(response.status) < 300:
            return response.response
        try:
            data = response.read() or b""
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc, access) from None
        self._raise(int(response.status), data, access)

    def _send(
        self, method: str, path: str, access: Access, query: dict[str, Any] | None,
        body: dict[str, Any] | None, timeout: tuple[float, float] | None, text: bool,
    ) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "*/*" if text else "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        _method, url, header_params, req_body, _post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.api_client.call_api(
                method,
                url,
                header_params=header_params,
                body=req_body,
                _request_timeout=timeout or self.timeout,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc, access) from None

    def _unavailable(self, exc: Exception, access: Access) -> BackendUnavailable:
        cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            what = f"did not answer in time ({type(cause).__name__}; is its etcd down?)"
        else:
            what = f"cannot be reached ({type(cause).__name__})"
        return BackendUnavailable(
            f"cluster unavailable: the Kubernetes API server at {self.host} {what} while "
            f"trying to {access.verb} {access.resource} in namespace {access.namespace!r}. Check that "
            "the cluster is up and the kube context is right, then retry."
        )

    def _passing_denial(self, access: Access) -> None:
        """Raise BackendUnavailable for a 403 to an access granted before, for a short while (an API
        server that has just restarted); otherwise return (the 403 is a real denial)."""
        key = (access.verb, access.resource, access.namespace)
        now = time.monotonic()
        with self._lock:
            if key not in self._granted:
                return
            since = self._denied_since.setdefault(key, now)
            if now - since >= RESTART_FORBIDDEN_SECONDS:
                self._granted.discard(key)
                self._denied_since.pop(key, None)
                return
        raise BackendUnavailable(
            f"cluster unavailable: the Kubernetes API server at {self.host} refused to {access.verb} "
            f"{access.resource} in "
            f"namespace {access.namespace!r}, which it allowed a moment ago: it has probably just "
            "restarted and not loaded its RBAC rules yet. Retry in a moment."
        )

    def _raise(self, status: int, data: bytes, access: Access) -> NoReturn:
        try:
            payload = json.loads(data)
            message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
        except ValueError:
            message = data.decode("utf-8", errors="replace")[:300]
        if status == 404:
            raise NotFound(message)
        if status == 400:
            raise BadRequest(message)
        if status == 410:
            raise Gone(message)
        if status == 409 and access.verb == "create":
            raise AlreadyExists(message)
        if status in (403, 422) and "ValidatingAdmissionPolicy" in message:
            raise AdmissionDenied(message)
        if status == 403:
            self._passing_denial(access)
            match = _USER_RE.search(message)
            raise Forbidden(
                access.verb,
                access.resource,
                access.namespace,
                user=match.group(1) if match else None,
                hint=self.forbidden_hint,
            )
        if status == 401:
            raise RunnerError(
                f"unauthorized: the Kubernetes API server at {self.host} rejected the credentials of the "
                "kube context. Log in again (refresh the kubeconfig), then retry."
            )
        if status >= 500 or status == 429:
            raise BackendUnavailable(
                f"cluster unavailable: the Kubernetes API server at {self.host} answered {status} to {access.verb} "
                f"{access.resource} in namespace {access.namespace!r}: {message}. Retry in a moment."
            )
        raise RunnerError(
            f"the Kubernetes API server refused to {access.verb} {access.resource} in "
            f"namespace {access.namespace!r} ({status}): {message}"
        )
