#!/usr/bin/env bash
# Installs the Debian packages the tests need, once. Idempotent: prints nothing when all are present.
set -euo pipefail

# command -> Debian package
declare -A NEED=(
  [openssl]=openssl
  [git]=git
  [setsid]=util-linux
  # the agent image (scripts/build-image.sh): podman with runc, a debootstrapped base
  [podman]=podman
  [/usr/sbin/runc]=runc
  [newuidmap]=uidmap
  [/usr/sbin/debootstrap]=debootstrap
  # the test control plane's real node (scripts/testenv-node.sh): runc above, CNI plugins, ip,
  # unshare/nsenter; a static busybox for the small test image its tests run
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [ip]=iproute2
  [nsenter]=util-linux
  [/bin/busybox]=busybox-static
  # the runner's e2e tests: a throwaway sshd, ssh keys; npm installs the pinned OpenCode
  [/usr/sbin/sshd]=openssh-server
  [ssh-keygen]=openssh-client
  [npm]=npm
  # the LLM proxy tests run the agent image's nginx on the host too
  [/usr/sbin/nginx]=nginx
  # the local backend's sandbox for the agent (mcp_server/backends/local_sandbox.py)
  [bwrap]=bubblewrap
  # the local backend's podman mode in tests: the pod's own network namespace that reaches the host's
  # loopback (the scripted model) at 10.0.2.2 (tests/e2e/test_local_podman.py)
  [slirp4netns]=slirp4netns
  # podman's pods (the local backend's podman mode): their infra container's pause binary
  [catatonit]=catatonit
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
