"""Runs a Pod, as the API server holds it, with podman: the way a kubelet would run its `agent`
container, for the image test. What is translated (and nothing else is silently dropped: an unknown
volume kind fails the test):

- image, command/args, workingDir;
- env (value, secretKeyRef, configMapKeyRef, fieldRef metadata.*) and envFrom (configMapRef,
  secretRef), env winning over envFrom as in Kubernetes, passed through a 0600 env file;
- pod and container securityContext: runAsUser/runAsGroup (--user), fsGroup (--group-add and the
  group of mounted files), readOnlyRootFilesystem (--read-only), capabilities.drop ALL (--cap-drop),
  allowPrivilegeEscalation false (no-new-privileges);
- volumes: emptyDir (a fresh host directory, mode 0777 like the kubelet's), downwardAPI
  (metadata.annotations / labels items written to files), secret and configMap (items, defaultMode,
  group fsGroup), each mounted at its volumeMount (readOnly kept);
- terminationMessagePath: a host file bind-mounted there, read back as the termination message.

The container gets the host network (the git daemon and the scripted model listen on 127.0.0.1).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
ANNOTATION_REF = re.compile(r"metadata\.(annotations|labels)\['([^']+)'\]")


@dataclass(frozen=True)
class PodRun:
    exit_code: int
    stdout: str
    termination_message: str
    volumes: Path


class PodTranslator:
    def __init__(
        self,
        pod: Obj,
        configmap: Callable[[str], Mapping[str, str]],
        secret: Callable[[str], Mapping[str, str]],
        workdir: Path,
    ) -> None:
        self.pod = pod
        self.spec = pod["spec"]
        self.container = next(c for c in self.spec["containers"] if c["name"] == "agent")
        self.configmap = configmap
        self.secret = secret
        self.workdir = workdir
        self.pod_sc = self.spec.get("securityContext") or {}
        self.fs_group = self.pod_sc.get("fsGroup")

    # -- env ---------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.configmap(source["configMapRef"]["name"])
            elif "secretRef" in source:
                data = self.secret(source["secretRef"]["name"])
            else:
                raise AssertionError(f"envFrom source not translated: {source}")
            env.update({prefix + k: v for k, v in data.items()})
        for item in self.container.get("env") or []:
            env[item["name"]] = self._env_value(item)
        return env

    def _env_value(self, item: Obj) -> str:
        if "value" in item:
            return str(item["value"])
        ref = item.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            return self.secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        if "configMapKeyRef" in ref:
            return self.configmap(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        if "fieldRef" in ref:
            return self._field(ref["fieldRef"]["fieldPath"])
        raise AssertionError(f"env source not translated: {item}")

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        match = ANNOTATION_REF.fullmatch(path)
        if match:
            return (meta.get(match.group(1)) or {}).get(match.group(2), "")
        simple = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": meta.get("namespace"),
            "spec.serviceAccountName": self.spec.get("serviceAccountName"),
        }
        if path not in simple:
            raise AssertionError(f"fieldRef not translated: {path}")
        return str(simple[path] or "")

    # -- volumes -----------------------------------------------------------------------------------

    def _files(self, directory: Path, files: Mapping[str, str], mode: int) -> None:
        directory.mkdir(parents=True)
        directory.chmod(0o755)
        for rel, content in files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            if self.fs_group is not None:
                os.chown(path, 0, int(self.fs_group))
                mode |= 0o040  # the kubelet makes fsGroup-owned files group-readable
            path.chmod(mode)

    def _volume(self, volume: Obj) -> Path:
        host = self.workdir / "volumes" / volume["name"]
        if "emptyDir" in volume:
            host.mkdir(parents=True)
            host.chmod(0o777)
        elif "downwardAPI" in volume:
            items = volume["downwardAPI"]["items"]
            self._files(host, {i["path"]: self._field(i["fieldRef"]["fieldPath"]) for i in items}, 0o644)
        elif "secret" in volume:
            src = volume["secret"]
            data = self.secret(src["secretName"])
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            self._files(host, {i["path"]: data[i["key"]] for i in items}, src.get("defaultMode", 0o644))
        elif "configMap" in volume:
            src = volume["configMap"]
            data = self.configmap(src["name"])
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            self._files(host, {i["path"]: data[i["key"]] for i in items}, src.get("defaultMode", 0o644))
        else:
            raise AssertionError(f"volume kind not translated: {volume}")
        return host

    # -- the command -------------------------------------------------------------------------------

    def command(self, name: str) -> tuple[list[str], Path]:
        c, sc = self.container, {**self.pod_sc, **(self.container.get("securityContext") or {})}
        self.workdir.mkdir(parents=True, exist_ok=True)
        env_file = self.workdir / "env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            for key, value in self.env().items():
                if "\n" in value:
                    raise AssertionError(f"env {key} has a newline; podman env files cannot hold it")
                handle.write(f"{key}={value}\n")
        args = [
            "podman",
            "run",
            "--rm",
            "--name",
            name,
            "--hostname",
            self.pod["metadata"]["name"],
            "--network",
            "host",
            "--pull",
            "never",
            "--env-file",
            str(env_file),
        ]
        if "runAsUser" in sc:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        if self.fs_group is not None:
            args += ["--group-add", str(self.fs_group)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if "ALL" in ((sc.get("capabilities") or {}).get("drop") or []):
            args.append("--cap-drop=ALL")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if c.get("workingDir"):
            args += ["--workdir", c["workingDir"]]
        hosts = {v["name"]: self._volume(v) for v in self.spec.get("volumes") or []}
        for mount in c.get("volumeMounts") or []:
            opts = "ro" if mount.get("readOnly") else "rw"
            args += ["--volume", f"{hosts[mount['name']]}:{mount['mountPath']}:{opts}"]
        termination = self.workdir / "termination-log"
        termination.touch()
        termination.chmod(0o666)
        args += ["--volume", f"{termination}:{c.get('terminationMessagePath', '/dev/termination-log')}:rw"]
        if c.get("command"):
            args += ["--entrypoint", c["command"][0]]
        args.append(c["image"])
        args += (c.get("command") or [])[1:] + (c.get("args") or [])
        return args, termination


def run_pod(
    pod: Obj,
    configmap: Callable[[str], Mapping[str, str]],
    secret: Callable[[str], Mapping[str, str]],
    workdir: Path,
    containers_conf: Path,
    timeout: float = 600,
) -> PodRun:
    name = f"agentic-e2e-{pod['metadata']['name']}"[:60]
    args, termination = PodTranslator(pod, configmap, secret, workdir).command(name)
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf)}
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    finally:
        subprocess.run(["podman", "rm", "--force", "--ignore", name], capture_output=True, env=env)
    (workdir / "output.log").write_text(proc.stdout + proc.stderr)  # kept for a look after a failure
    return PodRun(proc.returncode, proc.stdout + proc.stderr, termination.read_text(), workdir / "volumes")


def decode_secret(obj: Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
