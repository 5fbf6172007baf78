#!/usr/bin/env bash
# Install (or upgrade) the wscheck bot as a systemd service on a Debian/Ubuntu server. Run as root.
#
#   deploy/install.sh                  install or upgrade from this checkout; do not touch the running service
#   deploy/install.sh --start          ... then enable the service and (re)start it
#   deploy/install.sh --source X.whl   install a wheel (or another checkout) instead of this checkout
#   deploy/install.sh --dry-run        print what would be done, change nothing (no root needed)
#   deploy/install.sh --root DIR       install under DIR instead of / (staging, tests): no user, no chown,
#                                      no systemctl
#
# What it does (idempotent: a second run changes nothing but the program and the unit file):
#   user and group `wscheck` (system account, home /var/lib/wscheck, no login shell)
#   /opt/wscheck/venv            a venv with requirements/run.lock's exact versions and the wscheck-bot package
#                                (pip install --no-deps SOURCE), upgraded on every run
#   /usr/local/bin/wscheck       runs wscheck as the service user with the service's config (`wscheck trust prod`)
#   /etc/wscheck/wscheck.toml    targets and settings, created once from a template (root:wscheck 0640)
#   /etc/wscheck/env             Slack tokens, created once from .env.example or a template (root:root 0600)
#   /etc/wscheck/ssh/            the bot's own SSH key (ed25519, generated once) and known_hosts (wscheck, 0700)
#   /var/lib/wscheck/            the SQLite database (wscheck, 0750)
#   /etc/systemd/system/wscheck.service   from deploy/wscheck.service, replaced on every run; daemon-reload
# Existing config, env and key files are never overwritten (their modes and owners are corrected).
# See docs/install.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(dirname "$HERE")

SERVICE_USER=wscheck
PYTHON=${PYTHON:-python3}
SOURCE=$CHECKOUT
START=0
DRY_RUN=0
ROOT=""

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { printf '[wscheck install] %s\n' "$*" >&2; }
die() { printf '[wscheck install] ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --start) START=1 ;;
        --dry-run|-n) DRY_RUN=1 ;;
        --source) [ $# -ge 2 ] || die "--source needs a path"; SOURCE=$2; shift ;;
        --source=*) SOURCE=${1#--source=} ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

if [ -n "$ROOT" ]; then
    ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root $ROOT: no such directory"
    [ "$ROOT" != / ] || ROOT=""
fi
[ "$START" = 0 ] || [ -z "$ROOT" ] || die "--start cannot be combined with --root"

OPT=$ROOT/opt/wscheck
VENV=$OPT/venv
ETC=$ROOT/etc/wscheck
SSH_DIR=$ETC/ssh
STATE=$ROOT/var/lib/wscheck
UNIT_DIR=$ROOT/etc/systemd/system
WRAPPER=$ROOT/usr/local/bin/wscheck

# --- helpers: every change goes through run / put_file / set_owner, so --dry-run prints it instead ----------
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# put_file DEST MODE OWNER:GROUP < content   (write atomically; OWNER ignored under --root)
put_file() {
    local dest=$1 mode=$2 owner=$3 tmp
    if [ "$DRY_RUN" = 1 ]; then
        printf '+ write %s (mode %s, owner %s)\n' "$dest" "$mode" "$owner"
        cat >/dev/null
        return
    fi
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    [ -n "$ROOT" ] || chown "$owner" "$tmp"
    mv -f "$tmp" "$dest"
}

# make_dir DIR MODE OWNER:GROUP   (create or fix)
make_dir() {
    run install -d -m "$2" "$1"
    set_owner "$3" "$1"
}

set_owner() {
    if [ -n "$ROOT" ]; then
        [ "$DRY_RUN" = 0 ] || printf '+ (skipped under --root) chown %s %s\n' "$1" "$2"
        return
    fi
    run chown "$1" "$2"
}

have_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# --- checks --------------------------------------------------------------------------------------------------
if [ "$DRY_RUN" = 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0), or with --dry-run to see what it would do"
fi

if [ -d "$SOURCE" ]; then
    SOURCE=$(cd "$SOURCE" && pwd)
    [ -f "$SOURCE/pyproject.toml" ] || die "--source $SOURCE: no pyproject.toml (not a wscheck checkout)"
elif [ -f "$SOURCE" ]; then
    case $SOURCE in
        *.whl) SOURCE=$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE") ;;
        *) die "--source $SOURCE: expected a wscheck checkout directory or a .whl file" ;;
    esac
else
    die "--source $SOURCE: no such file or directory"
fi
[ -f "$HERE/wscheck.service" ] || die "$HERE/wscheck.service is missing"

apt_packages=()
if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_packages+=(python3 python3-venv)
    PYTHON=python3
