#!/usr/bin/env bash
# Refresh the dependency locks from pyproject.toml's ranges: exact versions with hashes, for Python 3.11 on Linux.
#   bash scripts/lock.sh              re-resolve, keeping the locked versions that still satisfy pyproject.toml
#   bash scripts/lock.sh --upgrade    re-resolve to the newest versions the ranges allow
# Installs use only pip (`pip install --require-hashes -r requirements/run.lock`); uv is needed only here, pinned,
# in a throwaway venv under .venv-lock/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV_VERSION=0.13.9
PY=${PYTHON:-python3}
if [ ! -x .venv-lock/bin/uv ] || [ "$(.venv-lock/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    "$PY" -m venv .venv-lock
    .venv-lock/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"
common=(--generate-hashes --python-version 3.11 --python-platform linux --quiet "$@")
.venv-lock/bin/uv pip compile pyproject.toml "${common[@]}" -o requirements/run.lock
.venv-lock/bin/uv pip compile pyproject.toml --extra test "${common[@]}" -o requirements/test.lock
echo "wscheck lock: requirements/run.lock and requirements/test.lock refreshed" >&2
