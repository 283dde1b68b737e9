#!/usr/bin/env bash
# Builds the agent image with podman and smoke-runs it:
#   scripts/build-image.sh [TAG]      (default localhost/agentic-sdlc-agent-runner:dev)
#
# No image registry is reachable on the project's machines, so the Debian base is made locally with
# debootstrap (minbase, from the mirror apt already uses) and imported as $BASE_IMAGE. The debootstrap
# tarball is cached under ${XDG_CACHE_HOME:-~/.cache}/agentic-sdlc/image/; extra CA certificates from
# /usr/local/share/ca-certificates (a re-signing proxy's) are added to the base at import time, so apt,
# npm and pip inside the build trust the same roots as this machine.
# podman runs with the project's containers.conf (runc, cgroupfs, no default ulimits) via CONTAINERS_CONF.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-localhost/agentic-sdlc-agent-runner:dev}
# Bump BASE_RECIPE when make_base_tarball changes, so a stale cached base is not reused.
BASE_RECIPE=2
BASE_IMAGE=${AGENTIC_BASE_IMAGE:-localhost/agentic-sdlc/debian:bookworm-slim-r$BASE_RECIPE}
SUITE=bookworm
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/image
BASE_TAR=$CACHE/debian-$SUITE-slim-r$BASE_RECIPE.tar
OPENCODE_VERSION=$(<"$ROOT/container/opencode.version")
VERSION=$("$ROOT/scripts/version.sh")
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/container/containers.conf}

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for cmd in podman debootstrap tar; do
  command -v "$cmd" >/dev/null || die "$cmd not found; run scripts/install-deps.sh (as root) first"
done

# The Debian mirror apt on this machine uses (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v -- '-security' | head -n1 || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

make_base_tarball() {
  local mirror rootfs
  mirror=$(debian_mirror)
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/agentic-base.XXXXXX")
  log "debootstrap --variant=minbase $SUITE from $mirror (cached afterwards in $BASE_TAR)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -rf "$rootfs" "$rootfs.log"; die "debootstrap failed"; }
  # Like Debian's official -slim images: no docs, man pages or translations, now or in later layers.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/linda/*' \
    'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/locale/*' \
    'path-include /usr/share/locale/locale.alias' 'path-exclude /usr/share/man/*' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
  # ... and, like them, no downloaded .deb files or package caches left behind by apt-get install.
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
  printf '%s\n' "DPkg::Post-Invoke { $clean };" "APT::Update::Post-Invoke { $clean };" \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$rootfs/etc/apt/apt.conf.d/docker-clean"
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,man}/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  mkdir -p "$CACHE"
  tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$rootfs" "$rootfs.log"
}

import_base() {
  local work certs=()
  [[ -f $BASE_TAR ]] || make_base_tarball
  work=$(mktemp -d "${TMPDIR:-/tmp}/agentic-import.XXXXXX")
  cp "$BASE_TAR" "$work/base.tar"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$work/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$work/usr/local/share/ca-certificates/"
    for c in "$work"/usr/local/share/ca-certificates/*.crt; do certs+=("usr/local/share/ca-certificates/${c##*/}"); done
    log "adding ${#certs[@]} extra CA certificate(s) to the base: ${certs[*]}"
    tar --numeric-owner --owner=0 --group=0 -C "$work" -rf "$work/base.tar" "${certs[@]}"
  fi
  podman import --quiet "$work/base.tar" "$BASE_IMAGE" >/dev/null
  rm -rf "$work"
  log "imported $BASE_IMAGE"
}

if ! podman image exists "$BASE_IMAGE"; then
  import_base
fi

log "building $TAG (version $VERSION at ${REVISION:-an unknown revision}, OpenCode $OPENCODE_VERSION, base $BASE_IMAGE)"
podman build --pull=never \
  --file "$ROOT/container/Dockerfile" \
  --ignorefile "$ROOT/container/.dockerignore" \
  --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg OPENCODE_VERSION="$OPENCODE_VERSION" \
  --build-arg VERSION="$VERSION" \
  --build-arg REVISION="$REVISION" \
  --layers --format docker \
  --tag "$TAG" \
  "$ROOT"

log "smoke run: read-only root, user 1000"
# /tmp, /home/agent and /workspace are the pod's emptyDirs: host directories of mode 0777, as the
# kubelet makes them (podman's --tmpfs ignores mode= here and leaves them root-owned 0755).
empty_dirs=$(mktemp -d "${TMPDIR:-/tmp}/agentic-smoke.XXXXXX")
trap 'rm -rf "$empty_dirs"' EXIT
mkdir "$empty_dirs"/{tmp,home,workspace}
chmod 0777 "$empty_dirs"/{tmp,home,workspace}
smoke() {
  podman run --rm --read-only --network none --user 1000:1000 \
    -v "$empty_dirs/tmp:/tmp" -v "$empty_dirs/home:/home/agent" -v "$empty_dirs/workspace:/workspace" "$@"
}
got=$(smoke --entrypoint opencode "$TAG" --version)
[[ $got == "$OPENCODE_VERSION" ]] || die "opencode --version in the image says '$got', expected $OPENCODE_VERSION"
smoke --entrypoint git "$TAG" --version >/dev/null
smoke "$TAG" --help >/dev/null || die "the entrypoint (python -m mcp_server.runner) --help failed in the image"
log "ok: $TAG ($(podman image inspect --format '{{.Size}}' "$TAG") bytes)"
