#!/usr/bin/env bash
# Create .venv with wscheck installed (editable), on a fresh Debian machine or any Linux with Python 3.11+.
#   scripts/setup.sh          the bot
#   scripts/setup.sh --test   the bot plus the test and lint tools
# Idempotent: a second run only re-checks (pip is fast when everything is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

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
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras" >&2
    touch "$stamp"
fi
