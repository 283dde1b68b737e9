# shellcheck shell=bash
# The test control plane's real node: sourced by scripts/testenv.sh, not run on its own.
#
# One kubelet (v$KUBE_VERSION) with containerd (v$CONTAINERD_VERSION), Debian's runc and CNI plugins,
# beside the kwok nodes. Pods go to it only when they ask: it is labelled and tainted
# $NODE_LABEL_KEY=real (NoSchedule). It keeps its side effects to itself:
#   - containerd and the kubelet run in a mount and pid namespace of their own (component node-ns,
#     whose init is the pause binary). Private tmpfs over /run, /var/log and /var/lib hold what
#     they write to fixed host paths (/run/containerd, /var/run/netns, /var/log/containers,
#     /var/lib/kubelet/device-plugins); every mount they make (volumes, overlay snapshots, network
#     namespace files) lives and dies with that namespace;
#   - their own state: $STATE_DIR/node (containerd root/state/socket, kubelet root-dir and pod logs,
#     CNI config and IPAM state);
#   - cgroups under /$NODE_CGROUP_ROOT (the kubelet's cgroupRoot) in every hierarchy;
#   - a bridge $NODE_BRIDGE with the host-side address $NODE_GATEWAY of the pods' /24: the kubelet
#     listens there (the node IP), and tests bind the servers pods must reach to it. Pods get no
#     default route and no masquerade, so they reach that address and nothing off the machine;
#   - the kernel settings the kubelet changes (vm.overcommit_memory, kernel.panic, ...): the first
#     real node on the machine records them, the last one to go restores them ($NODE_REGISTRY).
# `down` (stop_all) kills the namespace's init (so every shim and container with it), removes the
# cgroups and the bridge and restores the settings.

readonly CONTAINERD_VERSION=2.4.2
NODE_NAME=real-node
readonly NODE_LABEL_KEY=agentic-sdlc.dev/node
# shellcheck disable=SC2034 # used by scripts/testenv.sh
readonly NODE_COMPONENTS=(node-ns containerd kubelet)
# AGENTIC_TESTENV_NODE_REGISTRY: another registry (tests of the restore use a private one).
readonly NODE_REGISTRY="${AGENTIC_TESTENV_NODE_REGISTRY:-$CACHE_DIR/real-nodes}"
readonly PAUSE_IMAGE=localhost/agentic-testenv/pause:1
# What the kubelet sets at start (pkg/kubelet/cm: setupKernelTunables), and what CNI may set.
readonly NODE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
NODE_ID=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-8)
readonly NODE_ID
readonly NODE_DIR="$STATE_DIR/node"
NODE_BRIDGE="agtn-$NODE_ID"
NODE_CGROUP_ROOT="agentic-testenv-$NODE_ID"

# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

build_node() {
  GO_TAGS="no_btrfs no_devmapper no_zfs no_aufs" cached_go_build containerd "$CONTAINERD_VERSION" \
    "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" \
    containerd=github.com/containerd/containerd/v2/cmd/containerd \
    containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    ctr=github.com/containerd/containerd/v2/cmd/ctr
  CONTAINERD_BIN=$BUILT
  cached_go_build pause 1 "-s -w" pause=.
  PAUSE_BIN=$BUILT
  [[ -f $PAUSE_BIN/pause.oci.tar ]] || make_pause_archive "$PAUSE_BIN"
}

