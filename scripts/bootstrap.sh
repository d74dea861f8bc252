#!/usr/bin/env bash
# Everything both entry points need on a fresh machine: a Python venv with the project,
# Debian's busybox (for local images; there may be no registry), and a Docker engine; for
# the tests also debootstrap (a local Python base image), docker-compose and chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }
extras="${1:-}"

need=""
if [ "$extras" = test ]; then
  command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
    need="$need docker-compose"
  # The dashboard's browser tests drive Debian's chromium (no browser can be downloaded).
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
fi
[ -e /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need="$need busybox-static"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's$need"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
  fi
fi

scripts/ensure-docker.sh

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$python" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the project${extras:+ with [$extras]}"
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
          .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"; } >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

if [ "$extras" = test ]; then
  # The Kubernetes control plane the tests run against: built once per machine (several
  # minutes), then cached outside the repository; quick when already there.
  if ! scripts/kube-testenv-build.sh >.venv/kube-testenv-build.log 2>&1; then
    tail -n 40 .venv/kube-testenv-build.log >&2
    if [ "${CI:-}" = true ]; then
      log "building the Kubernetes test environment failed"
      exit 1
    fi
    log "building the Kubernetes test environment failed: its tests will be skipped"
  fi
fi
