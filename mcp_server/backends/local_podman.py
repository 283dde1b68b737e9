"""The local task in the agent image, with the pod's isolation: `AGENTIC_LOCAL_SANDBOX=podman`.

The pod's shape lives only in the chart: the supervisor renders the chart's PodTemplate and ConfigMaps
(`helm template`, the chart's values + `AGENTIC_LOCAL_VALUES` + the local image) and runs that pod with
podman, translated container by container (`PodPlan`):

- `agent` (uid 1000) and the native sidecar `llm-proxy` (uid 1002) run as containers of one podman
  pod: they share its network namespace (OpenCode reaches the proxy on 127.0.0.1) and nothing else
  (each has its own process namespace: neither sees the other's processes or environment);
- `git-clone` and `git-push` are played by the supervisor on the host, outside the pod, with the
  developer's own git credentials (as without podman): it clones the task's base from the developer's
  repository into the `workspace` volume before the agent starts, and serves the `push-queue` volume,
  pushing exactly the task branch. The developer's repository is mounted into no container;
- the container's security context is the chart's: `--user`, `--read-only` for
  readOnlyRootFilesystem, `--cap-drop=ALL`, `no-new-privileges`, podman's default seccomp profile,
  `--memory`/`--cpus` from the limits;
- volumes: an emptyDir is a fresh host directory of the task (mode 0777, as the kubelet's); the
  task-context downwardAPI file is the task's context.json; a configMap is the rendered ConfigMap's
  files; the LLM Secret's keys are the developer's environment variables of the same names (the
  providers' `secretKey`), written to files owned by the proxy's uid (0400) and mounted only into
  `llm-proxy`. A volume or container of another kind fails the task with an error naming it (the
  chart changed; this translation must follow).

The agent's container gets no Secret, no credential in its environment and no developer file; its
result (the termination message) comes back through a file of its own, which the supervisor copies
into the task's state. The network is podman's default for the pod (a network namespace of its own
with NAT) or `AGENTIC_LOCAL_PODMAN_NETWORK` (any `podman pod create --network` value).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_server.errors import ConfigError

Obj = dict[str, Any]
DEFAULT_IMAGE = "localhost/agentic-sdlc-agent-runner:dev"
HOST_SIDE = ("git-clone", "git-push")  # played by the supervisor, outside the pod
ANNOTATION_REF = re.compile(r"metadata\.(annotations|labels)\['([^']+)'\]")
CONTEXT_ANNOTATION = "agentic-sdlc.dev/task-context"
LLM_SECRET = "agentic-local-llm"
RELEASE = "agentic-local"
NAME_MAX = 63


@dataclass(frozen=True)
class PodmanSettings:
    image: str
    podman: str
    helm: str
    chart: Path
    values: tuple[Path, ...]
    network: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PodmanSettings:
        """The podman mode's settings, each checked: ConfigError names the variable."""
        podman = _program(environ, "AGENTIC_PODMAN", "podman", "AGENTIC_LOCAL_SANDBOX=podman but podman is not "
                          "installed (Debian: apt-get install podman)")
        helm = _program(environ, "AGENTIC_HELM", "helm", "AGENTIC_LOCAL_SANDBOX=podman renders the chart's pod with "
                        "helm, which is not installed")
        chart = Path(environ.get("AGENTIC_LOCAL_CHART") or Path(__file__).resolve().parents[2] / "chart")
        if not (chart / "Chart.yaml").is_file():
            raise ConfigError(f"AGENTIC_LOCAL_CHART: {chart} is not the agent-runner chart (no Chart.yaml); set it to "
                              "the chart's directory (chart/ of the source tree, or an unpacked chart package)")
        values = tuple(Path(p) for p in (environ.get("AGENTIC_LOCAL_VALUES") or "").split(os.pathsep) if p.strip())
        for path in values:
            if not path.is_file():
                raise ConfigError(f"AGENTIC_LOCAL_VALUES: {path} is not a file; allowed: chart values files "
                                  f"separated by {os.pathsep!r}")
        image = (environ.get("AGENTIC_LOCAL_IMAGE") or DEFAULT_IMAGE).strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?", image) or ":" not in image.split("/")[-1]:
            raise ConfigError(f"AGENTIC_LOCAL_IMAGE: {image!r} is not an image reference with a tag "
                              "(repository:tag or repository:tag@sha256:...)")
        return cls(image=image, podman=podman, helm=helm, chart=chart, values=values,
                   network=(environ.get("AGENTIC_LOCAL_PODMAN_NETWORK") or "").strip() or None)

    def image_parts(self) -> tuple[str, str]:
        repository, _, tag = self.image.partition("@")[0].rpartition(":")
        return repository, tag