# make_pause_archive DIR: DIR/pause.oci.tar, an OCI image archive of DIR/pause as $PAUSE_IMAGE
# (one uncompressed layer, run as 65535 like registry.k8s.io/pause), for `ctr images import`.
make_pause_archive() {
  local dir=$1 work layer config manifest
  work=$(mktemp -d "${TMPDIR:-/tmp}/agentic-pause.XXXXXX")
  mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
  cp "$dir/pause" "$work/rootfs/pause"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$work/rootfs" -cf "$work/layer" pause
  blob() { local d; d=$(sha256sum "$work/$1" | cut -d' ' -f1); mv "$work/$1" "$work/oci/blobs/sha256/$d"; echo "$d"; }
  size() { stat -c %s "$work/oci/blobs/sha256/$1"; }
  layer=$(blob layer)
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer" >"$work/config"
  config=$(blob config)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$(size "$config")" "$layer" "$(size "$layer")" >"$work/manifest"
  manifest=$(blob manifest)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$(size "$manifest")" "$PAUSE_IMAGE" "${PAUSE_IMAGE##*:}" >"$work/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$work/oci" -cf "$dir/pause.oci.tar.tmp" .
  mv "$dir/pause.oci.tar.tmp" "$dir/pause.oci.tar"
  rm -rf "$work"
}

# ---------------------------------------------------------------------------------------------
# The node's network: a /24 of 10.213.0.0/16 that no interface of this machine has yet
# ---------------------------------------------------------------------------------------------

net_node() {
  local start=$((16#${NODE_ID:0:4} % 250)) i third taken
  taken=$(ip -4 -o addr show | awk '{print $4}'; ip -4 route show | awk '{print $1}')
  for ((i = 0; i < 250; i++)); do
    third=$(((start + i) % 250 + 1))
    if ! grep -q "^10\.213\.$third\." <<<"$taken"; then
      NODE_SUBNET="10.213.$third.0/24"
      NODE_GATEWAY="10.213.$third.1"
      return 0
    fi
  done
  fail_component node-network /dev/null "no free /24 left in 10.213.0.0/16 for the node's bridge"
}

save_node_env() {
  cat >"$STATE_DIR/node.env" <<EOF
NODE_NAME=$NODE_NAME
NODE_BRIDGE=$NODE_BRIDGE
NODE_SUBNET=$NODE_SUBNET
NODE_GATEWAY=$NODE_GATEWAY
NODE_CGROUP_ROOT=$NODE_CGROUP_ROOT
KUBELET_PORT=${KUBELET_PORT:-}
CONTAINERD_SOCKET=$NODE_DIR/containerd.sock
CTR=$CONTAINERD_BIN/ctr
NODE_LABEL=$NODE_LABEL_KEY=real
EOF
}

make_bridge() {
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add name "$NODE_BRIDGE" type bridge
  fi
  ip addr replace "$NODE_GATEWAY/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
}

# ---------------------------------------------------------------------------------------------
# Kernel settings: recorded by the first real node of the machine, restored by the last one
# ---------------------------------------------------------------------------------------------

# Entries of nodes that are gone (their node-ns init is not running) are dropped.
prune_registry() {
  local entry state pid
  for entry in "$NODE_REGISTRY"/*.node; do
    [[ -e $entry ]] || continue
    state=$(<"$entry")
    pid=$(cat "$state/node/ns-init.pid" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
      [[ $state == "$STATE_DIR" ]] || rm -f "$entry"
    fi
  done
}

live_nodes() {
  local entry n=0
  for entry in "$NODE_REGISTRY"/*.node; do
    [[ -e $entry && $entry != "$NODE_REGISTRY/$NODE_ID.node" ]] && n=$((n + 1))
  done
  echo "$n"
}

restore_sysctls() {
  local line
  [[ -f $NODE_REGISTRY/sysctl.orig ]] || return 0
  while IFS= read -r line; do
    [[ -n $line ]] && sysctl -q -w "$line" >/dev/null 2>&1 || true
  done <"$NODE_REGISTRY/sysctl.orig"
  rm -f "$NODE_REGISTRY/sysctl.orig"
}

register_node() {
  local s
  mkdir -p "$NODE_REGISTRY"
  prune_registry
  if [[ $(live_nodes) -eq 0 ]]; then
    restore_sysctls # left by a node whose teardown never ran
    for s in "${NODE_SYSCTLS[@]}"; do
      printf '%s=%s\n' "$s" "$(sysctl -n "$s")"
    done >"$NODE_REGISTRY/sysctl.orig"
  fi
  echo "$STATE_DIR" >"$NODE_REGISTRY/$NODE_ID.node"
}

unregister_node() {
  [[ -f $NODE_REGISTRY/$NODE_ID.node ]] || return 0
  prune_registry
  if [[ $(live_nodes) -eq 0 ]]; then
    restore_sysctls
  fi
  rm -f "$NODE_REGISTRY/$NODE_ID.node"
  rmdir "$NODE_REGISTRY" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# cgroups: /$NODE_CGROUP_ROOT in every hierarchy (the kubelet wants its cgroupRoot to exist)
# ---------------------------------------------------------------------------------------------

cgroup_hierarchies() {
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts
}

make_cgroups() {
  local h
  for h in $(cgroup_hierarchies); do
    mkdir -p "$h/$NODE_CGROUP_ROOT"
    if [[ -f $h/cpuset.cpus ]]; then # cgroup v1 cpuset: a new group starts with no cpus and mems
      cat "$h/cpuset.cpus" >"$h/$NODE_CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$NODE_CGROUP_ROOT/cpuset.mems"
    fi
  done
}

# Deepest first; a group empties a moment after its last process was killed, so try for a while.
remove_cgroups() {
  local h i left
  for ((i = 0; i < 50; i++)); do
    left=0
    for h in $(cgroup_hierarchies); do
      [[ -d $h/$NODE_CGROUP_ROOT ]] || continue
      find "$h/$NODE_CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $h/$NODE_CGROUP_ROOT ]] && left=1
    done
    ((left)) || return 0
    sleep 0.1
  done
  log "could not remove every cgroup under /$NODE_CGROUP_ROOT"
}

# ---------------------------------------------------------------------------------------------
# Credentials: the kubelet's (system:node:<name>, also its serving certificate) and the
# apiserver's client certificate for the kubelet
# ---------------------------------------------------------------------------------------------

make_node_pki() {
  local pki="$STATE_DIR/pki"
  (
    cd "$pki"
    sign() { # sign NAME SUBJECT EXTENSIONS
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" \
        -extfile <(printf '%s\n' "$3")
    }
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" \
      "subjectAltName=IP:$NODE_GATEWAY,DNS:$NODE_NAME
extendedKeyUsage=serverAuth,clientAuth"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      "extendedKeyUsage=clientAuth"
  ) >>"$STATE_DIR/logs/pki.log" 2>&1 || fail_component pki "$STATE_DIR/logs/pki.log" "openssl could not make the node's certificates"
  chmod 600 "$pki"/*.key
}

write_kubelet_kubeconfig() {
  local pki="$STATE_DIR/pki"
  mkdir -p "$NODE_DIR"
  (
    umask 077
    cat >"$NODE_DIR/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentic-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $NODE_NAME
  user:
    client-certificate: $pki/kubelet.crt
    client-key: $pki/kubelet.key
contexts:
- name: kubelet
  context:
    cluster: agentic-testenv
    user: $NODE_NAME
current-context: kubelet
EOF
  )
}

# ---------------------------------------------------------------------------------------------
# Configuration files
# ---------------------------------------------------------------------------------------------

write_node_config() {
  mkdir -p "$NODE_DIR"/{cni,cni-ipam,containerd,kubelet,pod-logs}
  cat >"$NODE_DIR/containerd.toml" <<EOF
# containerd of the test control plane's real node (scripts/testenv-node.sh).
version = 4
root = '$NODE_DIR/containerd/root'
state = '$NODE_DIR/containerd/state'
imports = []
# Shim sockets stay in their default /run/containerd/s (at most 42 characters long): the node's own
# tmpfs over /run.
# No /opt/containerd, no NRI socket, no tracing; only the overlayfs and native snapshotters.
disabled_plugins = ['io.containerd.internal.v1.opt', 'io.containerd.nri.v1.nri',
  'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing',
  'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs',
  'io.containerd.snapshotter.v1.blockfile', 'io.containerd.image-verifier.v1.bindir']

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '$NODE_DIR/containerd.sock'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '$NODE_DIR/containerd.sock.ttrpc'
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    # These VMs lack CAP_SYS_RESOURCE: without it every sandbox fails to start.
    restrict_oom_score_adj = true
    disable_apparmor = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$CNI_BIN_DIR']
      conf_dir = '$NODE_DIR/cni'
EOF
  # No default route and no masquerade: a pod reaches the bridge's host address and its /24, and
  # nothing else. The bridge and its address are made by make_bridge (isGateway false: the
  # plugin would also switch on IP forwarding).
  cat >"$NODE_DIR/cni/10-agentic-testenv.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "agentic-testenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni-ipam",
        "ranges": [[{"subnet": "$NODE_SUBNET", "rangeStart": "${NODE_GATEWAY%.1}.10", "rangeEnd": "${NODE_GATEWAY%.1}.250"}]],
        "routes": []
      }
    }
  ]
}
EOF
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_GATEWAY
port: $KUBELET_PORT
readOnlyPort: 0
healthzPort: 0
tlsCertFile: $STATE_DIR/pki/kubelet.crt
tlsPrivateKeyFile: $STATE_DIR/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE_DIR/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$NODE_DIR/containerd.sock
podLogsDir: $NODE_DIR/pod-logs
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
resolvConf: ""
registerWithTaints:
- {key: $NODE_LABEL_KEY, value: real, effect: NoSchedule}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 30
syncFrequency: 10s
nodeStatusReportFrequency: 1m
shutdownGracePeriod: 0s
EOF
}

# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------

# The namespace of containerd and the kubelet (see the top of this file); its init is pause.
start_node-ns() {
  spawn node-ns unshare --mount --pid --fork --mount-proc --propagation private -- \
    bash "$REPO_ROOT/scripts/testenv.sh" _node-init "$PAUSE_BIN/pause"
}
ready_node-ns() {
  local pf pid init
  pf=$(pidfile node-ns)
  pid=$(cat "$pf")
  init=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}')
  [[ -n $init && $(readlink "/proc/$init/exe" 2>/dev/null) == "$PAUSE_BIN/pause" ]] || return 1
  echo "$init" >"$NODE_DIR/ns-init.pid"
}

# Runs as the namespace's pid 1, then becomes pause.
node_init() {
  local dir
  for dir in /run /var/log /var/lib; do
    mount -t tmpfs -o mode=0755,size=256m tmpfs "$dir"
  done
  exec "$1"
}

in_node() { # in_node NAME CMD...: spawn a component inside the node's namespace
  local name=$1
  shift
  spawn "$name" nsenter --target "$(cat "$NODE_DIR/ns-init.pid")" --mount --pid -- "$@"
}

ctr_node() { "$CONTAINERD_BIN/ctr" --address "$NODE_DIR/containerd.sock" --namespace k8s.io "$@"; }

start_containerd() { in_node containerd "$CONTAINERD_BIN/containerd" --config "$NODE_DIR/containerd.toml"; }
# Serving, and its CRI plugin (what the kubelet talks to) loaded.
ready_containerd() { ctr_node plugins ls 2>/dev/null | grep -qE '^io\.containerd\.grpc\.v1 +cri +.* ok *$'; }

start_kubelet() {
  # A fresh log per start: readiness looks for this start's "Started kubelet" (after a restart the
  # node is still Ready from before).
  [[ -f $STATE_DIR/logs/kubelet.log ]] && mv -f "$STATE_DIR/logs/kubelet.log" "$STATE_DIR/logs/kubelet.log.previous"
  in_node kubelet "$KUBE_BIN/kubelet" --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$NODE_DIR/kubelet.kubeconfig" --root-dir "$NODE_DIR/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_GATEWAY" \
    --node-labels "$NODE_LABEL_KEY=real" --v=1
}
ready_kubelet() {
  grep -q '"Started kubelet"' "$STATE_DIR/logs/kubelet.log" && [[ $(admin_kubectl get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# RuntimeClass runc: containerd's runtime of that name (the chart's runtimeClassName passthrough).
create_runtime_class() {
  admin_kubectl apply -f - >>"$STATE_DIR/logs/nodes.log" 2>&1 <<EOF || fail_component nodes "$STATE_DIR/logs/nodes.log" "could not create the RuntimeClass runc"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: runc
handler: runc
EOF
}

import_pause() {
  ctr_node images import "$PAUSE_BIN/pause.oci.tar" >>"$STATE_DIR/logs/images.log" 2>&1 ||
    fail_component images "$STATE_DIR/logs/images.log" "could not import the pause image into containerd"
}

# start_node: everything of the real node, in order (the control plane is up).
start_node() {
  [[ $(id -u) -eq 0 ]] || fail_component node /dev/null "the real node needs root (kubelet, containerd, cgroups, a bridge)"
  case $STATE_DIR/ in
  /run/* | /var/run/* | /var/log/* | /var/lib/*)
    fail_component node /dev/null "the state directory $STATE_DIR is under a path the node's namespace hides (/run, /var/log, /var/lib); set AGENTIC_TESTENV_DIR elsewhere"
    ;;
  esac
  local t0=$SECONDS
  register_node
  CURRENT=node-network make_bridge
  make_cgroups
  CURRENT=node-ns start_component node-ns 10
  CURRENT=containerd start_component containerd 30
  CURRENT=images import_pause
  CURRENT=kubelet start_component kubelet 60
  CURRENT=nodes create_runtime_class
  log "real node ready in $((SECONDS - t0))s"
}

# cmd_import_image IMAGE: podman's IMAGE into the node's containerd (namespace k8s.io, where the
# kubelet looks), unless that very image (podman's image id) was imported already.
cmd_import_image() {
  local image=$1 id mark archive
  if [[ -z $image ]]; then
    log "import-image needs an image, e.g. localhost/agentic-sdlc-agent-runner:dev"
    exit 2
  fi
  if [[ ! -f $STATE_DIR/ports.env ]] || ! all_running; then
    log "not running (start it with: scripts/testenv.sh up)"
    exit 1
  fi
  load_state
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO_ROOT/container/containers.conf}
  if ! id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null); then
    log "FAILED: podman has no image $image (build it first, e.g. make image)"
    exit 1
  fi
  mkdir -p "$NODE_DIR/images"
  mark="$NODE_DIR/images/$(printf '%s' "$image" | sha256sum | cut -c1-16)"
  if [[ -f $mark && $(<"$mark") == "$id" ]] && ctr_node images ls -q "name==$image" 2>/dev/null | grep -q .; then
    log "$image (${id:0:12}) is in the node's containerd already"
    return 0
  fi
  archive="$NODE_DIR/images/import.$$.tar"
  local t0=$SECONDS
  if ! podman save --quiet --format oci-archive -o "$archive" "$image" >"$STATE_DIR/logs/images.log" 2>&1 ||
    ! ctr_node images import "$archive" >>"$STATE_DIR/logs/images.log" 2>&1; then
    rm -f "$archive"
    log "FAILED: could not import $image into the node's containerd; last lines of $STATE_DIR/logs/images.log:"
    tail -n 15 "$STATE_DIR/logs/images.log" | sed 's/^/    /' >&2
    exit 1
  fi
  rm -f "$archive"
  echo "$id" >"$mark"
  log "imported $image (${id:0:12}) into the node's containerd in $((SECONDS - t0))s"
}

# stop_node: after the components are stopped; idempotent, also after a failed start.
stop_node() {
  [[ -f $STATE_DIR/node.env ]] || return 0
  local pid i
  pid=$(cat "$NODE_DIR/ns-init.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true # the kernel kills everything in its pid namespace
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  stop_component node-ns
  remove_cgroups
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  unregister_node
}
