"""The raw anchor: plain HTTPS requests to the API server with one kept-alive connection pool
(urllib3, a kubeconfig's token and CA), no client library, no model classes: what a request costs
by itself."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import urllib3
import yaml


class RawKube:
    def __init__(self, kubeconfig: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        self.server = str(cluster["server"])
        self._ca = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)  # noqa: SIM115
        self._ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        self._ca.close()
        token = doc["users"][0]["user"]["token"]
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.http = urllib3.PoolManager(maxsize=16, ca_certs=self._ca.name, cert_reqs="CERT_REQUIRED")

    def close(self) -> None:
        self.http.clear()
        Path(self._ca.name).unlink(missing_ok=True)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, str] | None = None) -> dict[str, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        response = self.http.request(method, self.server + path, body=data, headers=headers, fields=query,
                                     timeout=urllib3.Timeout(connect=5, read=60))
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {response.data[:300]!r}")
        return json.loads(response.data) if response.data else {}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body)

    def list(self, path: str, selector: str) -> dict[str, Any]:
        return self.request("GET", path, query={"labelSelector": selector})


def job_copy(job: dict[str, Any], name: str, task_id: str, pod_annotations: dict[str, str] | None = None,
             ) -> dict[str, Any]:
    """A Job the server made, as a new manifest with another name and task id (what was set by the API
    server - uid, status, the controller's selector and labels - taken out)."""
    meta = job["metadata"]
    labels = {**meta.get("labels", {}), "agentic-sdlc.dev/task-id": task_id}
    spec = json.loads(json.dumps(job["spec"]))
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {
        k: v for k, v in (template_meta.get("labels") or {}).items()
        if k not in ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name")
    }
    template_meta["labels"]["agentic-sdlc.dev/task-id"] = task_id
    if pod_annotations:
        template_meta["annotations"] = {**(template_meta.get("annotations") or {}), **pod_annotations}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "annotations": meta.get("annotations", {})},
        "spec": spec,
    }
