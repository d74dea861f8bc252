#!/usr/bin/env bash
# Run agent-api on 127.0.0.1:8000: installs what it needs, starts a Docker engine if none
# answers, and creates .env with a fresh random key the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh

if [ ! -f .env ]; then
  key="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  umask 077
  printf 'AGENT_API_KEY=%s\n' "$key" > .env
  printf '[run] created %s/.env with a new AGENT_API_KEY (read it from there)\n' "$PWD" >&2
fi

exec .venv/bin/agent-platform serve "$@"