def _program(environ: Mapping[str, str], variable: str, default: str, missing: str) -> str:
    given = (environ.get(variable) or "").strip()
    found = shutil.which(given or default, path=environ.get("PATH"))
    if found is None:
        if given:
            raise ConfigError(f"{variable}: {given} is not an executable program")
        raise ConfigError(f"{missing}; install it or set {variable} to its path")
    return found


def render(settings: PodmanSettings, environ: Mapping[str, str]) -> tuple[Obj, dict[str, Obj]]:
    """The chart's PodTemplate and ConfigMaps (by name), rendered for the local image: the chart's values,
    then AGENTIC_LOCAL_VALUES, then what the local run fixes (the image; no git credential in the pod: the
    supervisor does the git work; the LLM Secret is the developer's environment)."""
    import yaml  # only the podman mode needs it, at a task's start

    repository, tag = settings.image_parts()
    fixed = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "git": {"auth": "none"},
        "externalSecrets": {"enabled": False},
        "existingSecret": {"llm": LLM_SECRET},
    }
    args = [settings.helm, "template", RELEASE, str(settings.chart), "--namespace", "local",
            "--kube-version", _kube_version(settings.chart),
            "--show-only", "templates/podtemplate.yaml", "--show-only", "templates/configmap.yaml"]
    for path in settings.values:
        args += ["--values", str(path)]
    args += ["--set-json", f"image={json.dumps(fixed['image'])}", "--set", "git.auth=none",
             "--set", "externalSecrets.enabled=false", "--set", f"existingSecret.llm={LLM_SECRET}"]
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(environ))
    if proc.returncode != 0:
        raise ConfigError(f"helm template of the chart {settings.chart} failed (AGENTIC_LOCAL_VALUES): "
                          f"{proc.stderr.strip()[-2000:]}")
    template: Obj | None = None
    configmaps: dict[str, Obj] = {}
    for doc in yaml.safe_load_all(proc.stdout):
        if isinstance(doc, dict) and doc.get("kind") == "PodTemplate":
            template = doc
        elif isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
            configmaps[doc["metadata"]["name"]] = doc
    if template is None:
        raise ConfigError(f"the chart {settings.chart} rendered no PodTemplate (templates/podtemplate.yaml)")
    return template, configmaps


def _kube_version(chart: Path) -> str:
    """The lowest Kubernetes the chart supports (its kubeVersion): a local run has no cluster to ask, and
    a helm built without a default version would assume one below the chart's range."""
    match = re.search(r"^kubeVersion:\s*[\"']?>=\s*v?(\d+\.\d+\.\d+)", (chart / "Chart.yaml").read_text(), re.M)
    return f"v{match.group(1)}" if match else "v1.30.0"


@dataclass
class ContainerRun:
    """One container of the pod as a `podman run` command line."""

    name: str
    args: list[str]
    termination: Path | None = None
    probe: list[str] | None = None
    probe_period: float = 1.0
    probe_failures: int = 30


@dataclass
class PodPlan:
    """The chart's pod translated for podman: the pod, its sidecars (started first, in order) and the
    agent (run attached). `dirs` are the host directories of its volumes."""

    pod: str
    create: list[str]
    sidecars: list[ContainerRun]
    agent: ContainerRun
    dirs: dict[str, Path] = field(default_factory=dict)


