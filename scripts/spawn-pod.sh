#!/usr/bin/env bash
# Spawn one agent task pod: a thin wrapper over `agentic-runner spawn` that keeps the original interface.
#
#   spawn-pod.sh <task-id> <branch-name> <repo-url> [context-dir]
#   spawn-pod.sh --task-id ID --branch BRANCH --repo URL [--context-dir DIR] [--description TEXT]
#                [--ssh-secret NAME] [--environment ENV] [--namespace NS]
#                [--max-cost USD] [--max-tokens N]
#
# <branch-name> is the feature (base) branch; the agent works on its own task branch made from it.
# The description is taken from the task's line in <context-dir>/tasks.md unless --description is given.
# Variables: ENVIRONMENT (dev|stg|prod), NAMESPACE, RELEASE_NAME (the chart release whose PodTemplate
# is used), SSH_SECRET_NAME, MAX_COST, MAX_TOKENS (the task's budget; default: the environment's).
# Options win over variables.
#
# --ssh-secret NAME / SSH_SECRET_NAME: the git Secret (e.g. a deploy key of this repository) the pod's git
# containers use, one of the release's git.secrets; another name is refused before anything is created.
# Default: the release's git Secret. The agent's container never sees it.
set -euo pipefail

usage() {
  sed -n '2,17s/^# \{0,1\}//p' "$0" >&2
  exit "${1:-2}"
}

task_id="" branch="" repo="" context_dir="" description=""
ssh_secret="${SSH_SECRET_NAME:-}"
environment="${ENVIRONMENT:-}"
namespace="${NAMESPACE:-}"
max_cost="${MAX_COST:-}"
max_tokens="${MAX_TOKENS:-}"
positional=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --task-id) task_id="${2:?--task-id needs a value}"; shift 2 ;;
    --branch) branch="${2:?--branch needs a value}"; shift 2 ;;
    --repo) repo="${2:?--repo needs a value}"; shift 2 ;;
    --context-dir) context_dir="${2:?--context-dir needs a value}"; shift 2 ;;
    --description) description="${2:?--description needs a value}"; shift 2 ;;
    --ssh-secret) ssh_secret="${2:?--ssh-secret needs a value}"; shift 2 ;;
    --environment) environment="${2:?--environment needs a value}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --max-cost) max_cost="${2:?--max-cost needs a value}"; shift 2 ;;
    --max-tokens) max_tokens="${2:?--max-tokens needs a value}"; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; positional+=("$@"); break ;;
    -*) echo "spawn-pod.sh: unknown option $1" >&2; usage ;;
    *) positional+=("$1"); shift ;;
  esac
done

if [[ ${#positional[@]} -gt 4 ]]; then
  echo "spawn-pod.sh: too many arguments" >&2
  usage
fi
[[ ${#positional[@]} -ge 1 && -z "$task_id" ]] && task_id="${positional[0]}"
[[ ${#positional[@]} -ge 2 && -z "$branch" ]] && branch="${positional[1]}"
[[ ${#positional[@]} -ge 3 && -z "$repo" ]] && repo="${positional[2]}"
[[ ${#positional[@]} -ge 4 && -z "$context_dir" ]] && context_dir="${positional[3]}"

if [[ -z "$task_id" || -z "$branch" || -z "$repo" ]]; then
  echo "spawn-pod.sh: <task-id>, <branch-name> and <repo-url> are required" >&2
  usage
fi

[[ -n "$namespace" ]] && export AGENTIC_NAMESPACE="$namespace"
[[ -n "${RELEASE_NAME:-}" ]] && export AGENTIC_RELEASE="$RELEASE_NAME"

runner="${AGENTIC_RUNNER:-agentic-runner}"
args=(spawn "$task_id")
[[ -n "$description" ]] && args+=("$description")
args+=(--base-branch "$branch" --repo "$repo")
[[ -n "$context_dir" ]] && args+=(--context-dir "$context_dir")
[[ -n "$environment" ]] && args+=(--env "$environment")
[[ -n "$ssh_secret" ]] && args+=(--ssh-secret "$ssh_secret")
[[ -n "$max_cost" ]] && args+=(--max-cost "$max_cost")
[[ -n "$max_tokens" ]] && args+=(--max-tokens "$max_tokens")
exec "$runner" "${args[@]}"