fi
command -v ssh-keygen >/dev/null 2>&1 || apt_packages+=(openssh-client)
if [ ${#apt_packages[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${apt_packages[*]} and no apt-get: install them first"
    log "installing ${apt_packages[*]} with apt-get"
    run env DEBIAN_FRONTEND=noninteractive apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_packages[@]}"
fi
if [ "$DRY_RUN" = 0 ] || command -v "$PYTHON" >/dev/null 2>&1; then
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
        || die "Python 3.11 or newer is needed ($("$PYTHON" --version 2>&1) found); set PYTHON=/path/to/python3.11"
fi

[ "$DRY_RUN" = 0 ] || log "dry run: nothing is changed"
[ -z "$ROOT" ] || log "installing under $ROOT"

# --- 1. the service user -------------------------------------------------------------------------------------
if [ -n "$ROOT" ]; then
    log "user $SERVICE_USER: skipped under --root"
elif id "$SERVICE_USER" >/dev/null 2>&1; then
    log "user $SERVICE_USER exists"
else
    log "creating system user $SERVICE_USER"
    run useradd --system --user-group --home-dir /var/lib/wscheck --no-create-home \
        --shell /usr/sbin/nologin --comment "wscheck bot" "$SERVICE_USER"
fi
OWNER=$SERVICE_USER:$SERVICE_USER
ROOT_GROUP=root:$SERVICE_USER

# --- 2. directories ------------------------------------------------------------------------------------------
make_dir "$OPT" 0755 root:root
make_dir "$ETC" 0750 "$ROOT_GROUP"
make_dir "$SSH_DIR" 0700 "$OWNER"
make_dir "$STATE" 0750 "$OWNER"
for dir in "$UNIT_DIR" "$(dirname "$WRAPPER")"; do
    [ -d "$dir" ] || run install -d -m 0755 "$dir"
done

# --- 3. the program ------------------------------------------------------------------------------------------
if [ -x "$VENV/bin/python" ]; then
    log "upgrading wscheck in $VENV from $SOURCE"
else
    log "creating $VENV and installing wscheck from $SOURCE"
    run "$PYTHON" -m venv "$VENV"
fi
# The exact dependency versions of the lock (hash-checked; the source checkout's own lock when it has one),
# then wscheck itself without dependencies: what runs is what the test suite ran.
LOCK=$CHECKOUT/requirements/run.lock
[ ! -f "$SOURCE/requirements/run.lock" ] || LOCK=$SOURCE/requirements/run.lock
[ -f "$LOCK" ] || die "$LOCK is missing (refresh it with: bash scripts/lock.sh)"
run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$LOCK"
run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade --no-deps "$SOURCE"

put_file "$WRAPPER" 0755 root:root <<EOF
#!/bin/sh
# Installed by wscheck's deploy/install.sh: wscheck as the service user, with the service's config and database.
# \`wscheck trust prod\`, \`wscheck check\`, \`wscheck config\`; root is switched to the $SERVICE_USER user.
export WSCHECK_CONFIG="\${WSCHECK_CONFIG:-/etc/wscheck/wscheck.toml}"
export WSCHECK_DB="\${WSCHECK_DB:-/var/lib/wscheck/wscheck.db}"
cd /var/lib/wscheck 2>/dev/null || cd /
if [ "\$(id -u)" = 0 ]; then
    export HOME=/var/lib/wscheck USER=$SERVICE_USER LOGNAME=$SERVICE_USER
    exec setpriv --reuid=$SERVICE_USER --regid=$SERVICE_USER --init-groups /opt/wscheck/venv/bin/wscheck "\$@"
fi
exec /opt/wscheck/venv/bin/wscheck "\$@"
EOF

# --- 4. configuration (created once, never overwritten) ------------------------------------------------------
if [ -e "$ETC/wscheck.toml" ]; then
    log "keeping $ETC/wscheck.toml"
    run chmod 0640 "$ETC/wscheck.toml"
    set_owner "$ROOT_GROUP" "$ETC/wscheck.toml"
else
    put_file "$ETC/wscheck.toml" 0640 "$ROOT_GROUP" <<'EOF'
# wscheck configuration: docs/install.md; every setting in README 'Configuration'.
# Readable by the wscheck user. No secrets here: Slack tokens go in /etc/wscheck/env.
# Check it with: wscheck config
#
# Settings: any WSCHECK_<KEY> environment variable is also a top-level key here (the environment wins).
# alert_channel = "C0123ABCD"      # channel ID for alerts (channel details > About); invite the bot there
# alert_mention = "S0123ABCD"      # user group (S…), user (U…), "here" or "channel"
# check_interval = "60s"
#
# [remediation]
# approvers = ["U0123ABCD", "S0123ABCD"]   # who may approve a fix (user IDs or user-group IDs)
#
# One [[targets]] table per server. The bot logs in over SSH with its own key, /etc/wscheck/ssh/id_ed25519:
# put /etc/wscheck/ssh/id_ed25519.pub in the target user's ~/.ssh/authorized_keys (docs/target-access.md).
# Host keys are always verified against known_hosts: add the server's with `wscheck trust prod`.
#
# [[targets]]
# name = "prod"
# host = "app.example.com"
# user = "wscheck"                 # the unprivileged login set up by docs/target-access.md
# identity_file = "/etc/wscheck/ssh/id_ed25519"
# known_hosts = "/etc/wscheck/ssh/known_hosts"
# pm2_app = "web"
# app_port = 3000
# app_dir = "/srv/web"
# public_url = "https://app.example.com/"
# ws_path = "/ws"
EOF
fi

if [ -e "$ETC/env" ]; then
    log "keeping $ETC/env"
    run chmod 0600 "$ETC/env"
    set_owner root:root "$ETC/env"
elif [ -d "$SOURCE" ] && [ -f "$SOURCE/.env.example" ]; then
    # The repository's full list of settings, with this layout's paths filled in.
    sed -e 's|^WSCHECK_DB=.*|WSCHECK_DB=/var/lib/wscheck/wscheck.db|' \
        -e 's|^WSCHECK_CONFIG=.*|WSCHECK_CONFIG=/etc/wscheck/wscheck.toml|' \
        "$SOURCE/.env.example" | put_file "$ETC/env" 0600 root:root
else
    put_file "$ETC/env" 0600 root:root <<'EOF'
# wscheck environment, read by systemd (EnvironmentFile= in wscheck.service) as root: keep it 0600.
# KEY=value lines, no `export`. After a change: systemctl restart wscheck
#
# Slack (docs/slack-setup.md). Without SLACK_BOT_TOKEN the bot runs in console mode (alerts in the journal only).
# Bot User OAuth Token (OAuth & Permissions):
SLACK_BOT_TOKEN=
# Socket Mode: app-level token with connections:write (Basic Information > App-Level Tokens):
SLACK_APP_TOKEN=
# HTTP mode instead: WSCHECK_HTTP=true and the Signing Secret (Basic Information > App Credentials)
#WSCHECK_HTTP=true
#WSCHECK_HTTP_PORT=3000
#SLACK_SIGNING_SECRET=
#
# Any setting of wscheck.toml can be set here as WSCHECK_<KEY>, e.g.
#WSCHECK_ALERT_CHANNEL=C0123ABCD
# /healthz and /metrics (Prometheus) on 127.0.0.1:
#WSCHECK_METRICS_PORT=9090
EOF
fi

# --- 5. the bot's SSH key (generated once) -------------------------------------------------------------------
KEY=$SSH_DIR/id_ed25519
if [ -e "$KEY" ]; then
    log "keeping the SSH key $KEY"
else
    log "generating the bot's SSH key $KEY"
    run ssh-keygen -q -t ed25519 -N "" -C "wscheck@$(hostname 2>/dev/null || echo bot)" -f "$KEY"
fi
for file in "$KEY" "$KEY.pub"; do
    if [ -e "$file" ] || [ "$DRY_RUN" = 1 ]; then
        set_owner "$OWNER" "$file"
    fi
done
run chmod 0600 "$KEY"

# --- 6. the systemd unit -------------------------------------------------------------------------------------
put_file "$UNIT_DIR/wscheck.service" 0644 root:root <"$HERE/wscheck.service"
if have_systemd; then
    run systemctl daemon-reload
    if [ "$START" = 1 ]; then
        env_file_token=$(sed -n 's/^SLACK_BOT_TOKEN=//p' "$ETC/env" 2>/dev/null | tail -n 1)
        [ -n "$env_file_token" ] || log "warning: no SLACK_BOT_TOKEN in $ETC/env: the bot starts in console mode"
        run systemctl enable wscheck.service
        run systemctl restart wscheck.service
    elif systemctl is-active --quiet wscheck.service; then
        log "wscheck is running the previous version: systemctl restart wscheck"
    fi
elif [ -n "$ROOT" ]; then
    log "systemctl: skipped under --root"
else
    log "systemd is not running here: enable the unit where it is (systemctl enable --now wscheck)"
    [ "$START" = 0 ] || die "--start needs a running systemd"
fi

# --- next steps ----------------------------------------------------------------------------------------------
pub="(the contents of $KEY.pub)"
[ ! -r "$KEY.pub" ] || pub=$(cat "$KEY.pub")
done_msg="wscheck is installed."
[ "$DRY_RUN" = 0 ] || done_msg="(dry run: nothing was changed)"
cat <<EOF

$done_msg Next steps (docs/install.md):
  1. Slack tokens: edit /etc/wscheck/env (SLACK_BOT_TOKEN=xoxb-…, SLACK_APP_TOKEN=xapp-…); see docs/slack-setup.md
  2. Targets: edit /etc/wscheck/wscheck.toml, then check it: wscheck config
  3. Target access: on each server, add this key to the SSH user's ~/.ssh/authorized_keys (docs/target-access.md):
       $pub
  4. Trust each server's host key (compare the SHA256 fingerprint with the server's): wscheck trust TARGET
  5. Try it from here: wscheck check
  6. Start: systemctl enable --now wscheck   (or re-run: deploy/install.sh --start)
     Logs: journalctl -u wscheck -f        In Slack: invite @wscheck to the alert channel, type /wscheck
EOF
