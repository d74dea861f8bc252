#!/usr/bin/env bash
# The whole test suite: installs what it needs, starts a Docker engine if none answers,
# then lint, types and every test against the real engine. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh test

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
