#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (Python venv, OpenSSH server, nginx,
# Node.js, the sandbox's Next.js app and PM2) and run all of it: lint, types, unit, integration, end to end.
# Extra arguments go to pytest (e.g. -k pm2, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --test
bash deploy/sandbox/install.sh >/dev/null
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
# CI draws every property test's full example count (tests/support/examples.py); a bare pytest draws a third.
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
.venv/bin/python -m pytest -q -p no:cacheprovider
# The store's in-process tests once more on PostgreSQL (tests marked `store`, tests/conftest.py); the *_postgresql
# modules and the replicas' e2e ran on it above. Every store test with the sandbox too (about 7 minutes more):
# WSCHECK_TEST_DB=postgresql bash scripts/test.sh -m store. Why this split: docs/decisions.md, "wt-ops".
WSCHECK_TEST_DB=postgresql exec .venv/bin/python -m pytest -q -p no:cacheprovider -m "store and not sandbox"
