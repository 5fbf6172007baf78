#!/usr/bin/env bash
# Install what the wscheck sandbox needs, idempotently and fast on re-run.
#
#   1. System packages: openssh-server, nginx-light (plus iproute2 for `ss` and procps for `ps`), postgresql
#      (server binaries for the store tests; no cluster is created), only when
#      missing, through apt-get (as root, else `sudo -n`, else a clear error). Services are NOT started by
#      the packages' install scripts: the sandbox runs its own sshd and nginx on 127.0.0.1 only.
#   2. The Node dependencies of deploy/sandbox/app (Next.js 15, React 19, ws 8, and PM2) with `npm ci` from the
#      committed package-lock.json, into a cache OUTSIDE the git clone, keyed by the lock's sha256.
#   3. One `next build` of the app into the same cache, keyed by a hash of the app sources + lock.
#   4. A second, traced `next build` with `output: "standalone"` (WSCHECK_STANDALONE=1 in next.config.js), same key:
#      `.next/standalone` (with `ws` copied in) for the "static-missing" mode; only the standalone tree is kept.
#
# Cache: $WSCHECK_SANDBOX_CACHE, else /var/cache/wscheck-sandbox as root (the sandbox user must be able to
# read it, so never under /root), else ~/.cache/wscheck-sandbox. Nothing is written into the git clone.
#
# The last lines on stdout are KEY=VALUE pairs for deploy/sandbox/sandbox.py; progress goes to stderr.
set -euo pipefail

export NEXT_TELEMETRY_DISABLED=1
export NPM_CONFIG_UPDATE_NOTIFIER=false
export NPM_CONFIG_FUND=false
export NPM_CONFIG_AUDIT=false
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP_SRC="$HERE/app"

log() { printf '[wscheck-sandbox install] %s\n' "$*" >&2; }
die() { printf '[wscheck-sandbox install] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    CACHE=${WSCHECK_SANDBOX_CACHE:-/var/cache/wscheck-sandbox}
else
    CACHE=${WSCHECK_SANDBOX_CACHE:-$HOME/.cache/wscheck-sandbox}
fi

# --- 1. system packages ------------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=()
have sshd || missing+=(openssh-server)
have ssh-keygen || missing+=(openssh-client)
have nginx || missing+=(nginx-light)
have ss || missing+=(iproute2)
have ps || missing+=(procps)
have node || missing+=(nodejs)
have npm || missing+=(npm)
# PostgreSQL server binaries, for the store tests on the second engine: tests/support/postgres.py runs its own
# server (own data directory, own port, as the postgres user); the distribution's cluster is never created.
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have_pg_server || missing+=(postgresql)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        die "missing packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
    fi
    log "installing ${missing[*]} with apt-get"
    # Keep the packages' maintainer scripts from starting system-wide sshd/nginx (port 22/80 on all
    # interfaces): the standard policy-rc.d "101 = action not allowed", only if none is in place already.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    cleanup_policy() { if [ "$added_policy" = 1 ]; then "${as_root[@]}" rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        # postgresql-common reads this before creating (and starting) the default "main" cluster: none, please.
        "${as_root[@]}" mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false" | "${as_root[@]}" tee /etc/postgresql-common/createcluster.d/wscheck.conf \
            >/dev/null
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
    cleanup_policy
    added_policy=0
fi

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 18.18+ is needed for Next.js 15)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"

# --- 2. node_modules, keyed by the lock; 3. the production build, keyed by the app sources + lock ------------
LOCK_SHA=$(sha256sum "$APP_SRC/package-lock.json" | cut -c1-64)
DEPS="$CACHE/deps-${LOCK_SHA:0:16}"
SRC_HASH=$(
    cd "$APP_SRC" &&
        find . -type f ! -path './node_modules/*' ! -path './.next/*' ! -path './.next-dev/*' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
)
BUILD="$CACHE/build-${SRC_HASH:0:16}"
STANDALONE="$CACHE/standalone-${SRC_HASH:0:16}"

deps_ok() { [ -f "$DEPS/.complete" ] && [ "$(cat "$DEPS/.complete")" = "$LOCK_SHA" ]; }
build_ok() { [ -f "$BUILD/.complete" ] && [ -f "$BUILD/.next/BUILD_ID" ]; }
standalone_ok() { [ -f "$STANDALONE/.complete" ] && [ -f "$STANDALONE/standalone/server.js" ]; }

