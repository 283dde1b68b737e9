{{/* What NOTES.txt prints after install/upgrade. A define, so that the release wrapper charts (whose
subchart notes helm does not print) show the same text through .Subcharts. */}}
{{- define "agent-runner.notes" -}}
{{- $ns := include "agent-runner.namespace" . -}}
{{ .Chart.Name }} {{ .Chart.Version }} is installed as release {{ .Release.Name }} in namespace {{ $ns }}{{ with .Values.environment }} (environment {{ . }}){{ end }}.

Created:
  - PodTemplate {{ include "agent-runner.podTemplateName" . }}: the agent pod's shape; every task's Job is built from it
    (image {{ include "agent-runner.image" . }}, timeout {{ .Values.task.timeoutSeconds }}s, clean-up {{ .Values.task.cleanup.policy }}, backoffLimit {{ .Values.task.backoffLimit }})
    (containers: git-clone and git-push, user 1001, hold the git Secret; llm-proxy, user 1002, holds the LLM keys; agent, user 1000, holds no credential)
  - ConfigMap {{ include "agent-runner.configMapName" . }}: the runner's non-secret defaults; ConfigMap {{ include "agent-runner.fullname" . }}-llm-proxy: the LLM proxy's nginx.conf (providers:{{ range .Values.llmProxy.providers }} {{ .name }}{{ else }} none{{ end }})
{{- if .Values.serviceAccount.create }}
  - ServiceAccount {{ include "agent-runner.serviceAccountName" . }}: the agents' identity (no API rights, no token; workload identity: {{ .Values.serviceAccount.workloadIdentity.provider }})
{{- end }}
{{- if .Values.rbac.create }}
  - Role {{ include "agent-runner.roleName" . }}{{ if .Values.rbac.subjects }} and its RoleBinding for:{{ range .Values.rbac.subjects }} {{ .kind }}/{{ .name }}{{ end }}{{ else }} (no RoleBinding: rbac.subjects is empty, so nobody can run tasks yet){{ end }}
    It may: create/get/list/watch/delete Jobs, get/list/watch pods and events, read pod logs and PodTemplates, in {{ $ns }} only.
    It may not: read Secrets or ConfigMaps, exec/attach/port-forward into pods, create pods, change the PodTemplate, act outside {{ $ns }}.
{{- end }}
{{- if .Values.externalSecrets.enabled }}
{{- if ne .Values.git.auth "none" }}
  - ExternalSecret {{ include "agent-runner.gitSecretName" . }} (git {{ .Values.git.auth }} credentials from {{ .Values.externalSecrets.secretStoreRef.kind }}/{{ .Values.externalSecrets.secretStoreRef.name }})
{{- end }}
{{- if .Values.externalSecrets.llm }}
  - ExternalSecret {{ include "agent-runner.llmSecretName" . }} (LLM keys:{{ range .Values.externalSecrets.llm }} {{ .envName }}{{ end }})
{{- end }}
{{- else }}
  - no ExternalSecrets; existing Secrets used:{{ with .Values.existingSecret.git }} git={{ . }}{{ end }}{{ with .Values.existingSecret.llm }} llm={{ . }}{{ end }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
  - NetworkPolicy {{ include "agent-runner.fullname" . }}-agent-egress (agent egress: DNS + {{ len .Values.networkPolicy.egress }} destination(s))
{{- end }}
{{- if .Values.admission.enabled }}
  - ValidatingAdmissionPolicy and binding {{ include "agent-runner.admissionName" . }}: a Job in {{ $ns }} is admitted only in the PodTemplate's shape (git Secret one of: {{ include "agent-runner.gitSecrets" . | default "none" }})
{{- end }}
{{- if .Values.resourceQuota.enabled }}
  - ResourceQuota {{ include "agent-runner.fullname" . }}-agents (at most {{ .Values.resourceQuota.maxPods }} pods at once)
{{- end }}
{{- if not .Values.admission.enabled }}

WARNING: admission.enabled is false: whoever may create Jobs in {{ $ns }} (the Role's subjects) can mount this release's Secrets into a Job of their own and read them.
{{- end }}
{{- if .Values.namespace.create }}
  - Namespace {{ $ns }} (Pod Security enforce={{ .Values.namespace.podSecurity.enforce }})
{{- else }}
{{- /* Rendered before `helm --create-namespace` makes the namespace: absent means unlabelled. */}}
{{- $existing := lookup "v1" "Namespace" "" $ns }}
{{- $labels := dig "metadata" "labels" dict ($existing | default dict) }}
{{- if ne (get $labels "pod-security.kubernetes.io/enforce") "restricted" }}

WARNING: namespace {{ $ns }} does not enforce Pod Security "restricted" (helm --create-namespace cannot label it). The agent pods meet it; label it:
  kubectl label namespace {{ $ns }} pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest
{{- end }}
{{- end }}

Spawn a first task from a git repository of yours (in OpenCode: the spawn_task_pod tool; on a shell):
  agentic-runner spawn{{ with .Values.environment }} --env {{ . }}{{ end }} T001 "Describe the task"   # see: agentic-runner spawn --help
Watch it:
  kubectl -n {{ $ns }} get jobs,pods -l app.kubernetes.io/managed-by=agentic-sdlc-agent-runner
  agentic-runner logs{{ with .Values.environment }} --env {{ . }}{{ end }} -f

{{- end }}
