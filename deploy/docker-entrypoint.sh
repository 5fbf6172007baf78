#!/bin/sh
# wscheck image entrypoint: fill in the image's defaults where an --env-file left them empty, then exec the
# command, so that wscheck replaces this shell and gets `docker stop`'s SIGTERM itself (graceful stop).
#
# An env file made from .env.example has `WSCHECK_METRICS_PORT=` (empty = off) and `WSCHECK_DB=wscheck.db`:
# the HEALTHCHECK needs /healthz, and a relative SQLite path belongs on the /data volume.
set -eu

if [ -z "${WSCHECK_METRICS_PORT:-}" ]; then
    export WSCHECK_METRICS_PORT=9090
fi
case ${WSCHECK_DB:-} in
    /* | *://*) ;;  # an absolute path, or a URL (postgresql://…, sqlite:///…): as given
    "") export WSCHECK_DB=/data/wscheck.db ;;
    *) export WSCHECK_DB="/data/$WSCHECK_DB" ;;
esac
if [ -z "${WSCHECK_CONFIG:-}" ]; then
    export WSCHECK_CONFIG=/config/wscheck.toml
fi

exec "$@"
