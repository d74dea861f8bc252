#!/usr/bin/env bash
# Build (once per machine) the Kubernetes control-plane binaries used by the tests.
#
# kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 are built from
# Debian's `kubernetes` source package (the upstream tree with vendored dependencies,
# built offline) and cached under:
#
#   ${AGENT_PLATFORM_CACHE:-$HOME/.cache/agent-platform}/kube-v1.20.2/bin/
#
# The runtime dependencies (etcd-server, openssl, and kubectl from kubernetes-client
# when Debian ships it) are installed with apt. The source package is fetched through
# a private apt source list: the machine's apt configuration is left untouched.
#
# Idempotent: when the binaries are cached and etcd is installed it exits at once.
# Environment:
#   AGENT_PLATFORM_CACHE   cache root (default: $HOME/.cache/agent-platform)
#   KUBE_TESTENV_MIRROR    Debian mirror for the source package
#                          (default: http://deb.debian.org/debian)
#   KUBE_TESTENV_SUITES    suites searched for the source package
#                          (default: "bookworm bookworm-updates")
set -euo pipefail

KUBE_VERSION="v1.20.2"
CACHE_ROOT="${AGENT_PLATFORM_CACHE:-$HOME/.cache/agent-platform}"
KUBE_DIR="$CACHE_ROOT/kube-$KUBE_VERSION"
BIN_DIR="$KUBE_DIR/bin"
MIRROR="${KUBE_TESTENV_MIRROR:-http://deb.debian.org/debian}"
SUITES="${KUBE_TESTENV_SUITES:-bookworm bookworm-updates}"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
SERVER_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[kube-testenv-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing"
    SUDO=(sudo)
fi

binaries_cached() {
    local name
    for name in "${SERVER_BINARIES[@]}"; do
        [[ -x "$BIN_DIR/$name" ]] || return 1
    done
    return 0
}

runtime_present() {
    command -v etcd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 \
        && { command -v kubectl >/dev/null 2>&1 || [[ -x "$BIN_DIR/kubectl" ]]; }
}

if binaries_cached && runtime_present; then
    log "binaries already cached in $BIN_DIR; nothing to do"
    exit 0
fi

mkdir -p "$KUBE_DIR"
exec 9>"$KUBE_DIR/.build.lock"
log "waiting for the build lock $KUBE_DIR/.build.lock"
flock 9
# Another run may have finished while this one waited for the lock.
if binaries_cached && runtime_present; then
    log "binaries already cached in $BIN_DIR; nothing to do"
    exit 0
fi

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
        APT_UPDATED=1
    fi
}

apt_install() {
    apt_update_once
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2
}

debian_has() {
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

# --- runtime packages ------------------------------------------------------------
apt_update_once
BUILD_KUBECTL=0
RUNTIME_PKGS=(etcd-server openssl)
if command -v kubectl >/dev/null 2>&1; then
    log "kubectl already available: $(command -v kubectl)"
elif debian_has kubernetes-client; then
    RUNTIME_PKGS+=(kubernetes-client)
else
    log "Debian has no kubernetes-client package; kubectl will be built"
    BUILD_KUBECTL=1
fi
apt_install "${RUNTIME_PKGS[@]}"

if binaries_cached && { [[ $BUILD_KUBECTL -eq 0 ]] || [[ -x "$BIN_DIR/kubectl" ]]; }; then
    log "server binaries already cached in $BIN_DIR; runtime packages installed"
    exit 0
fi

# --- build ---------------------------------------------------------------------
apt_install golang-go rsync jq dpkg-dev make

WORK="$KUBE_DIR/work"
cleanup() {
    log "removing the build directory $WORK"
    rm -rf "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK/lists/partial" "$WORK/src-download"

SOURCES_LIST="$WORK/sources.list"
: >"$SOURCES_LIST"
for suite in $SUITES; do
    printf 'deb-src [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$suite" >>"$SOURCES_LIST"
done
APT_PRIVATE=(
    -o "Dir::Etc::SourceList=$SOURCES_LIST"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$WORK/lists"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Sandbox::User=root"
)

log "fetching the index of Debian source packages (private apt lists)"
apt-get "${APT_PRIVATE[@]}" --error-on=any update -qq >&2
log "downloading the kubernetes source package"
(cd "$WORK/src-download" && apt-get "${APT_PRIVATE[@]}" source --download-only kubernetes >&2)
DSC="$(find "$WORK/src-download" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n 1)"
[[ -n "$DSC" ]] || die "no kubernetes_*.dsc was downloaded"
log "unpacking $(basename "$DSC")"
# apt already checked every file against the signed Sources index.
dpkg-source --no-check -x "$DSC" "$WORK/src" >&2
rm -rf "$WORK/src-download"

TARGETS=("${SERVER_BINARIES[@]}")
if [[ $BUILD_KUBECTL -eq 1 ]]; then
    TARGETS+=(kubectl)
fi
WHAT="${TARGETS[*]/#/cmd/}"
log "building $WHAT (several minutes)"
start=$SECONDS
(
    cd "$WORK/src"
    export KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_TREE_STATE=clean \
        KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 CGO_ENABLED=0 \
        GOCACHE="$WORK/gocache" GOPROXY=off
    make WHAT="$WHAT" >&2
)
log "build finished in $((SECONDS - start)) s"

OUT="$WORK/src/_output/local/go/bin"
[[ -d "$OUT" ]] || OUT="$WORK/src/_output/bin"
rm -rf "$BIN_DIR.tmp"
mkdir -p "$BIN_DIR.tmp"
for name in "${TARGETS[@]}"; do
    [[ -x "$OUT/$name" ]] || die "build produced no $name in $OUT"
    cp "$OUT/$name" "$BIN_DIR.tmp/$name"
done
rm -rf "$BIN_DIR"
mv "$BIN_DIR.tmp" "$BIN_DIR"
log "cached: $(cd "$BIN_DIR" && echo *) in $BIN_DIR"
"$BIN_DIR/kube-apiserver" --version >&2
