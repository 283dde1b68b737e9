#!/usr/bin/env bash
# Follow the agents' logs like stern: a thin wrapper over `agentic-runner logs -f`.
#
#   tail-logs.sh [task-id ...]
#   tail-logs.sh [--task-id ID ...] [--environment ENV] [--namespace NS] [--no-follow] [--no-color]
#
# Without task ids every task of the environment is followed, and tasks started later join the
# stream; each line is prefixed with its task id in a colour of its own. With task ids it ends when
# those tasks are finished (exit 1 when one of them failed, timed out or was cancelled).
# Variables: ENVIRONMENT (dev|stg|prod), NAMESPACE, RELEASE_NAME. Options win over variables.
set -euo pipefail

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0" >&2
  exit "${1:-2}"
}

environment="${ENVIRONMENT:-}"
namespace="${NAMESPACE:-}"
follow=(--follow)
extra=()
task_ids=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --task-id) task_ids+=("${2:?--task-id needs a value}"); shift 2 ;;
    --environment) environment="${2:?--environment needs a value}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --no-follow) follow=(); shift ;;
    --no-color) extra+=(--no-color); shift ;;
    -h | --help) usage 0 ;;
    --) shift; task_ids+=("$@"); break ;;
    -*) echo "tail-logs.sh: unknown option $1" >&2; usage ;;
    *) task_ids+=("$1"); shift ;;
  esac
done

[[ -n "$namespace" ]] && export AGENTIC_NAMESPACE="$namespace"
[[ -n "${RELEASE_NAME:-}" ]] && export AGENTIC_RELEASE="$RELEASE_NAME"

runner="${AGENTIC_RUNNER:-agentic-runner}"
args=(logs)
[[ -n "$environment" ]] && args+=(--env "$environment")
exec "$runner" "${args[@]}" "${follow[@]}" "${extra[@]}" "${task_ids[@]}"