if deps_ok && build_ok && standalone_ok; then
    # Fast path: no lock, no write, so a warm cache may even be read-only for this user.
    log "cache up to date ($DEPS, $BUILD, $STANDALONE)"
else
    mkdir -p "$CACHE"
    chmod 755 "$CACHE"
    # One install at a time per cache (two sandboxes starting together must not race on the same key).
    exec 9>"$CACHE/.lock"
    flock 9

    if deps_ok; then
        log "node_modules up to date ($DEPS)"
    else
        log "npm ci into $DEPS"
        rm -rf "$DEPS"
        tmp=$(mktemp -d "$CACHE/.deps-tmp.XXXXXX")
        cp "$APP_SRC/package.json" "$APP_SRC/package-lock.json" "$tmp/"
        # --include=dev: PM2 is a devDependency, and a NODE_ENV=production in the caller must not drop it.
        (cd "$tmp" && npm ci --include=dev --no-audit --no-fund --loglevel=error >&2)
        printf '%s' "$LOCK_SHA" >"$tmp/.complete"
        chmod 755 "$tmp"
        mv -T "$tmp" "$DEPS"
    fi

    if build_ok; then
        log "production build up to date ($BUILD)"
    else
        log "next build into $BUILD"
        rm -rf "$BUILD"
        tmp=$(mktemp -d "$CACHE/.build-tmp.XXXXXX")
        (cd "$APP_SRC" && tar --exclude=./node_modules --exclude=./.next --exclude=./.next-dev -cf - .) |
            (cd "$tmp" && tar -xf -)
        ln -s "$DEPS/node_modules" "$tmp/node_modules"
        (cd "$tmp" && NODE_ENV=production node_modules/.bin/next build >&2)
        [ -f "$tmp/.next/BUILD_ID" ] || die "next build finished without .next/BUILD_ID"
        # The webpack cache only serves rebuilds; the sandbox copies .next per workdir, so keep it small.
        rm -rf "$tmp/.next/cache"
        printf '%s' "$SRC_HASH" >"$tmp/.complete"
        chmod -R a+rX "$tmp"
        mv -T "$tmp" "$BUILD"
    fi

    if standalone_ok; then
        log "standalone build up to date ($STANDALONE)"
    else
        log "next build (output: standalone) into $STANDALONE"
        rm -rf "$STANDALONE"
        tmp=$(mktemp -d "$CACHE/.standalone-tmp.XXXXXX")
        (cd "$APP_SRC" && tar --exclude=./node_modules --exclude=./.next --exclude=./.next-dev -cf - .) |
            (cd "$tmp" && tar -xf -)
        # A real node_modules (hard links, same file system): output tracing copies what it resolves inside the
        # project, and a symlink out of it would trace to paths outside `.next/standalone`.
        cp -al "$DEPS/node_modules" "$tmp/node_modules"
        (cd "$tmp" && NODE_ENV=production WSCHECK_STANDALONE=1 node_modules/.bin/next build >&2)
        [ -f "$tmp/.next/standalone/server.js" ] || die "the standalone build finished without .next/standalone/server.js"
        # The chat's `ws` is not required by any page, so tracing leaves it out; a custom server needs it.
        rm -rf "$tmp/.next/standalone/node_modules/ws"
        cp -a "$DEPS/node_modules/ws" "$tmp/.next/standalone/node_modules/ws"
        mkdir "$tmp/out"
        mv "$tmp/.next/standalone" "$tmp/out/standalone"
        find "$tmp" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
        mv "$tmp/out/standalone" "$tmp/standalone" && rmdir "$tmp/out"
        printf '%s' "$SRC_HASH" >"$tmp/.complete"
        chmod -R a+rX "$tmp"
        mv -T "$tmp" "$STANDALONE"
    fi
fi

echo "WSCHECK_SANDBOX_CACHE=$CACHE"
echo "WSCHECK_SANDBOX_NODE_MODULES=$DEPS/node_modules"
echo "WSCHECK_SANDBOX_BUILD=$BUILD/.next"
echo "WSCHECK_SANDBOX_STANDALONE=$STANDALONE/standalone"
echo "WSCHECK_SANDBOX_PM2=$DEPS/node_modules/.bin/pm2"