class PodTranslator:
    def __init__(
        self,
        template: Obj,
        configmaps: Mapping[str, Obj],
        secret: Callable[[str, str], str | None],
        workdir: Path,
        pod: str,
        context_json: str,
        bound_dirs: Mapping[str, Path],
        podman: str = "podman",
    ) -> None:
        self.template = template
        self.spec: Obj = template["template"]["spec"]
        self.meta: Obj = {**(template["template"].get("metadata") or {}), "name": pod}
        self.meta["annotations"] = {**(self.meta.get("annotations") or {}), CONTEXT_ANNOTATION: context_json}
        self.configmaps = configmaps
        self.secret = secret
        self.workdir = workdir
        self.pod = pod
        self.bound = bound_dirs
        self.podman = podman
        self.pod_sc: Obj = self.spec.get("securityContext") or {}
        self._volumes: dict[str, Obj] = {v["name"]: v for v in self.spec.get("volumes") or []}
        self._made: dict[tuple[str, int | None], Path] = {}

    # -- containers --------------------------------------------------------------------------------

    def plan(self, network: str | None) -> PodPlan:
        if self.pod_sc.get("fsGroup") is not None:
            raise ConfigError("the chart's pod has an fsGroup: its translation for podman gives none (no container "
                              "may share a group with the agent)")
        sidecars: list[ContainerRun] = []
        for c in self.spec.get("initContainers") or []:
            if c["name"] in HOST_SIDE:
                continue
            if c.get("restartPolicy") != "Always":
                raise ConfigError(f"the chart's pod has the init container {c['name']!r}, which the podman mode "
                                  f"does not run; it runs the sidecars and {', '.join(HOST_SIDE)} (on the host)")
            sidecars.append(self.container(c))
        agents = [c for c in self.spec.get("containers") or [] if c["name"] == "agent"]
        others = [c["name"] for c in self.spec.get("containers") or [] if c["name"] != "agent"]
        if len(agents) != 1 or others:
            raise ConfigError(f"the chart's pod must have exactly one container, agent; it has {others or 'none'}")
        create = [self.podman, "pod", "create", "--name", self.pod, "--hostname", self.pod[:NAME_MAX],
                  "--share", "ipc,net,uts", "--label", "app.kubernetes.io/managed-by=agentic-sdlc-local"]
        if network:
            create += ["--network", network]
        return PodPlan(self.pod, create, sidecars, self.container(agents[0]), self.dirs())

    def container(self, c: Obj) -> ContainerRun:
        sc = {**self.pod_sc, **(c.get("securityContext") or {})}
        name = f"{self.pod}-{c['name']}"
        args = [self.podman, "run", "--pod", self.pod, "--name", name, "--pull", "never"]
        if sc.get("privileged"):
            raise ConfigError(f"the chart's container {c['name']} is privileged; the podman mode runs none")
        if "runAsUser" not in sc:
            raise ConfigError(f"the chart's container {c['name']} has no runAsUser; the podman mode runs every "
                              "container under the chart's own uid")
        uid = int(sc["runAsUser"])
        args += ["--user", f"{uid}:{int(sc.get('runAsGroup', uid))}"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        drop = (sc.get("capabilities") or {}).get("drop") or []
        if "ALL" in drop:
            args.append("--cap-drop=ALL")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        limits = (c.get("resources") or {}).get("limits") or {}
        if limits.get("memory"):
            args += ["--memory", _quantity_bytes(str(limits["memory"]))]
        if limits.get("cpu"):
            args += ["--cpus", _cpus(str(limits["cpu"]))]
        env_file = self.workdir / f"{c['name']}.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            for key, value in self.env(c).items():
                if "\n" in value:
                    raise ConfigError(f"the env {key} of the container {c['name']} has a newline, which podman's "
                                      "env file cannot carry")
                handle.write(f"{key}={value}\n")
        args += ["--env-file", str(env_file)]
        if c.get("workingDir"):
            args += ["--workdir", c["workingDir"]]
        for mount in c.get("volumeMounts") or []:
            host = self.volume(mount["name"], uid)
            opts = "ro" if mount.get("readOnly") else "rw"
            args += ["--volume", f"{host}:{mount['mountPath']}:{opts}"]
        termination = None
        if c["name"] == "agent":
            termination = self.workdir / "termination-log"
            termination.touch()
            termination.chmod(0o666)
            args += ["--volume", f"{termination}:{c.get('terminationMessagePath', '/dev/termination-log')}:rw"]
        if c.get("command"):  # else the image's entrypoint, as the kubelet runs it
            args += ["--entrypoint", json.dumps([str(a) for a in c["command"]])]
        args.append(c["image"])
        args += [str(a) for a in c.get("args") or []]
        run = ContainerRun(c["name"], args, termination)
        probe = c.get("startupProbe") or {}
        if probe:
            if "exec" not in probe:
                raise ConfigError(f"the startupProbe of the chart's container {c['name']} is not an exec probe")
            run.probe = [str(a) for a in probe["exec"]["command"]]
            run.probe_period = float(probe.get("periodSeconds", 10))
            run.probe_failures = int(probe.get("failureThreshold", 3))
        return run

    # -- env ---------------------------------------------------------------------------------------

    def env(self, c: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in c.get("envFrom") or []:
            if "configMapRef" not in source:
                raise ConfigError(f"the container {c['name']} takes env from {sorted(source)}; the podman mode "
                                  "translates configMapRef only (no Secret reaches a container's environment)")
            prefix = source.get("prefix", "")
            env.update({prefix + k: str(v) for k, v in self._configmap(source["configMapRef"]["name"]).items()})
        for item in c.get("env") or []:
            env[item["name"]] = self._env_value(c["name"], item)
        return env

    def _env_value(self, container: str, item: Obj) -> str:
        if "value" in item:
            return str(item["value"])
        ref = item.get("valueFrom") or {}
        if "configMapKeyRef" in ref:
            return str(self._configmap(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]])
        if "fieldRef" in ref:
            return self._field(ref["fieldRef"]["fieldPath"])
        raise ConfigError(f"the env {item.get('name')} of the container {container} comes from {sorted(ref)}; "
                          "the podman mode translates value, configMapKeyRef and fieldRef only")

    def _configmap(self, name: str) -> Mapping[str, str]:
        if name not in self.configmaps:
            raise ConfigError(f"the chart's pod uses the ConfigMap {name!r}, which the chart did not render")
        return self.configmaps[name].get("data") or {}

    def _field(self, path: str) -> str:
        match = ANNOTATION_REF.fullmatch(path)
        if match:
            return str((self.meta.get(match.group(1)) or {}).get(match.group(2), ""))
        simple = {"metadata.name": self.pod, "metadata.namespace": "local",
                  "spec.serviceAccountName": self.spec.get("serviceAccountName", "")}
        if path not in simple:
            raise ConfigError(f"the chart's pod reads the field {path}, which the podman mode does not translate")
        return str(simple[path])

    # -- volumes -----------------------------------------------------------------------------------

    def dirs(self) -> dict[str, Path]:
        return {name: path for (name, _uid), path in self._made.items()}

    def volume(self, name: str, uid: int) -> Path:
        """The host directory of the volume `name` for a container running as `uid` (a Secret's files
        are that uid's only; every other kind is the same directory for every container)."""
        volume = self._volumes.get(name)
        if volume is None:
            raise ConfigError(f"the chart's pod mounts {name!r}, which is not one of its volumes")
        key = (name, uid if "secret" in volume else None)
        if key in self._made:
            return self._made[key]
        host = self.workdir / "volumes" / (name if key[1] is None else f"{name}-{uid}")
        if "emptyDir" in volume:
            if name in self.bound:
                host = self.bound[name]
            host.mkdir(parents=True, exist_ok=True)
            host.chmod(0o777)
        elif "downwardAPI" in volume:
            items = volume["downwardAPI"]["items"]
            self._files(host, {i["path"]: self._field(i["fieldRef"]["fieldPath"]) for i in items}, 0o644)
        elif "configMap" in volume:
            src = volume["configMap"]
            data = self._configmap(src["name"])
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            self._files(host, {i["path"]: str(data[i["key"]]) for i in items}, 0o644)
        elif "secret" in volume:
            src = volume["secret"]
            if src.get("secretName") != LLM_SECRET:
                raise ConfigError(f"the chart's pod mounts the Secret {src.get('secretName')!r}; the podman mode "
                                  f"has only the LLM keys ({LLM_SECRET}) from your environment")
            keys = [i["key"] for i in src.get("items") or []] or self._llm_keys()
            data = {k: v for k in keys if (v := self.secret(src["secretName"], k)) is not None}
            self._files(host, data, 0o400, owner=uid)
        else:
            raise ConfigError(f"the chart's volume {name!r} is of a kind the podman mode does not translate "
                              f"({sorted(k for k in volume if k != 'name')})")
        self._made[key] = host
        return host

    def _llm_keys(self) -> list[str]:
        """The secretKey of every provider the chart's proxy configuration names."""
        for cm in self.configmaps.values():
            text = (cm.get("data") or {}).get("providers.json")
            if text:
                return sorted({str(p["secretKey"]) for p in json.loads(text) if p.get("secretKey")})
        return []

    def _files(self, directory: Path, files: Mapping[str, str], mode: int, owner: int | None = None) -> None:
        directory.mkdir(parents=True)
        directory.chmod(0o755 if owner is None else 0o500)
        for rel, content in files.items():
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise ConfigError(f"the chart's volume file {rel!r} is not a relative path")
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            path.chmod(mode)
        if owner is not None:
            _chown(directory, owner, self.podman)


def _chown(directory: Path, uid: int, podman: str) -> None:
    """Give a Secret's directory to the container uid that mounts it: plainly as root; rootless, as
    podman maps that uid (`podman unshare`)."""
    if os.geteuid() == 0:
        for path in (directory, *directory.rglob("*")):
            os.chown(path, uid, uid, follow_symlinks=False)
        return
    proc = subprocess.run([podman, "unshare", "chown", "-R", f"{uid}:{uid}", str(directory)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"podman unshare chown of {directory} failed: {proc.stderr.strip()}")


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity_bytes(text: str) -> str:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?|)", text)
    if not match:
        raise ConfigError(f"the memory limit {text!r} is not a quantity the podman mode reads (e.g. 2Gi, 512Mi)")
    return str(int(float(match.group(1)) * _UNITS[match.group(2)]))


def _cpus(text: str) -> str:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", text)
    if not match:
        raise ConfigError(f"the cpu limit {text!r} is not a quantity the podman mode reads (e.g. 2, 500m)")
    value = float(match.group(1)) / (1000 if match.group(2) else 1)
    return f"{value:g}"


def pod_name(job: str) -> str:
    """The task's pod: its job's name (`agentic-...`, as a Job's), within podman's limit."""
    name = job if job.startswith("agentic-") else f"agentic-{job}"
    return name[:NAME_MAX].rstrip("-.")


def start_sidecars(plan: PodPlan, environ: Mapping[str, str], log: Callable[[str], None]) -> None:
    """Create the pod and start its sidecars, each ready (its startupProbe passes) before the next."""
    env = dict(environ)
    _run(plan.create, env, "podman pod create")
    for side in plan.sidecars:
        _run([*side.args[:2], "--detach", *side.args[2:]], env, f"the {side.name} container")
        if side.probe:
            for _ in range(side.probe_failures):
                probe = subprocess.run([plan.create[0], "exec", f"{plan.pod}-{side.name}", *side.probe],
                                       capture_output=True, env=env)
                if probe.returncode == 0:
                    break
                time.sleep(side.probe_period)
            else:
                logs = subprocess.run([plan.create[0], "logs", f"{plan.pod}-{side.name}"], capture_output=True,
                                      text=True, env=env)
                raise ConfigError(f"the {side.name} container did not become ready: "
                                  f"{(logs.stdout + logs.stderr).strip()[-1500:]}")
        log(f"the {side.name} container is ready")


def remove_pod(podman: str, pod: str, environ: Mapping[str, str]) -> None:
    with contextlib.suppress(OSError):
        subprocess.run([podman, "pod", "rm", "--force", "--ignore", pod], capture_output=True,
                       env=dict(environ), timeout=120)


def _run(args: Sequence[str], env: Mapping[str, str], what: str) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, env=dict(env))
    if proc.returncode != 0:
        raise ConfigError(f"{what} failed (podman {proc.returncode}): {proc.stderr.strip()[-1500:]}")


