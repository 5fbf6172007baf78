#!/usr/bin/env bash
# Create .venv with wscheck installed (editable), on a fresh Debian machine or any Linux with Python 3.11+.
#   scripts/setup.sh          the bot
#   scripts/setup.sh --test   the bot plus the test and lint tools
# Installs the exact versions of requirements/run.lock (test.lock with --test), checked against their hashes,
# then wscheck itself without dependencies. Refresh the locks with `bash scripts/lock.sh`.
# Idempotent: it re-installs only when the lock or pyproject.toml is newer than the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras=""
lock=requirements/run.lock
if [ "${1:-}" = "--test" ]; then extras="[test]"; lock=requirements/test.lock; fi

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "wscheck setup: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "wscheck setup: installing python3 and python3-venv with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip >&2
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "wscheck setup: Python 3.11 or newer is needed ($("$PY" --version) found); set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

stamp=".venv/.wscheck-installed$extras"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# The stamp records which lock was installed (its hash): a changed or different lock means a re-install.
want="$(sha256sum "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
    "${pip[@]}" --require-hashes -r "$lock" >&2
    "${pip[@]}" --no-deps -e . >&2
    echo "$want" >"$stamp"
fi
