#!/usr/bin/env bash
# setup-target.sh: least-privilege access for the wscheck bot on one Nginx -> PM2 -> Next.js server.
#
# Run as root on the target. It creates the bot's login user (default `wscheck`), installs the bot's public
# key with SSH restrictions, makes the PM2 logs and the app's build files readable by that user (POSIX ACLs,
# only where they are not already), and writes /etc/sudoers.d/<user>: the exact commands the bot runs with
# sudo, each with its full argument list, nothing else. It prints the matching `[[targets]]` table on stdout.
# Idempotent: run it again with new facts (another port, a new pm2 path, a new key) and it rewrites the same
# files. docs/target-access.md explains every line it writes and what a stolen bot key can and cannot do.
#
#   setup-target.sh --pubkey wscheck.pub --pm2-user deploy --pm2-bin /usr/local/bin/pm2 \
#       --pm2-home /home/deploy/.pm2 --nginx-conf /etc/nginx/nginx.conf \
#       --app kathario-saas --app-dir /home/deploy/kathario-saas --app-port 3003 > wscheck-target.toml
#   setup-target.sh --print-sudoers --pm2-user deploy ...   # only print the sudoers snippet, change nothing
#   setup-target.sh --uninstall [--user wscheck]            # undo everything this script did
#
# The bot on the target itself: deploy/install.sh's service user is already called `wscheck` (and its unit
# forbids sudo), so give the login another name (--user wscheck-target) and use host = "127.0.0.1" over SSH.
#
# Exit codes: 0 done; 1 refused (bad input, unsafe target, invalid sudoers); 2 usage; 3 installed but the
# final verification (the allowed commands run as the login user) failed.
set -euo pipefail