def host_clone(repo: Path, task_branch: str, base_branch: str, remote_url: str, workspace: Path,
               container_workspace: str, environ: Mapping[str, str]) -> tuple[Path, str]:
    """The pod's git-clone, played on the host from the developer's repository (the local backend's
    base: the local branch, else origin's; an existing local task branch is continued, as a worktree
    would): a fresh repository in the `workspace` volume on the task branch, its origin the task's
    remote with the push URL disabled, no hook, no credential, writable for the agent's uid, and
    `.agentic/clone.json` naming the checkout as the agent's container sees it. Returns the checkout
    and the base commit."""
    from mcp_server import worktrees
    from mcp_server.runner import gitrepo
    from mcp_server.runner.gitclone import CLONE_INFO, make_writable_for_all
    from mcp_server.runner.gitconfig import isolated_environ
    from mcp_server.runner.pushqueue import write_atomic

    start = worktrees.base_ref(repo, base_branch)
    if start is None:
        raise ConfigError(f"the base branch {base_branch} is not in the repository {repo} (neither a local "
                          f"branch nor origin/{base_branch}); create or fetch it first")
    name = gitrepo.checkout_dir_name(remote_url)
    dest = workspace / name
    home = workspace.parent / "git-home"
    home.mkdir(mode=0o700, exist_ok=True)
    env = isolated_environ(environ, home)

    def git(*args: str, cwd: Path = dest) -> str:
        proc = subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "core.hooksPath=/dev/null", *args],
                              cwd=cwd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise ConfigError(f"the host-side clone for the podman mode failed: git {args[0]}: "
                              f"{proc.stderr.strip()[-800:]}")
        return proc.stdout

    base_sha = git("rev-parse", "--verify", f"{start}^{{commit}}", cwd=repo).strip()
    continuing = worktrees.branch_exists(repo, task_branch)
    dest.mkdir(parents=True)
    git("init", "--quiet", str(dest), cwd=workspace)
    refspecs = [f"+{start}:refs/remotes/origin/{base_branch}"]
    if continuing:
        refspecs.append(f"+refs/heads/{task_branch}:refs/heads/{task_branch}")
    git("fetch", "--quiet", "--no-tags", str(repo), *refspecs)
    git("remote", "add", "origin", remote_url)
    git("remote", "set-url", "--push", "origin", gitrepo.NO_PUSH_URL)
    if continuing:
        git("switch", "--quiet", task_branch)
    else:
        git("switch", "--quiet", "--no-track", "-c", task_branch, f"refs/remotes/origin/{base_branch}")
    make_writable_for_all(dest)
    record = workspace / CLONE_INFO
    record.parent.mkdir(mode=0o755, exist_ok=True)
    write_atomic(record, json.dumps({"checkout": f"{container_workspace.rstrip('/')}/{name}", "base_sha": base_sha,
                                     "remote_task_sha": None, "branch": task_branch}).encode())
    record.chmod(0o644)
    return dest, base_sha


