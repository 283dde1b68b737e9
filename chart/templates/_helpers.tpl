{{/* Names ------------------------------------------------------------------------------------ */}}

{{/* The chart name (app.kubernetes.io/name). */}}
{{- define "agent-runner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name that prefixes every object: the release name when it already contains the chart
name (agentic-sdlc-agent-runner-dev), else <release>-<chart>. Kept to 52 characters so that the
longest suffix ("-task-runner", 12) still makes a valid 63-character name.
*/}}
{{- define "agent-runner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespace of every object. */}}
{{- define "agent-runner.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name }}
{{- end }}

{{/* The agent pods' ServiceAccount. */}}
{{- define "agent-runner.serviceAccountName" -}}
{{- default (printf "%s-agent" (include "agent-runner.fullname" .)) .Values.serviceAccount.name }}
{{- end }}

{{/* The PodTemplate the server builds every task's Job from (docs/contracts.md). */}}
{{- define "agent-runner.podTemplateName" -}}
{{- printf "%s-agent" (include "agent-runner.fullname" .) }}
{{- end }}

{{/* The cluster-scoped admission policy and binding: unique per release and namespace. */}}
{{- define "agent-runner.admissionName" -}}
{{- printf "%s.%s.jobs.agentic-sdlc.dev" (include "agent-runner.fullname" .) (include "agent-runner.namespace" .) }}
{{- end }}

{{- define "agent-runner.configMapName" -}}
{{- printf "%s-config" (include "agent-runner.fullname" .) }}
{{- end }}

{{- define "agent-runner.roleName" -}}
{{- printf "%s-task-runner" (include "agent-runner.fullname" .) }}
{{- end }}

{{/* The Secret with git credentials: the ExternalSecret's stable target, or an existing one. */}}
{{- define "agent-runner.gitSecretName" -}}
{{- if .Values.externalSecrets.enabled }}
{{- printf "%s-git" (include "agent-runner.fullname" .) }}
{{- else }}
{{- .Values.existingSecret.git }}
{{- end }}
{{- end }}

{{/* The Secret with LLM provider keys; empty when there is none. */}}
{{- define "agent-runner.llmSecretName" -}}
{{- if .Values.externalSecrets.enabled }}
{{- if .Values.externalSecrets.llm }}
{{- printf "%s-llm" (include "agent-runner.fullname" .) }}
{{- end }}
{{- else }}
{{- .Values.existingSecret.llm }}
{{- end }}
{{- end }}

{{/* The agent image: repository@digest when pinned, else repository:tag (tag defaults to appVersion). */}}
{{- define "agent-runner.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
ttlSecondsAfterFinished of task Jobs from the clean-up policy; empty for `keep`.
*/}}
{{- define "agent-runner.ttlSecondsAfterFinished" -}}
{{- $c := .Values.task.cleanup }}
{{- if eq $c.policy "delete" }}
{{- $c.deleteAfterSeconds | int64 }}
{{- else if eq $c.policy "keepFor" }}
{{- mul $c.keepForHours 3600 | int64 }}
{{- end }}
{{- end }}

{{/* The repo host rules as JSON (mcp_server/repohosts.py reads it). */}}
{{- define "agent-runner.repoHosts" -}}
{{- $rules := list }}
{{- range .Values.git.hosts }}
{{- $rules = append $rules (dict "host" (lower .host) "insecure" (default false .insecure)) }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/* The git Secrets a task may select: the default, then git.secrets; comma-separated. */}}
{{- define "agent-runner.gitSecrets" -}}
{{- prepend .Values.git.secrets (include "agent-runner.gitSecretName" .) | uniq | join "," }}
{{- end }}

{{/* The providers the LLM proxy serves, for its launcher: [{index, name, header, valuePrefix, secretKey}]. */}}
{{- define "agent-runner.llmProviders" -}}
{{- $out := list }}
{{- range $i, $p := .Values.llmProxy.providers }}
{{- $out = append $out (dict "index" $i "name" $p.name "header" $p.header "valuePrefix" (default "" $p.valuePrefix) "secretKey" $p.secretKey) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* OpenCode's provider base URLs through the proxy, for the runner: {"<name>": "http://127.0.0.1:<port>/<name>"}. */}}
{{- define "agent-runner.llmProxyBaseURLs" -}}
{{- $out := dict }}
{{- range .Values.llmProxy.providers }}
{{- $_ := set $out .name (printf "http://127.0.0.1:%d/%s" (int $.Values.llmProxy.port) .name) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* A container's securityContext (Pod Security restricted) as the given user and group. */}}
{{- define "agent-runner.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
git-clone and git-push: the agent image's runner as user 1001 with the git credential. Ends in its
volumeMounts list, so that the caller appends the container's own mounts.
*/}}
{{- define "agent-runner.gitContainer" -}}
{{- $ := .root -}}
{{- /* git-clone reports a failure (a failed result) in its termination message, as the agent does. */ -}}
image: {{ include "agent-runner.image" $ | quote }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
command: ["/usr/bin/tini", "--", "/opt/agentic-runner/bin/python", "-m", "mcp_server.runner", {{ .command | quote }}]
securityContext:
  {{- include "agent-runner.containerSecurity" 1001 | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "agent-runner.configMapName" $ }}
env:
  - name: AGENTIC_TASK_CONTEXT_FILE
    value: /etc/agentic-sdlc/task/context.json
  - name: AGENTIC_WORKSPACE
    value: /workspace
  - name: AGENTIC_PUSH_QUEUE
    value: /run/agentic/push
  {{- if eq .command "git-clone" }}
  - name: AGENTIC_RESULT_FILE
    value: /dev/termination-log
  {{- end }}
  {{- if ne $.Values.git.auth "none" }}
  - name: AGENTIC_GIT_AUTH_DIR
    value: /etc/agentic-sdlc/git
  {{- end }}
  - name: HOME
    value: /tmp
  - name: TMPDIR
    value: /tmp
{{- with $.Values.sidecarResources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: task-context
    mountPath: /etc/agentic-sdlc/task
    readOnly: true
  - name: git-tmp
    mountPath: /tmp
  {{- if ne $.Values.git.auth "none" }}
  - name: git-credentials
    mountPath: /etc/agentic-sdlc/git
    readOnly: true
  {{- end }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------------ */}}

{{- define "agent-runner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: what identifies this release's objects and agent pods. */}}
{{- define "agent-runner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-runner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels of every object the chart renders. */}}
{{- define "agent-runner.labels" -}}
helm.sh/chart: {{ include "agent-runner.chart" . }}
{{ include "agent-runner.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentic-sdlc
{{- with .Values.environment }}
agentic-sdlc.dev/environment: {{ . }}
{{- end }}
{{- end }}

{{/*
Labels of the agent pods (the PodTemplate's template.metadata.labels). The server adds the task's
own labels (docs/contracts.md) and keeps these.
*/}}
{{- define "agent-runner.podLabels" -}}
{{ include "agent-runner.selectorLabels" . }}
app.kubernetes.io/component: agent-task
{{- with .Values.environment }}
agentic-sdlc.dev/environment: {{ . }}
{{- end }}
{{- if eq .Values.serviceAccount.workloadIdentity.provider "azure" }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{/* Guards: combinations the schema cannot express, refused with a message naming the values. */}}
{{- define "agent-runner.validate" -}}
{{- $v := .Values }}
{{- $wi := $v.serviceAccount.workloadIdentity }}
{{- if and (eq $wi.provider "gke") (not $wi.gke.gcpServiceAccount) }}
{{- fail "serviceAccount.workloadIdentity.provider is gke: set serviceAccount.workloadIdentity.gke.gcpServiceAccount (a GCP service account email)" }}
{{- end }}
{{- if and (eq $wi.provider "eks") (not $wi.eks.roleArn) }}
{{- fail "serviceAccount.workloadIdentity.provider is eks: set serviceAccount.workloadIdentity.eks.roleArn (an IAM role ARN)" }}
{{- end }}
{{- if and (eq $wi.provider "azure") (not $wi.azure.clientId) }}
{{- fail "serviceAccount.workloadIdentity.provider is azure: set serviceAccount.workloadIdentity.azure.clientId" }}
{{- end }}
{{- if and (ne $wi.provider "none") (not $v.serviceAccount.create) }}
{{- fail (printf "serviceAccount.workloadIdentity.provider is %s but serviceAccount.create is false: the chart can only annotate a ServiceAccount it creates" $wi.provider) }}
{{- end }}
{{- if and $v.git.secrets (ne $v.git.auth "ssh") }}
{{- fail (printf "git.secrets is set but git.auth is %s: tasks select one of these Secrets as their ssh key (ssh_secret); set git.auth=ssh, or clear git.secrets" $v.git.auth) }}
{{- end }}
{{- $names := dict }}
{{- range $v.llmProxy.providers }}
{{- if hasKey $names .name }}
{{- fail (printf "llmProxy.providers: the provider name %s is listed twice; each OpenCode provider id once" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- if and (hasPrefix "http://" .upstream) (not .insecure) }}
{{- fail (printf "llmProxy.providers[%s].upstream is plain http://: the key would travel unencrypted; use https://, or set insecure: true (tests only)" .name) }}
{{- end }}
{{- end }}
{{- if and $v.llmProxy.providers (not (include "agent-runner.llmSecretName" $)) }}
{{- fail "llmProxy.providers are set but there is no LLM Secret: set externalSecrets.llm (or existingSecret.llm with externalSecrets.enabled=false) with the keys the providers' secretKey name" }}
{{- end }}
{{- if $v.externalSecrets.enabled }}
{{- if or $v.existingSecret.git $v.existingSecret.llm }}
{{- fail "existingSecret.git/existingSecret.llm are used only with externalSecrets.enabled: false; set externalSecrets.enabled=false to use existing Secrets, or clear existingSecret" }}
{{- end }}
{{- if and (or (ne $v.git.auth "none") $v.externalSecrets.llm) (not $v.externalSecrets.secretStoreRef.name) }}
{{- fail "externalSecrets.secretStoreRef.name is required: ExternalSecrets are rendered (git.auth is not none or externalSecrets.llm is set); name the SecretStore/ClusterSecretStore, or use externalSecrets.enabled=false with existingSecret" }}
{{- end }}
{{- $g := $v.externalSecrets.git }}
{{- if and (eq $v.git.auth "ssh") (or (not $g.ssh.privateKey.key) (not $g.ssh.knownHosts.key)) }}
{{- fail "git.auth is ssh: set externalSecrets.git.ssh.privateKey.key and externalSecrets.git.ssh.knownHosts.key (remote keys in the secret store)" }}
{{- end }}
{{- if and (eq $v.git.auth "token") (or (not $g.token.username.key) (not $g.token.token.key)) }}
{{- fail "git.auth is token: set externalSecrets.git.token.username.key and externalSecrets.git.token.token.key (remote keys in the secret store)" }}
{{- end }}
{{- else }}
{{- if and (ne $v.git.auth "none") (not $v.existingSecret.git) }}
{{- fail (printf "git.auth is %s and externalSecrets.enabled is false: set existingSecret.git to the name of a Secret with %s" $v.git.auth (ternary "ssh-privatekey and known_hosts" "username and token" (eq $v.git.auth "ssh"))) }}
{{- end }}
{{- if $v.externalSecrets.llm }}
{{- fail "externalSecrets.llm is set but externalSecrets.enabled is false: put the LLM keys into the Secret named by existingSecret.llm instead" }}
{{- end }}
{{- end }}
{{- end }}

{{/* An ExternalSecret remoteRef from {key, property}. */}}
{{- define "agent-runner.remoteRef" -}}
key: {{ .key | quote }}
{{- with .property }}
property: {{ . | quote }}
{{- end }}
{{- end }}