PROG=${0##*/}
#: sudo looks bare command names up in this path; the snippet pins it for the login user, so the absolute
#: paths written below are exactly what `sudo -n env|ss|nginx|npm` resolve to.
SECURE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
#: GECOS of the users this script creates: --uninstall deletes no user without it.
MARKER="wscheck bot (deploy/target/setup-target.sh)"
SUDOERS_DIR=/etc/sudoers.d
#: First line of every sudoers file this script writes: it overwrites or removes no other.
SUDOERS_HEADER_TAG="written by wscheck's deploy/target/setup-target.sh"
#: Which ACL entries this script added, per user, so that --uninstall takes back exactly those.
STATE_DIR=/var/lib/wscheck-target

# The same alphabets as checks/config.py: whatever the bot accepts in its config, and nothing else, so every
# word below is safe in sudoers (no glob characters, no quotes, no spaces) and in TOML.
RE_USER='^[a-z_][a-z0-9_-]{0,31}$'
RE_APP='^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$'
RE_ABS='^/[A-Za-z0-9_./+@-]*$'
RE_BIN='^(/[A-Za-z0-9_./+@-]+|[A-Za-z0-9_.+-]+)$'
RE_WORD='^[A-Za-z0-9_./=:+@-]+$'
RE_NAME='^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'
RE_HOST='^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^[0-9A-Fa-f:.]+$'
RE_FROM='^[0-9A-Za-z.:/*?,!-]+$'
RE_TILDE_PATH='^~?/[A-Za-z0-9_./+@-]*$'
RE_URL='^https?://[][A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?$'

LOGIN_USER=wscheck
HOME_DIR=""
PUBKEY=""
FROM=""
PM2_USER=""
PM2_BIN=pm2
PM2_HOME_DIR=""
NGINX_BIN=nginx
NGINX_CONF=""
NGINX_RELOAD=""
NPM_BIN=npm
APP=""
APP_DIR=""
APP_PORT=""
LOG_DIR=""
#: wt-tls: certificate files nginx names (ssl_certificate) that the bot may read with `sudo cat --` (repeatable).
TLS_CERTS=()
#: wt-modes: --kernel-log allows `sudo -n dmesg` (no arguments) and prints kernel_log_sudo = true: kernel OOM kills.
KERNEL_LOG=0
DMESG_ABS=""
NGINX_LOG_DIR=/var/log/nginx
T_NAME=""
T_HOST=""
T_SSH_PORT=22
# Paths on the bot's machine, written into the TOML as they are (deploy/install.sh's layout by default).
T_IDENTITY=/etc/wscheck/ssh/id_ed25519
T_KNOWN_HOSTS=/etc/wscheck/ssh/known_hosts
T_PUBLIC_URL=""
SUDOERS_IN=""
ACTION=install
VERIFY=1

usage() {
    cat <<EOF
usage: $PROG --pubkey FILE --pm2-user OWNER --app APP --app-dir DIR --app-port PORT [options]
       $PROG --print-sudoers --pm2-user OWNER --app APP --app-dir DIR --app-port PORT [options]
       $PROG --uninstall [--user NAME]

Facts about the target (what the bot's [[targets]] entry says; see checks/config.py):
  --user NAME          login user for the bot (default wscheck), created as a system user
  --home DIR           its home (default /var/lib/NAME)
  --pubkey FILE        the bot's SSH public key (one key)
  --from PATTERNS      restrict the key to these source addresses (sshd from="..." syntax), e.g. 203.0.113.7
  --pm2-user OWNER     the user PM2 and the app run as (sudo -u OWNER)
  --pm2-bin PATH       pm2 executable (default: pm2 looked up in sudo's secure_path)
  --pm2-home DIR       PM2_HOME (omit when PM2 uses OWNER's ~/.pm2)
  --nginx-bin PATH     nginx executable (default: nginx looked up in sudo's secure_path)
  --nginx-conf FILE    the nginx.conf the bot passes with -c (omit when the bot passes none)
  --nginx-reload "CMD" the target's nginx_reload argv, e.g. "systemctl reload nginx" (default: nginx -s reload)
  --npm-bin PATH       npm executable for the rebuild action (default: npm in sudo's secure_path)
  --app APP            PM2 app name;  --app-dir DIR  the app's directory;  --app-port PORT  its port
  --log-dir DIR        where PM2 writes the app's logs (default PM2_HOME/logs)
  --tls-cert FILE      an ssl_certificate file nginx names (repeatable), e.g. /etc/letsencrypt/live/DOMAIN/fullchain.pem:
                       the bot reads it (sudo cat -- FILE) to tell "renewed, never reloaded"
  --kernel-log         let the bot read the kernel log (OOM kills) as \`sudo -n dmesg\` (exactly that, no arguments),
                       for hosts with kernel.dmesg_restrict=1 and no journal access; prints kernel_log_sudo = true
  --nginx-log-dir DIR  where nginx writes its error_log (default /var/log/nginx; read for the nginx.errors check)
For the printed [[targets]] table (the bot's side):
  --name NAME  --host HOST  --ssh-port PORT  --identity-file PATH  --known-hosts PATH  --public-url URL
Modes:
  --print-sudoers      print the sudoers snippet for these facts and exit; changes nothing
  --sudoers-file FILE  install FILE (a reviewed snippet) instead of the generated one; still validated
  --no-verify          skip running the allowed read-only commands as the login user at the end
  --uninstall          remove the sudoers file, the ACL entries, and the user with its home (only a user
                       this script created)
EOF
}

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
info() { printf '%s: %s\n' "$PROG" "$*" >&2; }

need_value() { [[ $# -ge 2 && -n $2 ]] || { usage >&2; printf '%s: %s needs a value\n' "$PROG" "$1" >&2; exit 2; }; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --user) need_value "$@"; LOGIN_USER=$2; shift 2 ;;
        --home) need_value "$@"; HOME_DIR=$2; shift 2 ;;
        --pubkey) need_value "$@"; PUBKEY=$2; shift 2 ;;
        --from) need_value "$@"; FROM=$2; shift 2 ;;
        --pm2-user) need_value "$@"; PM2_USER=$2; shift 2 ;;
        --pm2-bin) need_value "$@"; PM2_BIN=$2; shift 2 ;;
        --pm2-home) need_value "$@"; PM2_HOME_DIR=$2; shift 2 ;;
        --nginx-bin) need_value "$@"; NGINX_BIN=$2; shift 2 ;;
        --nginx-conf) need_value "$@"; NGINX_CONF=$2; shift 2 ;;
        --nginx-reload) need_value "$@"; NGINX_RELOAD=$2; shift 2 ;;
        --npm-bin) need_value "$@"; NPM_BIN=$2; shift 2 ;;
        --app) need_value "$@"; APP=$2; shift 2 ;;
        --app-dir) need_value "$@"; APP_DIR=$2; shift 2 ;;
        --app-port) need_value "$@"; APP_PORT=$2; shift 2 ;;
        --log-dir) need_value "$@"; LOG_DIR=$2; shift 2 ;;
        --tls-cert) need_value "$@"; TLS_CERTS+=("$2"); shift 2 ;;
        --nginx-log-dir) need_value "$@"; NGINX_LOG_DIR=$2; shift 2 ;;
        --name) need_value "$@"; T_NAME=$2; shift 2 ;;
        --host) need_value "$@"; T_HOST=$2; shift 2 ;;
        --ssh-port) need_value "$@"; T_SSH_PORT=$2; shift 2 ;;
        --identity-file) need_value "$@"; T_IDENTITY=$2; shift 2 ;;
        --known-hosts) need_value "$@"; T_KNOWN_HOSTS=$2; shift 2 ;;
        --public-url) need_value "$@"; T_PUBLIC_URL=$2; shift 2 ;;
        --sudoers-file) need_value "$@"; SUDOERS_IN=$2; shift 2 ;;
        --print-sudoers) ACTION=print; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --no-verify) VERIFY=0; shift ;;
        --kernel-log) KERNEL_LOG=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; printf '%s: unknown argument %q\n' "$PROG" "$1" >&2; exit 2 ;;
    esac
done

[[ $(id -u) -eq 0 ]] || die "run me as root (I create a user and write /etc/sudoers.d)"
export PATH="$SECURE_PATH"
export LC_ALL=C

[[ $LOGIN_USER =~ $RE_USER ]] || die "--user $LOGIN_USER is not a valid user name ($RE_USER)"
[[ $LOGIN_USER != root ]] || die "--user root defeats the purpose"
HOME_DIR=${HOME_DIR:-/var/lib/$LOGIN_USER}
[[ $HOME_DIR =~ $RE_ABS && $HOME_DIR != / ]] || die "--home $HOME_DIR must be an absolute path ($RE_ABS)"
SUDOERS_FILE=$SUDOERS_DIR/$LOGIN_USER
ACL_RECORD=$STATE_DIR/$LOGIN_USER.acl

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wscheck-target.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------

apt_install() {  # PACKAGE...: install with apt-get (Debian/Ubuntu), or say what is missing
    if command -v apt-get >/dev/null; then
        info "installing $* (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; } \
            || die "apt-get install $* failed"
    else
        die "please install: $* (no apt-get here)"
    fi
}

resolve_bin() {  # NAME: the absolute path sudo runs for NAME (it searches secure_path, in order)
    local name=$1 dir
    if [[ $name == /* ]]; then
        [[ -f $name && -x $name ]] || die "$name is not an executable file"
        printf '%s\n' "$name"
        return
    fi
    local -a dirs
    IFS=: read -ra dirs <<<"$SECURE_PATH"
    for dir in "${dirs[@]}"; do
        if [[ -f $dir/$name && -x $dir/$name ]]; then
            printf '%s\n' "$dir/$name"
            return
        fi
    done
    die "$name is not in sudo's secure_path ($SECURE_PATH): pass its absolute path"
}

sudoers_word() {  # WORD: escaped for a sudoers command argument (`\ , : =` are special there)
    local w=$1
    w=${w//\\/\\\\}
    w=${w//,/\\,}
    w=${w//:/\\:}
    w=${w//=/\\=}
    printf '%s' "$w"
}

sudoers_cmd() {  # WORD...: one sudoers command with its exact argument list (`""`: no arguments at all)
    local out word
    out=$(sudoers_word "$1")
    shift
    if [[ $# -eq 0 ]]; then
        out+=' ""'
    fi
    for word in "$@"; do
        out+=" $(sudoers_word "$word")"
    done
    printf '%s' "$out"
}

toml_str() { printf '"%s"' "$1"; }  # inputs are validated: no quotes, backslashes or control characters

user_gecos() { getent passwd "$1" | cut -d: -f5; }

# --------------------------------------------------------------------------------------------------------
# --uninstall
# --------------------------------------------------------------------------------------------------------

acl_tidy() {  # PATH: drop an ACL that is back to only the base entries (keeps anybody else's entries)
    local path=$1
    if ! getfacl -c -p -- "$path" 2>/dev/null | grep -Eq '^(user|group):[^:]+:'; then
        setfacl -b -- "$path" 2>/dev/null || true
    fi
    if [[ -d $path ]] && ! getfacl -c -p -d -- "$path" 2>/dev/null | grep -Eq '^default:(user|group):[^:]+:'; then
        setfacl -k -- "$path" 2>/dev/null || true
    fi
}

revoke_acls() {  # take back every ACL entry recorded in ACL_RECORD (and those inherited by new log files)
    [[ -f $ACL_RECORD ]] || return 0
    command -v setfacl >/dev/null || { warn "setfacl missing: cannot remove the ACL entries in $ACL_RECORD"; return 0; }
    local kind path file
    while read -r kind path; do
        [[ -e $path ]] || continue
        setfacl -x "u:$LOGIN_USER" -- "$path" 2>/dev/null || true
        if [[ $kind == d ]]; then
            setfacl -d -x "u:$LOGIN_USER" -- "$path" 2>/dev/null || true
            for file in "$path"/*; do
                [[ -f $file && ! -L $file ]] || continue
                setfacl -x "u:$LOGIN_USER" -- "$file" 2>/dev/null || true
                acl_tidy "$file"
            done
        fi
        acl_tidy "$path"
        info "removed $LOGIN_USER's ACL entry on $path"
    done <"$ACL_RECORD"
}

ours_sudoers() { [[ -f $1 ]] && head -n 1 -- "$1" | grep -qF -- "$SUDOERS_HEADER_TAG"; }

uninstall() {
    if [[ -e $SUDOERS_FILE ]]; then
        ours_sudoers "$SUDOERS_FILE" || die "$SUDOERS_FILE was not written by this script: not touching it"
        rm -f -- "$SUDOERS_FILE"
        info "removed $SUDOERS_FILE"
        visudo -c -q >/dev/null || warn "visudo -c reports a problem in the remaining sudoers files"
    fi
    revoke_acls
    rm -f -- "$ACL_RECORD"
    rmdir -- "$STATE_DIR" 2>/dev/null || true
    if ! getent passwd "$LOGIN_USER" >/dev/null; then
        info "no user $LOGIN_USER"
        return 0
    fi
    if [[ $(user_gecos "$LOGIN_USER") != "$MARKER" ]]; then
        info "user $LOGIN_USER was not created by this script: kept"
        return 0
    fi
    local home
    home=$(getent passwd "$LOGIN_USER" | cut -d: -f6)
    if pgrep -u "$LOGIN_USER" >/dev/null 2>&1; then
        die "$LOGIN_USER still has processes (an open SSH session of the bot?): stop the bot, then run me again"
    fi
    userdel "$LOGIN_USER" || die "userdel $LOGIN_USER failed"
    if getent group "$LOGIN_USER" >/dev/null; then groupdel "$LOGIN_USER" 2>/dev/null || true; fi
    if [[ -n $home && $home != / && -d $home ]]; then rm -rf -- "$home"; fi
    info "removed user $LOGIN_USER and its home $home"
}

if [[ $ACTION == uninstall ]]; then
    uninstall
    exit 0
fi

# --------------------------------------------------------------------------------------------------------
# the facts
# --------------------------------------------------------------------------------------------------------

[[ -n $PM2_USER ]] || { usage >&2; die "--pm2-user is required (the user PM2 runs as)"; }
[[ $PM2_USER =~ $RE_USER ]] || die "--pm2-user $PM2_USER is not a valid user name"
[[ $PM2_USER != "$LOGIN_USER" ]] || die "--pm2-user must not be the bot's login user: the point is to separate them"
getent passwd "$PM2_USER" >/dev/null || die "--pm2-user $PM2_USER does not exist"
[[ $PM2_USER != root ]] || warn "PM2 runs as root: the PM2 and npm commands below then run as root too"
[[ -n $APP && $APP =~ $RE_APP ]] || die "--app must be a PM2 app name ($RE_APP)"
[[ -n $APP_DIR && $APP_DIR =~ $RE_ABS ]] || die "--app-dir must be an absolute path ($RE_ABS)"
[[ -d $APP_DIR ]] || die "--app-dir $APP_DIR is not a directory"
valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && (($1 >= 1 && $1 <= 65535)); }
valid_port "$APP_PORT" || die "--app-port must be 1-65535"
valid_port "$T_SSH_PORT" || die "--ssh-port must be 1-65535"
[[ $PM2_BIN =~ $RE_BIN ]] || die "--pm2-bin $PM2_BIN: not a bare name or absolute path"
[[ $NGINX_BIN =~ $RE_BIN ]] || die "--nginx-bin $NGINX_BIN: not a bare name or absolute path"
[[ $NPM_BIN =~ $RE_BIN ]] || die "--npm-bin $NPM_BIN: not a bare name or absolute path"
if [[ -n $PM2_HOME_DIR ]]; then
    [[ $PM2_HOME_DIR =~ $RE_ABS ]] || die "--pm2-home must be an absolute path ($RE_ABS)"
    [[ -d $PM2_HOME_DIR ]] || die "--pm2-home $PM2_HOME_DIR is not a directory (is PM2 running there?)"
fi
if [[ -n $NGINX_CONF ]]; then
    [[ $NGINX_CONF =~ $RE_ABS ]] || die "--nginx-conf must be an absolute path ($RE_ABS)"
    [[ -f $NGINX_CONF ]] || die "--nginx-conf $NGINX_CONF is not a file"
fi
if [[ -z $LOG_DIR ]]; then
    if [[ -n $PM2_HOME_DIR ]]; then
        LOG_DIR=$PM2_HOME_DIR/logs
    else
        LOG_DIR=$(getent passwd "$PM2_USER" | cut -d: -f6)/.pm2/logs
    fi
fi
[[ $LOG_DIR =~ $RE_ABS ]] || die "--log-dir must be an absolute path ($RE_ABS)"
for cert in "${TLS_CERTS[@]}"; do
    [[ $cert =~ $RE_ABS && $cert != */ ]] || die "--tls-cert $cert must be an absolute file path ($RE_ABS)"
done
[[ $NGINX_LOG_DIR =~ $RE_ABS ]] || die "--nginx-log-dir must be an absolute path ($RE_ABS)"
[[ -z $FROM || $FROM =~ $RE_FROM ]] || die "--from $FROM: only addresses, CIDRs, * ? ! and commas"
[[ $T_IDENTITY =~ $RE_TILDE_PATH ]] || die "--identity-file: a path of plain characters"
[[ $T_KNOWN_HOSTS =~ $RE_TILDE_PATH ]] || die "--known-hosts: a path of plain characters"
[[ -z $T_PUBLIC_URL || $T_PUBLIC_URL =~ $RE_URL ]] || die "--public-url must be an http(s) URL"
T_HOST=${T_HOST:-$(hostname -f 2>/dev/null || hostname)}
[[ $T_HOST =~ $RE_HOST ]] || die "--host $T_HOST is not a host name or IP address"
if [[ -z $T_NAME ]]; then
    T_NAME=$(hostname -s 2>/dev/null || echo target)
    T_NAME=${T_NAME//[^A-Za-z0-9._-]/-}
fi
[[ $T_NAME =~ $RE_NAME ]] || die "--name $T_NAME is not a valid target name ($RE_NAME)"

if ! command -v visudo >/dev/null || ! command -v sudo >/dev/null; then apt_install sudo; fi

OWNER_GROUP=$(id -gn "$PM2_USER")
ENV_ABS=$(resolve_bin env)
SS_ABS=$(resolve_bin ss)
NGINX_ABS=$(resolve_bin "$NGINX_BIN")
NPM_ABS=$(resolve_bin "$NPM_BIN")
CAT_ABS=$(resolve_bin cat)
[[ $KERNEL_LOG -eq 0 ]] || DMESG_ABS=$(resolve_bin dmesg)
PM2_ABS=$(resolve_bin "$PM2_BIN")   # what the bot's config names (env then runs exactly this path)

read -ra RELOAD_WORDS <<<"$NGINX_RELOAD"
if [[ ${#RELOAD_WORDS[@]} -gt 0 ]]; then
    for w in "${RELOAD_WORDS[@]}"; do [[ $w =~ $RE_WORD ]] || die "--nginx-reload word $w: outside [A-Za-z0-9_./=:+@-]"; done
    [[ ${RELOAD_WORDS[0]} =~ $RE_BIN ]] || die "--nginx-reload must start with a binary name or absolute path"
    RELOAD_ABS=$(resolve_bin "${RELOAD_WORDS[0]}")
fi

# The pm2 and npm scripts start with `#!/usr/bin/env node`: under sudo, PATH is secure_path.
for script in "$PM2_ABS" "$NPM_ABS"; do
    if head -c 64 "$script" 2>/dev/null | head -n 1 | grep -q 'env node'; then
        NODE_ABS=$(resolve_bin node 2>/dev/null) \
            || die "$script needs node, which is not in sudo's secure_path ($SECURE_PATH): link it into /usr/local/bin"
    fi
done

# --------------------------------------------------------------------------------------------------------
# the sudoers snippet: every command the bot runs with sudo (checks/commands.py, bot/remediation/actions.py), pinned
# --------------------------------------------------------------------------------------------------------

conf_args=()
[[ -z $NGINX_CONF ]] || conf_args=(-c "$NGINX_CONF")
pm2_prefix=()       # what checks.commands.pm2() puts before pm2_bin after `sudo -n -u OWNER`
pm2_port_prefix=()  # the same with the fix-port action's PORT=
if [[ -n $PM2_HOME_DIR ]]; then
    pm2_prefix=("$ENV_ABS" "PM2_HOME=$PM2_HOME_DIR")
    pm2_port_prefix=("$ENV_ABS" "PM2_HOME=$PM2_HOME_DIR" "PORT=$APP_PORT")
else
    pm2_port_prefix=("$ENV_ABS" "PORT=$APP_PORT")
fi
if [[ ${#RELOAD_WORDS[@]} -gt 0 ]]; then
    reload_cmd=("$RELOAD_ABS" "${RELOAD_WORDS[@]:1}")
else
    reload_cmd=("$NGINX_ABS" -s reload "${conf_args[@]}")
fi

ALIAS=$(printf '%s' "$LOGIN_USER" | tr 'a-z-' 'A-Z_')
generate_sudoers() {
    local c="    " tls_lines="" cert
    [[ -z ${DMESG_ABS:-} ]] || tls_lines+="$c$(sudoers_cmd "$DMESG_ABS"), \\"$'\n'  # wt-modes: --kernel-log
    for cert in "${TLS_CERTS[@]}"; do  # wt-tls: exactly these files, no glob
        tls_lines+="$c$(sudoers_cmd "$CAT_ABS" -- "$cert"), \\"$'\n'
    done
    cat <<EOF
# $SUDOERS_FILE: $SUDOERS_HEADER_TAG; run the script again to change it.
# The wscheck bot logs in as $LOGIN_USER and may run exactly these commands with sudo, each with exactly
# these arguments (no wildcard anywhere), nothing else. docs/target-access.md explains every line.
# Target: app $APP in $APP_DIR on port $APP_PORT, PM2 as $PM2_USER, nginx ${NGINX_CONF:-(default conf)}.
Defaults:$LOGIN_USER env_reset, !env_keep, secure_path="$SECURE_PATH"
Cmnd_Alias ${ALIAS}_AS_ROOT = \\
$c$(sudoers_cmd "$NGINX_ABS" -t "${conf_args[@]}"), \\
$c$(sudoers_cmd "$NGINX_ABS" -T "${conf_args[@]}"), \\
$c$(sudoers_cmd "${reload_cmd[@]}"), \\
${tls_lines}$c$(sudoers_cmd "$SS_ABS" -ltnpH)
Cmnd_Alias ${ALIAS}_AS_OWNER = \\
$c$(sudoers_cmd "${pm2_prefix[@]}" "$PM2_ABS" jlist), \\
$c$(sudoers_cmd "${pm2_prefix[@]}" "$PM2_ABS" restart "$APP"), \\
$c$(sudoers_cmd "${pm2_port_prefix[@]}" "$PM2_ABS" restart "$APP" --update-env), \\
$c$(sudoers_cmd "${pm2_prefix[@]}" "$PM2_ABS" save), \\
$c$(sudoers_cmd "$NPM_ABS" --prefix "$APP_DIR" run build)
$LOGIN_USER ALL=(root) NOPASSWD: ${ALIAS}_AS_ROOT
$LOGIN_USER ALL=($PM2_USER) NOPASSWD: ${ALIAS}_AS_OWNER
EOF
}

SNIPPET=$WORK/sudoers
if [[ -n $SUDOERS_IN ]]; then
    [[ -f $SUDOERS_IN ]] || die "--sudoers-file $SUDOERS_IN is not a file"
    { printf '# %s: %s (from %s, reviewed by hand)\n' "$SUDOERS_FILE" "$SUDOERS_HEADER_TAG" "$SUDOERS_IN"
      grep -vF -- "$SUDOERS_HEADER_TAG" "$SUDOERS_IN" || true; } >"$SNIPPET"
else
    generate_sudoers >"$SNIPPET"
fi
chmod 0440 "$SNIPPET"
# -s: strict (an undefined alias is an error too). Nothing has been changed on this machine yet.
if ! visudo -c -s -q -f "$SNIPPET" >"$WORK/visudo.out" 2>&1; then
    cat "$WORK/visudo.out" >&2
    die "visudo rejected the sudoers snippet; nothing was changed (no user, no key, nothing in $SUDOERS_DIR)"
fi

if [[ $ACTION == print ]]; then
    cat "$SNIPPET"
    exit 0
fi
if [[ -e $SUDOERS_FILE ]] && ! ours_sudoers "$SUDOERS_FILE"; then
    die "$SUDOERS_FILE exists and was not written by this script: not replacing it"
fi

# --------------------------------------------------------------------------------------------------------
# the login user and its key
# --------------------------------------------------------------------------------------------------------

[[ -n $PUBKEY ]] || die "--pubkey FILE is required (the bot's SSH public key)"
[[ -f $PUBKEY ]] || die "--pubkey $PUBKEY is not a file"
mapfile -t key_lines < <(grep -Ev '^[[:space:]]*(#|$)' -- "$PUBKEY")
[[ ${#key_lines[@]} -eq 1 ]] || die "--pubkey $PUBKEY must hold exactly one public key"
read -r key_type key_b64 key_comment <<<"${key_lines[0]}"
[[ $key_type =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com)$ ]] \
    || die "--pubkey: '$key_type' is not a public key type (give the .pub file, without options)"
[[ $key_b64 =~ ^[A-Za-z0-9+/]+=*$ ]] || die "--pubkey: malformed key data"
printf '%s %s\n' "$key_type" "$key_b64" >"$WORK/key.pub"
ssh-keygen -l -f "$WORK/key.pub" >/dev/null 2>&1 || die "--pubkey: ssh-keygen does not accept the key"
key_comment=${key_comment//[^A-Za-z0-9@._-]/}

sshd_version=$( { sshd -V 2>&1 || true; } | grep -Eo 'OpenSSH_[0-9]+\.[0-9]+' | head -n 1)
[[ -n $sshd_version ]] || sshd_version=$( { ssh -V 2>&1 || true; } | grep -Eo 'OpenSSH_[0-9]+\.[0-9]+' | head -n 1)
[[ $sshd_version =~ OpenSSH_([0-9]+)\.([0-9]+) ]] || die "cannot tell the OpenSSH version (sshd -V)"
ssh_ver=$((BASH_REMATCH[1] * 100 + BASH_REMATCH[2]))
((ssh_ver >= 702)) || die "$sshd_version does not know the authorized_keys option 'restrict' (OpenSSH >= 7.2 needed)"
# restrict: no pty, no agent/X11/port forwarding, no ~/.ssh/rc. port-forwarding: back on, but permitopen
# lets it reach the app port only (the bot's direct-tcpip probes), and permitlisten names a privileged port
# sshd never binds for a non-root user, so no remote (-R) listener at all ("none" is not accepted there).
key_opts="restrict,port-forwarding,permitopen=\"127.0.0.1:$APP_PORT\""
if ((ssh_ver >= 708)); then
    key_opts+=",permitlisten=\"127.0.0.1:1\""
else
    warn "$sshd_version has no permitlisten: remote forwarding is limited only by sshd's AllowTcpForwarding"
fi
[[ -z $FROM ]] || key_opts="from=\"$FROM\",$key_opts"

if getent passwd "$LOGIN_USER" >/dev/null; then
    [[ $(user_gecos "$LOGIN_USER") == "$MARKER" ]] \
        || die "user $LOGIN_USER exists and was not created by this script; pick another --user"
else
    useradd --system --user-group --shell /bin/sh --home-dir "$HOME_DIR" --no-create-home \
        --comment "$MARKER" "$LOGIN_USER"
    info "created system user $LOGIN_USER"
fi
[[ $(getent passwd "$LOGIN_USER" | cut -d: -f6) == "$HOME_DIR" ]] || usermod --home "$HOME_DIR" "$LOGIN_USER"
[[ $(getent passwd "$LOGIN_USER" | cut -d: -f7) == /bin/sh ]] || usermod --shell /bin/sh "$LOGIN_USER"
# `*`, not useradd's `!`: no password can ever match, and sshd (UsePAM no) does not see a locked account.
[[ $(getent shadow "$LOGIN_USER" | cut -d: -f2) == '*' ]] || usermod -p '*' "$LOGIN_USER"
LOGIN_GROUP=$(id -gn "$LOGIN_USER")
extra_groups=$(id -Gn "$LOGIN_USER" | tr ' ' '\n' | grep -vx -- "$LOGIN_GROUP" || true)
[[ -z $extra_groups ]] || die "$LOGIN_USER is in the groups $(echo "$extra_groups" | xargs): it must be in none \
(in $OWNER_GROUP it could drive PM2 through its group-writable rpc.sock); gpasswd -d $LOGIN_USER GROUP"

# The home and ~/.ssh belong to root: the bot can read its authorized_keys but never edit it (and so never
# drop the restrictions on its own key), and it has nowhere to write but /tmp.
install -d -o root -g root -m 0755 "$HOME_DIR"
install -d -o root -g "$LOGIN_GROUP" -m 0750 "$HOME_DIR/.ssh"
printf '%s %s %s %s\n' "$key_opts" "$key_type" "$key_b64" "${key_comment:-wscheck-bot}" >"$WORK/authorized_keys"
install -o root -g "$LOGIN_GROUP" -m 0640 "$WORK/authorized_keys" "$HOME_DIR/.ssh/authorized_keys"
info "installed the bot's key in $HOME_DIR/.ssh/authorized_keys ($key_opts)"

# sshd itself must let the user in with its key (best effort: sshd -T needs the host keys).
if sshd_t=$(sshd -T -C "user=$LOGIN_USER,host=wscheck-bot,addr=127.0.0.1" 2>/dev/null); then
    allow=$(sed -n 's/^allowusers //Ip' <<<"$sshd_t" | tr ' ' '\n')
    if [[ -n $allow ]] && ! grep -qxF -- "$LOGIN_USER" <<<"$allow"; then
        warn "the system sshd has AllowUsers without $LOGIN_USER: add it, or the bot cannot log in"
    fi
    grep -qi '^allowtcpforwarding \(yes\|all\|local\)' <<<"$sshd_t" \
        || warn "the system sshd forbids local forwarding: the bot's http.local/ws.local probes will fail"
fi

# --------------------------------------------------------------------------------------------------------
# nothing the login user can write may be run by the pinned commands (else a sudo rule is a shell)
# --------------------------------------------------------------------------------------------------------

as_login() { runuser -u "$LOGIN_USER" -- "$@"; }

writable_among() {  # PATH...: those the login user may write (or, for a dir, add/replace entries in)
    # shellcheck disable=SC2016  # expanded by the login user's sh, not here
    as_login sh -c 'for p do if [ -w "$p" ]; then printf "%s\n" "$p"; fi; done' sh "$@" 2>/dev/null || true
}

audit() {
    local -a paths=() chain=()
    local p q
    paths+=("$ENV_ABS" "$SS_ABS" "$NGINX_ABS" "$NPM_ABS" "$PM2_ABS" "$APP_DIR")
    [[ -z ${NODE_ABS:-} ]] || paths+=("$NODE_ABS")
    [[ -z ${RELOAD_ABS:-} ]] || paths+=("$RELOAD_ABS")
    [[ -z $PM2_HOME_DIR ]] || paths+=("$PM2_HOME_DIR")
    # every file of the nginx config (nginx -T names them): `nginx -t` as root loads what they say (load_module)
    if [[ -n $NGINX_CONF ]]; then paths+=("$NGINX_CONF"); fi
    while read -r p; do paths+=("$p"); done < <("$NGINX_ABS" -T "${conf_args[@]}" 2>/dev/null \
        | sed -n 's/^# configuration file \(.*\):$/\1/p' | sort -u)
    for p in "${paths[@]}"; do   # their real paths too (node_modules/.bin/pm2 is a symlink)
        q=$(readlink -f -- "$p" 2>/dev/null) && [[ $q != "$p" ]] && paths+=("$q")
    done
    [[ -L $APP_DIR/node_modules ]] && paths+=("$(readlink -f -- "$APP_DIR/node_modules")")
    # each path and every directory above it: a writable parent lets the user swap the entry, unless it is
    # sticky (/tmp) and the entry is not the user's
    for p in "${paths[@]}"; do
        q=$p
        while :; do
            chain+=("$q")
            [[ $q == / ]] && break
            q=$(dirname -- "$q")
        done
    done
    local -a hits=()
    mapfile -t hits < <(writable_among "${chain[@]}" | sort -u)
    local -a bad=()
    local login_uid h entry
    login_uid=$(id -u "$LOGIN_USER")
    for h in "${hits[@]}"; do
        if [[ -d $h && -k $h ]]; then
            for entry in "${chain[@]}"; do
                [[ $(dirname -- "$entry") == "$h" && $entry != "$h" && -e $entry ]] || continue
                [[ $(stat -c %u -- "$entry") != "$login_uid" ]] || bad+=("$entry (the user's own, in sticky $h)")
            done
            continue
        fi
        bad+=("$h")
    done
    # whole trees whose code PM2 / npm run as the owner: the app (sources, node_modules, .next), PM2_HOME
    local -a trees=("$APP_DIR")
    [[ -z $PM2_HOME_DIR ]] || trees+=("$PM2_HOME_DIR")
    [[ -L $APP_DIR/node_modules ]] && trees+=("$(readlink -f -- "$APP_DIR/node_modules")")
    while read -r p; do bad+=("$p"); done < <(as_login find "${trees[@]}" -xdev -writable -print 2>/dev/null | head -n 20)
    if [[ ${#bad[@]} -gt 0 ]]; then
        printf '  %s\n' "${bad[@]}" | sort -u >&2
        local earlier="nothing was written to $SUDOERS_DIR"
        [[ ! -e $SUDOERS_FILE ]] || earlier="the rules installed earlier are still in $SUDOERS_FILE (--uninstall removes them)"
        die "$LOGIN_USER can write the paths above, which the allowed commands run or read as root or $PM2_USER: fix their owner/mode first; $earlier"
    fi
}
audit

# --------------------------------------------------------------------------------------------------------
# read access for the bot's unprivileged commands (tail of the PM2 logs, stat of the build files)
# --------------------------------------------------------------------------------------------------------
# ACLs for this one user, not membership in the owner's group: PM2 makes its rpc.sock 0775, so anyone in
# the owner's group who can reach PM2_HOME can command the PM2 daemon (start any program as the owner).

record_acl() {  # KIND PATH
    install -d -o root -g root -m 0755 "$STATE_DIR"
    touch "$ACL_RECORD"
    chmod 0644 "$ACL_RECORD"
    grep -qxF -- "$1 $2" "$ACL_RECORD" || printf '%s %s\n' "$1" "$2" >>"$ACL_RECORD"
}

ensure_setfacl() { command -v setfacl >/dev/null || apt_install acl; }

grant_traverse() {  # DIR: the user may pass through DIR and every directory above it (search only, no listing)
    local d=$1 q
    local -a chain=()
    q=$d
    while [[ $q != / ]]; do chain=("$q" "${chain[@]}"); q=$(dirname -- "$q"); done
    for q in "${chain[@]}"; do
        [[ -d $q ]] || return 0
        if ! as_login test -x "$q"; then
            ensure_setfacl
            setfacl -m "u:$LOGIN_USER:x" -- "$q"
            record_acl x "$q"
            info "ACL: $LOGIN_USER may traverse $q (x only)"
        fi
    done
}

grant_log_dir() {  # DIR WHAT: the user may read the files in DIR, and the ones created there later
    local dir=$1 what=$2 f need=0
    if [[ ! -d $dir ]]; then
        warn "no log directory $dir yet: run me again once $what has written its logs"
        return 0
    fi
    grant_traverse "$dir"
    for f in "$dir"/*; do
        [[ -f $f && ! -L $f ]] || continue
        as_login test -r "$f" || need=1
    done
    if ((need)); then
        ensure_setfacl
        # d: new files (a restarted app, log rotation) inherit read access for this one user
        setfacl -d -m "u:$LOGIN_USER:r" -- "$dir"
        for f in "$dir"/*; do
            [[ -f $f && ! -L $f ]] || continue
            as_login test -r "$f" || setfacl -m "u:$LOGIN_USER:r" -- "$f"
        done
        record_acl d "$dir"
        info "ACL: $LOGIN_USER may read the files in $dir (r only, inherited by new files)"
    fi
}

grant_access() {
    grant_traverse "$APP_DIR"
    [[ ! -d $APP_DIR/.next ]] || grant_traverse "$APP_DIR/.next"
    grant_log_dir "$LOG_DIR" PM2
    # the nginx error log (wt-nginxrt): read without sudo, like the PM2 logs
    grant_log_dir "$NGINX_LOG_DIR" nginx
}
grant_access

# --------------------------------------------------------------------------------------------------------
# install the sudoers snippet: validated, atomic, rolled back if the whole sudoers stops parsing
# --------------------------------------------------------------------------------------------------------

install_sudoers() {
    local staged=$SUDOERS_DIR/.$LOGIN_USER.new   # sudo ignores names with a dot: never live while staged
    local backup=$WORK/sudoers.previous
    [[ -f $SUDOERS_FILE ]] && cp -p -- "$SUDOERS_FILE" "$backup"
    install -o root -g root -m 0440 "$SNIPPET" "$staged"
    if ! visudo -c -s -q -f "$staged" >/dev/null 2>&1; then
        rm -f -- "$staged"
        die "visudo rejected the staged snippet; $SUDOERS_FILE is unchanged"
    fi
    mv -f -- "$staged" "$SUDOERS_FILE"
    if ! visudo -c -q >"$WORK/visudo.all" 2>&1; then
        if [[ -f $backup ]]; then cp -p -- "$backup" "$SUDOERS_FILE"; else rm -f -- "$SUDOERS_FILE"; fi
        cat "$WORK/visudo.all" >&2
        die "the sudoers configuration as a whole did not validate with the snippet; rolled back"
    fi
    info "installed $SUDOERS_FILE"
}
install_sudoers

# --------------------------------------------------------------------------------------------------------
# verify as the login user: the read-only commands run, the others are allowed (sudo -l, not run)
# --------------------------------------------------------------------------------------------------------

verify() {
    # What the bot sends (checks/commands.py with the [[targets]] table printed below): bare `env`, `ss` and
    # `npm`, which sudo resolves through secure_path to the paths pinned above.
    local -a pm2_words=() port_words=(env "PORT=$APP_PORT") reload_words=()
    if [[ -n $PM2_HOME_DIR ]]; then
        pm2_words=(env "PM2_HOME=$PM2_HOME_DIR")
        port_words=(env "PM2_HOME=$PM2_HOME_DIR" "PORT=$APP_PORT")
    fi
    if [[ ${#RELOAD_WORDS[@]} -gt 0 ]]; then
        reload_words=("${RELOAD_WORDS[@]}")
    else
        reload_words=("$NGINX_ABS" -s reload "${conf_args[@]}")
    fi
    local -a checks=(
        "$(printf '%q ' sudo -n "$NGINX_ABS" -t "${conf_args[@]}")"
        "$(printf '%q ' sudo -n "$NGINX_ABS" -T "${conf_args[@]}")"
        "$(printf '%q ' sudo -n ss -ltnpH)"
        "$(printf '%q ' sudo -n -u "$PM2_USER" "${pm2_words[@]}" "$PM2_ABS" jlist)"
        # wt-modes: --kernel-log (host.memory's exact argv; nothing when the flag is not given)
        ${DMESG_ABS:+"$(printf '%q ' sudo -n dmesg)"}
        # allowed, but not run here (sudo -l answers without running them)
        "$(printf '%q ' sudo -n -l "${reload_words[@]}")"
        "$(printf '%q ' sudo -n -l -u "$PM2_USER" "${pm2_words[@]}" "$PM2_ABS" restart "$APP")"
        "$(printf '%q ' sudo -n -l -u "$PM2_USER" "${port_words[@]}" "$PM2_ABS" restart "$APP" --update-env)"
        "$(printf '%q ' sudo -n -l -u "$PM2_USER" "${pm2_words[@]}" "$PM2_ABS" save)"
        "$(printf '%q ' sudo -n -l -u "$PM2_USER" npm --prefix "$APP_DIR" run build)"
    )
    local failed=0 out cmd f
    for cmd in "${checks[@]}"; do
        cmd=${cmd% }
        if out=$(cd / && as_login sh -c "$cmd" 2>&1 >/dev/null); then
            info "verified as $LOGIN_USER: $cmd"
        else
            warn "FAILED as $LOGIN_USER: $cmd"
            printf '%s\n' "$out" | tail -n 5 >&2
            failed=1
        fi
    done
    if [[ -d $LOG_DIR ]]; then
        for f in "$LOG_DIR"/*; do
            [[ -f $f && ! -L $f ]] || continue
            as_login tail -n 1 -- "$f" >/dev/null 2>&1 || { warn "FAILED as $LOGIN_USER: tail $f"; failed=1; }
        done
    fi
    as_login stat -c %n -- "$APP_DIR/package.json" >/dev/null 2>&1 \
        || { warn "FAILED as $LOGIN_USER: stat $APP_DIR/package.json"; failed=1; }
    if ((failed)); then
        printf '%s: installed, but the checks above failed as %s\n' "$PROG" "$LOGIN_USER" >&2
        exit 3
    fi
}
((VERIFY == 0)) || verify

# --------------------------------------------------------------------------------------------------------
# the bot's side
# --------------------------------------------------------------------------------------------------------

{
    echo "# wscheck target for $T_HOST: least-privilege login $LOGIN_USER (deploy/target/setup-target.sh)."
    echo "# identity_file and known_hosts are paths on the bot's machine; add the host key with 'wscheck trust'."
    echo "[[targets]]"
    echo "name = $(toml_str "$T_NAME")"
    echo "host = $(toml_str "$T_HOST")"
    echo "port = $T_SSH_PORT"
    echo "user = $(toml_str "$LOGIN_USER")"
    echo "identity_file = $(toml_str "$T_IDENTITY")"
    echo "known_hosts = $(toml_str "$T_KNOWN_HOSTS")"
    echo "pm2_app = $(toml_str "$APP")"
    echo "app_port = $APP_PORT"
    echo "app_dir = $(toml_str "$APP_DIR")"
    [[ -z $T_PUBLIC_URL ]] || echo "public_url = $(toml_str "$T_PUBLIC_URL")"
    echo "pm2_user = $(toml_str "$PM2_USER")"
    echo "pm2_bin = $(toml_str "$PM2_ABS")"
    [[ -z $PM2_HOME_DIR ]] || echo "pm2_home = $(toml_str "$PM2_HOME_DIR")"
    echo "nginx_bin = $(toml_str "$NGINX_ABS")"
    [[ -z $NGINX_CONF ]] || echo "nginx_conf = $(toml_str "$NGINX_CONF")"
    if [[ ${#RELOAD_WORDS[@]} -gt 0 ]]; then
        words=""
        for w in "${RELOAD_WORDS[@]}"; do words+="${words:+, }$(toml_str "$w")"; done
        echo "nginx_reload = [$words]"
    fi
    echo "sudo = true"
    [[ $KERNEL_LOG -eq 0 ]] || echo "kernel_log_sudo = true"
}