def mount_path(template: Obj, container: str, volume: str) -> str:
    """Where the chart mounts `volume` in `container`."""
    spec = template["template"]["spec"]
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c["name"] == container:
            for mount in c.get("volumeMounts") or []:
                if mount["name"] == volume:
                    return str(mount["mountPath"])
    raise ConfigError(f"the chart's {container} container does not mount the volume {volume!r}")


def check_image(settings: PodmanSettings, environ: Mapping[str, str]) -> None:
    proc = subprocess.run([settings.podman, "image", "exists", settings.image], capture_output=True, env=dict(environ))
    if proc.returncode != 0:
        raise ConfigError(f"AGENTIC_LOCAL_IMAGE: the image {settings.image} is not in podman's store; build it "
                          "(make image) or pull it, or name another")


def check(environ: Mapping[str, str]) -> PodmanSettings:
    """What a podman task needs, checked before anything is made: ConfigError names what is missing."""
    settings = PodmanSettings.from_environ(environ)
    check_image(settings, environ)
    return settings


class PodmanRun:
    """One task's pod: prepared (chart rendered, volumes made, the host-side clone), its sidecars started,
    the agent run attached by the supervisor (`plan.agent.args`), then its result taken and the pod removed."""

    def __init__(self, settings: PodmanSettings, plan: PodPlan, environ: Mapping[str, str], workdir: Path,
                 log: Callable[[str], None]) -> None:
        self.settings = settings
        self.plan = plan
        self.environ = dict(environ)
        self.workdir = workdir
        self.log = log

    @classmethod
    def prepare(cls, task_dir: Path, environ: Mapping[str, str], out: Any) -> PodmanRun:
        from mcp_server.backends.local_state import write_json
        from mcp_server.runner.context import load_context

        settings = check(environ)
        template, configmaps = render(settings, environ)
        context_file = task_dir / "context.json"
        ctx = load_context(context_file)
        pod = pod_name(task_dir.name)
        workdir = task_dir / "pod"
        workdir.mkdir(mode=0o711)
        write_json(task_dir / "pod.json", {"pod": pod})  # before the pod exists
        translator = PodTranslator(
            template, configmaps, lambda _secret, key: environ.get(key), workdir, pod,
            context_file.read_text(encoding="utf-8"),
            {"push-queue": task_dir / "push-queue", "workspace": workdir / "workspace"}, settings.podman)
        plan = translator.plan(settings.network)
        run = cls(settings, plan, environ, workdir, lambda message: out.log("setup", message))
        repo = Path(environ.get("AGENTIC_WORKTREE_REPO") or ".")
        checkout, base_sha = host_clone(repo, ctx.task_branch, ctx.base_branch, ctx.repo, plan.dirs["workspace"],
                                        mount_path(template, "agent", "workspace"), environ)
        out.log("clone", f"cloned {ctx.base_branch} of {repo} at {base_sha[:12]} into the pod's workspace "
                f"({checkout.name}), on {ctx.task_branch}", base_sha=base_sha)
        out.log("setup", f"the agent runs in the image {settings.image}, in the chart's pod for podman ({pod}): "
                f"containers {', '.join([*(s.name for s in plan.sidecars), 'agent'])}; git-clone and git-push "
                "on the host with your credentials; no Secret and no credential in the agent's container")
        return run

    def start_sidecars(self) -> None:
        start_sidecars(self.plan, self.environ, self.log)

    def finish(self, result_file: Path) -> None:
        """The agent's result (its termination message) into the task's state, written by the supervisor."""
        termination = self.plan.agent.termination
        text = termination.read_text(encoding="utf-8", errors="replace")[:1_000_000] if termination else ""
        if text.strip() and not result_file.exists():
            result_file.write_text(text, encoding="utf-8")

    def close(self) -> None:
        remove_pod(self.settings.podman, self.plan.pod, self.environ)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.workdir.exists() and os.geteuid() != 0:  # rootless: files of the containers' mapped uids
            subprocess.run([self.settings.podman, "unshare", "rm", "-rf", str(self.workdir)], capture_output=True,
                           env=self.environ)
