"""Every sentence the checks and the diagnosis say to a human, in English and Korean.

Check code builds its summaries with `msg(key, **params)`: the English text is rendered from the catalog at
once (so the English output is what it always was, and `--json` keeps it), and the key and params travel
with the result (`CheckResult.summary_key/summary_params`, `Cause.summary_key/summary_params/fix_keys`) so a
renderer can say the same in another language later: `localize(report, "ko")`.

Params are plain JSON values (the incident machine persists causes as JSON). A param may itself be a
message (`msg(...)`, stored as `{"$msg": key, "params": {...}}`) or a list of messages joined with a
separator (`joined(...)`, stored as `{"$join": [...], "sep": ", "}`): sentence parts are translated with the
sentence. Text that is not ours — a redacted log line, nginx's own error message, an OS or parser error — is
passed as a plain string param and never translated. Command lines (`pm2 restart app`) are never translated:
their fix key is "".

Pure data and pure functions; `checks/` never imports `bot/` (the bot keeps its own catalog in bot/i18n.py).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.causes import CAUSE_SPECS
from checks.models import Cause, CheckResult, TargetReport
from checks.redact import redact
from checks.registry import CHECKS

LANGS: tuple[str, ...] = ("en", "ko")

# ---------------------------------------------------------------------------------------------------------------
# The catalog: key -> {"en": template, "ko": template} (str.format placeholders, the same set in both).
# Technical tokens stay as they are in Korean: nginx, PM2, BUILD_ID, ports, commands, check and cause ids, and
# status words in backticks.
# ---------------------------------------------------------------------------------------------------------------

MESSAGES: dict[str, dict[str, str]] = {
    # -- nginx.syntax ---------------------------------------------------------------------------------------------
    "nginx.syntax.missing_binary": {
        "en": "{bin} not found on the target (set nginx_bin)",
        "ko": "대상 서버에서 {bin}을(를) 찾을 수 없습니다 (nginx_bin을 설정하세요)",
    },
    "nginx.syntax.sudo": {
        "en": "sudo -n asks for a password: allow nginx -t/-T in sudoers (see deploy/target/)",
        "ko": "sudo -n이 비밀번호를 요구합니다: sudoers에서 nginx -t/-T를 허용하세요 (deploy/target/ 참고)",
    },
    "nginx.syntax.ok": {
        "en": "nginx -t: syntax ok",
        "ko": "nginx -t: 문법 정상",
    },
    "nginx.syntax.ok_warnings": {
        "en": "nginx -t: syntax ok ({count} warning(s))",
        "ko": "nginx -t: 문법 정상 (경고 {count}개)",
    },
    "nginx.syntax.permission": {
        "en": "cannot test the config: permission denied ({message})",
        "ko": "설정을 검사할 수 없습니다: 권한 없음 ({message})",
    },
    "nginx.syntax.permission_sudo": {
        "en": "cannot test the config: permission denied ({message}) — set sudo = true for this target",
        "ko": "설정을 검사할 수 없습니다: 권한 없음 ({message}) — 이 대상에 sudo = true를 설정하세요",
    },
    "nginx.syntax.missing_file_at": {
        "en": "nginx -t fails: a file it needs is missing in {file}:{line}: {message}",
        "ko": "nginx -t 실패: {file}:{line}에서 필요한 파일이 없습니다: {message}",
    },
    "nginx.syntax.missing_file": {
        "en": "nginx -t fails: a file it needs is missing: {message}",
        "ko": "nginx -t 실패: 필요한 파일이 없습니다: {message}",
    },
    "nginx.syntax.syntax_at": {
        "en": "nginx -t fails in {file}:{line}: {message}",
        "ko": "nginx 설정 문법 오류 ({file}:{line}): {message}",
    },
    "nginx.syntax.fails": {
        "en": "nginx -t fails: {message}",
        "ko": "nginx -t 실패: {message}",
    },
    # -- nginx.websocket ------------------------------------------------------------------------------------------
    "nginx.websocket.lacks": {
        "en": "{label} lacks the WebSocket upgrade setup: {missing}",
        "ko": "{label}: WebSocket 업그레이드 설정이 없습니다: {missing}",
    },
    "nginx.websocket.name.upgrade": {
        "en": "Upgrade $http_upgrade forwarding",
        "ko": "Upgrade $http_upgrade 전달",
    },
    "nginx.websocket.name.connection": {
        "en": "Connection upgrade forwarding",
        "ko": "Connection upgrade 전달",
    },
    "nginx.websocket.weak": {
        "en": "{label}: {problems}",
        "ko": "{label}: {problems}",
    },
    "nginx.websocket.read_timeout": {
        "en": "proxy_read_timeout {timeout:g} s: nginx cuts idle WebSockets after it "
              "(a classic cause of 'the chat keeps dropping')",
        "ko": "proxy_read_timeout {timeout:g}초: 이 시간 동안 조용한 WebSocket은 nginx가 끊습니다 "
              "('채팅 연결이 자꾸 끊어지는' 전형적인 원인)",
    },
    "nginx.websocket.buffering": {
        "en": "proxy_buffering is on (set it off for real-time traffic)",
        "ko": "proxy_buffering이 켜져 있습니다 (실시간 통신에는 off로 설정하세요)",
    },
    "nginx.websocket.ok": {
        "en": "{label} proxies to {upstream} with WebSocket upgrade",
        "ko": "{label}: {upstream}(으)로 프록시, WebSocket 업그레이드 설정됨",
    },
    # -- pm2.status -----------------------------------------------------------------------------------------------
    "pm2.status.jlist_empty": {
        "en": "{app} is not in `pm2 jlist`, which is empty: PM2 runs as another user or with another "
              "PM2_HOME (set user / pm2_home / pm2_user)",
        "ko": "`pm2 jlist`가 비어 있어 {app} 프로세스가 없습니다: PM2가 다른 사용자나 다른 PM2_HOME으로 "
              "실행 중입니다 (user / pm2_home / pm2_user를 설정하세요)",
    },
    "pm2.status.not_in_jlist": {
        "en": "{app} is not in `pm2 jlist` (PM2 knows: {names})",
        "ko": "`pm2 jlist`에 {app} 프로세스가 없습니다 (PM2에 있는 앱: {names})",
    },
    "pm2.status.online_pid0": {
        "en": "{app} is `online` but has pid 0: PM2 has no process for it",
        "ko": "{app} 프로세스가 `online` 상태인데 pid가 0입니다: PM2에 실제 프로세스가 없습니다",
    },
    "pm2.status.waiting_restart": {
        "en": "{app} is `waiting restart` (pid 0) after {restarts} restarts: it keeps exiting",
        "ko": "{app} 프로세스가 {restarts}번 재시작한 뒤 `waiting restart` 상태입니다 (pid 0): 계속 종료되고 있습니다",
    },
    "pm2.status.errored": {
        "en": "{app} is `errored` after {restarts} restarts: PM2 gave up restarting it",
        "ko": "{app} 프로세스가 {restarts}번 재시작한 뒤 `errored` 상태입니다: PM2가 재시작을 포기했습니다",
    },
    "pm2.status.launching": {
        "en": "{app} is `launching`",
        "ko": "{app} 프로세스가 `launching` 상태입니다",
    },
    "pm2.status.other": {
        "en": "{app} is `{status}`",
        "ko": "{app} 프로세스가 `{status}` 상태입니다",
    },
    "pm2.status.crash_loop": {
        "en": "{app} is `online` but crash-looping: {unstable} unstable restarts, up only {uptime:.0f} s",
        "ko": "{app} 프로세스가 `online` 상태지만 크래시 루프 중입니다: 불안정 재시작 {unstable}회, "
              "가동 시간 {uptime:.0f}초",
    },
    "pm2.status.ok": {
        "en": "{app} {count}online, pid {pid}, up {uptime}, {restarts} restarts",
        "ko": "{app} {count}online, pid {pid}, 가동 {uptime}, 재시작 {restarts}회",
    },
    "pm2.status.instances": {
        "en": "{count} instances ",
        "ko": "인스턴스 {count}개 ",
    },
    # -- pm2.logs -------------------------------------------------------------------------------------------------
    "pm2.logs.unknown_app": {
        "en": "{app} is not known to PM2, so neither are its logs",
        "ko": "PM2가 {app} 프로세스를 모르므로 로그도 알 수 없습니다",
    },
    "pm2.logs.no_files": {
        "en": "PM2 names no log files for the app (logs disabled with /dev/null?)",
        "ko": "PM2에 이 앱의 로그 파일이 지정되어 있지 않습니다 (/dev/null로 로그를 껐나요?)",
    },
    "pm2.logs.unreadable": {
        "en": "cannot read the PM2 log files: {files}",
        "ko": "PM2 로그 파일을 읽을 수 없습니다: {files}",
    },
    "pm2.logs.errors": {
        "en": "{count} recent error line(s){tag}; latest: {latest}",
        "ko": "최근 에러 로그 {count}줄{tag}; 마지막 줄: {latest}",
    },
    "pm2.logs.no_new": {
        "en": "no new log lines since the app last started",
        "ko": "앱이 마지막으로 시작된 뒤 새 로그가 없습니다",
    },
    "pm2.logs.clean_since_start": {
        "en": "no error lines since the app last started ({dropped} older line(s) left out)",
        "ko": "앱이 마지막으로 시작된 뒤 에러가 없습니다 (그 이전 로그 {dropped}줄은 제외)",
    },
    "pm2.logs.clean": {
        "en": "no error lines in the recent PM2 logs",
        "ko": "최근 PM2 로그에 에러가 없습니다",
    },
    # -- port.* ---------------------------------------------------------------------------------------------------
    "port.who": {
        "en": "{name} (pid {pid})",
        "ko": "{name} (pid {pid})",
    },
    "port.who_user": {
        "en": "{name} (pid {pid}, user {user})",
        "ko": "{name} (pid {pid}, 사용자 {user})",
    },
    "port.listen.none": {
        "en": "nothing listens on port {port}{elsewhere}{state}",
        "ko": "{port} 포트에서 수신 대기 중인 프로세스가 없습니다{elsewhere}{state}",
    },
    "port.listen.elsewhere": {
        "en": "; {app} listens on {ports}",
        "ko": "; {app} 프로세스는 {ports} 포트에서 수신 대기 중",
    },
    "port.listen.not_running": {
        "en": " ({app} is not running)",
        "ko": " ({app} 프로세스가 실행 중이 아님)",
    },
    "port.listen.ok": {
        "en": "{app} listens on {addrs} ({who})",
        "ko": "{app} 프로세스가 {addrs}에서 수신 대기 중입니다 ({who})",
    },
    "port.listen.held": {
        "en": "port {port} is held by {who}, not by {app}",
        "ko": "{port} 포트를 {app} 프로세스가 아닌 다른 프로세스가 점유하고 있습니다: {who}",
    },
    "port.listen.hidden_not_running": {
        "en": "something holds port {port} while {app} is not running (owner hidden: enable sudo)",
        "ko": "{app} 프로세스가 실행 중이 아닌데 무언가가 {port} 포트를 점유하고 있습니다 "
              "(소유자가 보이지 않음: sudo를 켜세요)",
    },
    "port.listen.hidden": {
        "en": "something listens on port {port} but its owner is not visible (enable sudo for ss -p)",
        "ko": "{port} 포트에서 무언가가 수신 대기 중이지만 소유자가 보이지 않습니다 (ss -p를 위해 sudo를 켜세요)",
    },
    "port.match.not_local": {
        "en": "nginx proxies to {proxy_pass}, not to a port on this host: cannot compare",
        "ko": "nginx가 이 호스트의 포트가 아닌 {proxy_pass}(으)로 프록시합니다: 비교할 수 없습니다",
    },
    "port.match.no_port": {
        "en": "{app} listens on no port, so there is nothing to compare",
        "ko": "{app} 프로세스가 어떤 포트에서도 수신 대기하지 않아 비교할 대상이 없습니다",
    },
    "port.match.ok": {
        "en": "nginx, {app} and app_port agree on {port}",
        "ko": "nginx, {app}, app_port가 모두 {port} 포트로 일치합니다",
    },
    "port.match.app_side": {
        "en": "nginx proxies to {port} but {app} listens on {app_ports}",
        "ko": "{app} 프로세스가 {app_ports} 포트에서 실행 중인데 nginx는 {port} 포트로 프록시합니다",
    },
    "port.match.nginx_side": {
        "en": "nginx proxies to {nginx_port} but {app} listens on {port}",
        "ko": "{app} 프로세스가 {port} 포트에서 실행 중인데 nginx는 {nginx_port} 포트로 프록시합니다",
    },
    "port.match.config_side": {
        "en": "nginx and {app} agree on {nginx_port}, but wscheck's app_port is {port}: update app_port",
        "ko": "nginx와 {app} 프로세스는 {nginx_port} 포트로 일치하지만 wscheck의 app_port는 {port}입니다: "
              "app_port를 고치세요",
    },
    "port.match.nothing_agrees": {
        "en": "nginx proxies to {nginx_port}, {app} listens on {app_ports}, app_port is {port}: nothing agrees",
        "ko": "nginx는 {nginx_port} 포트로 프록시하고, {app} 프로세스는 {app_ports} 포트에서 수신 대기하며, "
              "app_port는 {port}입니다: 일치하는 것이 없습니다",
    },
    "port.conflict.held": {
        "en": "port {port} is held by {holders}",
        "ko": "다른 프로세스가 {port} 포트를 점유하고 있습니다: {holders}",
    },
    "port.conflict.app_only_hidden": {
        "en": "port {port} is the app's",
        "ko": "{port} 포트는 앱이 사용 중입니다",
    },
    "port.conflict.hidden_not_running": {
        "en": "port {port} is held by a process whose owner is hidden (enable sudo for ss -p) while {app} is "
              "not running",
        "ko": "{app} 프로세스가 실행 중이 아닌데 소유자가 보이지 않는 프로세스가 {port} 포트를 점유하고 있습니다 "
              "(ss -p를 위해 sudo를 켜세요)",
    },
    "port.conflict.hidden": {
        "en": "cannot tell who holds port {port}: owners hidden (enable sudo for ss -p)",
        "ko": "{port} 포트를 누가 점유하는지 알 수 없습니다: 소유자가 보이지 않습니다 (ss -p를 위해 sudo를 켜세요)",
    },
    "port.conflict.only_app": {
        "en": "only {app} holds port {port}",
        "ko": "{port} 포트는 {app} 프로세스만 사용 중입니다",
    },
    "port.conflict.free": {
        "en": "port {port} is free of other processes",
        "ko": "{port} 포트를 점유한 다른 프로세스가 없습니다",
    },
    # -- next.build -----------------------------------------------------------------------------------------------
    "next.build.no_package_json": {
        "en": "app_dir {app_dir} has no package.json on the target: is app_dir right?",
        "ko": "대상 서버의 app_dir {app_dir}에 package.json이 없습니다: app_dir이 맞나요?",
    },
    "next.build.dev": {
        "en": "the app runs in dev mode (next dev): no production build needed, but dev mode is slow and not "
              "meant for production",
        "ko": "앱이 개발 모드(next dev)로 실행 중입니다: 프로덕션 빌드는 필요 없지만 개발 모드는 느리고 "
              "프로덕션용이 아닙니다",
    },
    "next.build.missing": {
        "en": "no production build: {what} missing in {app_dir}, so `next start` fails with "
              "\"Could not find a production build\"",
        "ko": "프로덕션 빌드가 없습니다: {app_dir}에 {what} 없음 → `next start`가 "
              "\"Could not find a production build\"로 실패합니다",
    },
    "next.build.whole_build": {
        "en": ".next (the whole build)",
        "ko": ".next (빌드 전체)",
    },
    "next.build.ok": {
        "en": "production build present (.next/BUILD_ID, built {age} ago)",
        "ko": "프로덕션 빌드 있음 (.next/BUILD_ID, {age} 전 빌드)",
    },
    # -- http.*, ws.* ---------------------------------------------------------------------------------------------
    "web.answers": {
        "en": "{url} answers {status}{hint}",
        "ko": "{url} 응답: {status}{hint}",
    },
    "web.hint_502": {
        "en": ": nginx cannot reach the app",
        "ko": ": nginx가 앱에 연결하지 못합니다",
    },
    "web.hint_504": {
        "en": ": the app did not answer nginx in time",
        "ko": ": 앱이 제시간에 nginx에 응답하지 않았습니다",
    },
    "web.redirect": {
        "en": "{url} answers {status} (redirect)",
        "ko": "{url} 응답: {status} (리다이렉트)",
    },
    "web.redirect_to": {
        "en": "{url} answers {status} (redirect to {location})",
        "ko": "{url} 응답: {status} ({location}(으)로 리다이렉트)",
    },
    "web.probe_error": {
        "en": "{url}: {error}",
        "ko": "{url}: {error}",
    },
    # -- wt-tls: TLS and redirects (one block: checks/items/tls.py, web.py, probes.py, diagnosis.py) -------------
    "probe.tls_invalid": {
        "en": "TLS with {host}:{port}: the certificate is refused: {why} ({reason})",
        "ko": "{host}:{port}와의 TLS: 인증서가 거부되었습니다: {why} ({reason})",
    },
    "tls.why.expired": {"en": "it has expired", "ko": "만료되었습니다"},
    "tls.why.not_yet_valid": {"en": "it is not valid yet", "ko": "아직 유효 기간이 시작되지 않았습니다"},
    "tls.why.wrong_name": {"en": "it is for another name", "ko": "다른 이름용 인증서입니다"},
    "tls.why.untrusted": {"en": "its chain is not trusted", "ko": "인증서 체인을 신뢰할 수 없습니다"},
    "tls.why.unverified": {"en": "it does not verify", "ko": "검증에 실패했습니다"},
    "tls.not_https": {
        "en": "{url} is http://: no TLS certificate in play",
        "ko": "{url}은(는) http://입니다: 확인할 TLS 인증서가 없습니다",
    },
    "tls.no_connection": {
        "en": "no TLS handshake: {error}",
        "ko": "TLS 핸드셰이크 없음: {error}",
    },
    "tls.handshake_failed": {
        "en": "TLS with {host}:{port} fails before any certificate: {reason}",
        "ko": "{host}:{port}와의 TLS가 인증서를 받기 전에 실패합니다: {reason}",
    },
    "tls.invalid": {
        "en": "{host}:{port} serves a certificate that browsers refuse: {why} (names {names}, not after "
              "{not_after}, issuer {issuer})",
        "ko": "{host}:{port}가 브라우저가 거부하는 인증서를 제공합니다: {why} (이름 {names}, 만료 {not_after}, "
              "발급자 {issuer})",
    },
    "tls.not_reloaded": {
        "en": "nginx serves a certificate valid until {served}, but {path} holds a newer one (until {disk}): "
              "renewed, never reloaded",
        "ko": "nginx는 {served}까지 유효한 인증서를 제공하지만 {path}에는 더 새 인증서({disk}까지)가 있습니다: "
              "갱신 후 reload되지 않았습니다",
    },
    "tls.expiring": {
        "en": "the certificate for {names} expires in {days} day(s) ({not_after})",
        "ko": "{names} 인증서가 {days}일 후 만료됩니다 ({not_after})",
    },
    "tls.ok": {
        "en": "certificate for {names} valid until {not_after} ({days} days left), issuer {issuer}",
        "ko": "{names} 인증서가 {not_after}까지 유효합니다 ({days}일 남음), 발급자 {issuer}",
    },
    "web.followed": {
        "en": "{url} answers {status} at {final} after {n} same-site redirect(s) (followed)",
        "ko": "{url}이(가) 같은 사이트 리다이렉트 {n}번을 따라간 뒤 {final}에서 {status}로 응답합니다",
    },
    "ws.redirected": {
        "en": "{url} answers the upgrade with {status} to {location}: a redirect, which browsers do not follow",
        "ko": "{url}이(가) 업그레이드 요청에 {status}({location}(으)로)로 응답합니다: 브라우저는 이 리다이렉트를 "
              "따라가지 않습니다",
    },
    "cause.tls_certificate_invalid": {
        "en": "{url} serves a certificate browsers refuse: {why} (names {names}, not after {not_after}, issuer "
              "{issuer}, serial {serial}); nginx is running, TLS answered",
        "ko": "{url}이(가) 브라우저가 거부하는 인증서를 제공합니다: {why} (이름 {names}, 만료 {not_after}, 발급자 "
              "{issuer}, 일련번호 {serial}); nginx는 실행 중이며 TLS는 응답했습니다",
    },
    "cause.tls_certificate_expiring": {
        "en": "the certificate for {names} expires in {days} day(s) ({not_after}), under the {limit}-day warning",
        "ko": "{names} 인증서가 {days}일 후 만료됩니다 ({not_after}), 경고 기준 {limit}일 이내입니다",
    },
    "cause.tls_certificate_not_reloaded": {
        "en": "{path} ({where}) holds a renewed certificate (serial {disk_serial}, until {disk}) but nginx still "
              "serves the old one (serial {serial}, until {served}): renewed, never reloaded",
        "ko": "{path} ({where})에는 갱신된 인증서(일련번호 {disk_serial}, {disk}까지)가 있지만 nginx는 여전히 이전 "
              "인증서(일련번호 {serial}, {served}까지)를 제공합니다: 갱신 후 reload되지 않았습니다",
    },
    "cause.ws_upgrade_redirected": {
        "en": "{url} answers the WebSocket upgrade with {status} to {location} (sent by {where}); browsers do "
              "not follow redirects on WebSocket",
        "ko": "{url}이(가) WebSocket 업그레이드에 {status}({location}(으)로)로 응답합니다 (보낸 곳 {where}); "
              "브라우저는 WebSocket 리다이렉트를 따라가지 않습니다",
    },
    "cause.ws_upgrade_redirected_https": {
        "en": "{url} answers the WebSocket upgrade with an http->https redirect ({status} to {location}, sent by "
              "{where}); browsers do not follow it: the client must use wss://",
        "ko": "{url}이(가) WebSocket 업그레이드에 http->https 리다이렉트로 응답합니다 ({status}, {location}(으)로, "
              "보낸 곳 {where}); 브라우저는 따라가지 않으므로 클라이언트가 wss://를 써야 합니다",
    },
    "fix.tls_renew": {
        "en": "renew the certificate for {names} (your ACME client or CA), then reload nginx",
        "ko": "{names} 인증서를 갱신하세요 (ACME 클라이언트 또는 CA), 그다음 nginx를 reload하세요",
    },
    "fix.tls_chain": {
        "en": "serve the full chain (ssl_certificate .../fullchain.pem, not cert.pem); the issuer is {issuer}",
        "ko": "전체 체인을 제공하세요 (ssl_certificate .../fullchain.pem, cert.pem 아님); 발급자: {issuer}",
    },
    "fix.tls_ca_file": {
        "en": "for a private CA, give target {target} a ca_file (or set SSL_CERT_FILE for the bot)",
        "ko": "사설 CA라면 대상 {target}에 ca_file을 지정하세요 (또는 봇에 SSL_CERT_FILE 설정)",
    },
    "fix.tls_name": {
        "en": "get a certificate that names {host} (it names {names})",
        "ko": "{host}을(를) 포함하는 인증서를 받으세요 (현재 이름: {names})",
    },
    "fix.ws_use_wss": {
        "en": "connect the WebSocket with wss:// (in the client: derive it from location.protocol, or "
              "NEXT_PUBLIC_WS_URL=wss://…, then rebuild); set target {target}'s public_url to {url}",
        "ko": "WebSocket을 wss://로 연결하세요 (클라이언트에서 location.protocol로 정하거나 "
              "NEXT_PUBLIC_WS_URL=wss://… 후 다시 빌드); 대상 {target}의 public_url을 {url}(으)로 설정하세요",
    },
    "fix.ws_no_redirect": {
        "en": "make {ws_path} proxied without a redirect in {where} (the client path and the location must agree, "
              "e.g. /ws vs /ws/)",
        "ko": "{where}에서 {ws_path}가 리다이렉트 없이 프록시되게 하세요 (클라이언트 경로와 location이 일치해야 "
              "함, 예: /ws 와 /ws/)",
    },
    # -- end wt-tls ------------------------------------------------------------------------------------------------
    "web.refused_nginx": {
        "en": "{url}: {error} (is nginx running?)",
        "ko": "{url}: {error} (nginx가 실행 중인가요?)",
    },
    "web.no_answer": {
        "en": "{url}: no answer within {timeout:g} s",
        "ko": "{url}: {timeout:g}초 안에 응답이 없습니다",
    },
    "web.not_nginx": {
        "en": "{url} answers {status}, but not from nginx ({server})",
        "ko": "{url} 응답: {status}, 그런데 nginx의 응답이 아닙니다 ({server})",
    },
    "web.no_server_header": {
        "en": "no Server header",
        "ko": "Server 헤더 없음",
    },
    "ws.no_answer": {
        "en": "{url}: no WebSocket answer within {timeout:g} s",
        "ko": "{url}: {timeout:g}초 안에 WebSocket 응답이 없습니다",
    },
    "ws.ok": {
        "en": "{url}: 101 Switching Protocols, ping/pong {rtt:.0f} ms",
        "ko": "{url}: 101 Switching Protocols, ping/pong 응답 {rtt:.0f} ms",
    },
    # -- wt-host2: host resources, restarts while online, standalone assets (checks/items/host.py, diagnosis.py) --
    "host.memory.unreadable": {
        "en": "cannot read /proc/meminfo: {error}",
        "ko": "/proc/meminfo를 읽을 수 없습니다: {error}",
    },
    "host.memory.numbers": {
        "en": "MemAvailable {available} MB of {total} MB, swap free {swap} MB",
        "ko": "MemAvailable {available} MB / {total} MB, 여유 스왑 {swap} MB",
    },
    "host.memory.oom_kernel": {
        "en": "the kernel OOM killer killed {count} process(es), last {comm} (pid {pid}) ({source}); {numbers}",
        "ko": "커널 OOM killer가 프로세스 {count}개를 강제 종료했습니다, 마지막은 {comm} (pid {pid}) ({source}); "
              "{numbers}",
    },
    "host.memory.oom_heap": {
        "en": "the app ran out of V8 heap: {line}; {numbers}",
        "ko": "앱의 V8 힙 메모리가 부족했습니다: {line}; {numbers}",
    },
    "host.memory.oom_earlier": {
        "en": "the kernel OOM killer killed {count} process(es) before the app's current start, last {comm} (pid "
              "{pid}) ({source}); {numbers}",
        "ko": "앱이 지금 시작되기 전에 커널 OOM killer가 프로세스 {count}개를 강제 종료했습니다, 마지막은 {comm} "
              "(pid {pid}) ({source}); {numbers}",
    },
    "host.memory.ok_no_kernel_log": {
        "en": "{numbers}; the kernel log is not readable here ({why}), so OOM kills are not known",
        "ko": "{numbers}; 여기서는 커널 로그를 읽을 수 없어({why}) OOM 강제 종료 여부를 알 수 없습니다",
    },
    "host.memory.ok": {
        "en": "{numbers}; no OOM kill in the kernel log ({source})",
        "ko": "{numbers}; 커널 로그에 OOM 강제 종료 없음 ({source})",
    },
    "host.disk.no_df": {
        "en": "df not found on the target",
        "ko": "대상 서버에 df가 없습니다",
    },
    "host.disk.unreadable": {
        "en": "df gave no file system: {error}",
        "ko": "df가 파일 시스템을 보여 주지 않았습니다: {error}",
    },
    "host.disk.biggest": {
        "en": "; biggest PM2 log {file} ({mb} MB)",
        "ko": "; 가장 큰 PM2 로그 {file} ({mb} MB)",
    },
    "host.disk.enospc": {
        "en": "no space left on device in the logs: {line} ({mount} {percent}% used, {free} MB free{biggest})",
        "ko": "로그에 디스크 공간 부족(ENOSPC)이 있습니다: {line} ({mount} {percent}% 사용, 여유 {free} MB{biggest})",
    },
    "host.disk.full": {
        "en": "{mount} is {percent}% full (fail at {limit}%), {free} MB free{biggest}",
        "ko": "{mount}이(가) {percent}% 찼습니다 (실패 기준 {limit}%), 여유 {free} MB{biggest}",
    },
    "host.disk.almost_full": {
        "en": "{mount} is {percent}% full (warn at {limit}%), {free} MB free{biggest}",
        "ko": "{mount}이(가) {percent}% 찼습니다 (경고 기준 {limit}%), 여유 {free} MB{biggest}",
    },
    "host.disk.ok": {
        "en": "{count} file system(s), fullest {mount} at {percent}% ({free} MB free){biggest}",
        "ko": "파일 시스템 {count}개, 가장 찬 곳 {mount} {percent}% (여유 {free} MB){biggest}",
    },
    "host.fds.no_app": {
        "en": "{app} has no running process to look at",
        "ko": "{app}에 살펴볼 실행 중인 프로세스가 없습니다",
    },
    "host.fds.usage": {
        "en": "pid {pid}: {open} open of {limit} allowed",
        "ko": "pid {pid}: 허용 {limit}개 중 {open}개 열림",
    },
    "host.fds.usage_unreadable": {
        "en": "the app's /proc/PID/fd is not readable for this login",
        "ko": "이 로그인으로는 앱의 /proc/PID/fd를 읽을 수 없습니다",
    },
    "host.fds.emfile": {
        "en": "the app ran out of file descriptors: {line} ({usage})",
        "ko": "앱의 파일 디스크립터가 바닥났습니다: {line} ({usage})",
    },
    "host.fds.near_limit": {
        "en": "the app is close to its open-files limit ({usage})",
        "ko": "앱이 열린 파일 한도에 가깝습니다 ({usage})",
    },
    "host.fds.ok": {
        "en": "no EMFILE in the app's logs ({usage})",
        "ko": "앱 로그에 EMFILE 없음 ({usage})",
    },
    "pm2.restarts.not_online": {
        "en": "{app} is not online in PM2: restarts while online cannot be judged",
        "ko": "{app}이(가) PM2에서 online이 아니어서 online 중 재시작을 판단할 수 없습니다",
    },
    "pm2.restarts.why.memory": {"en": "max_memory_restart is below its memory use",
                                "ko": "max_memory_restart가 메모리 사용량보다 낮습니다"},
    "pm2.restarts.why.watch": {"en": "watch restarts it on file changes",
                               "ko": "watch가 파일 변경마다 재시작합니다"},
    "pm2.restarts.why.exit": {"en": "it exits and PM2 starts it again", "ko": "앱이 종료되고 PM2가 다시 시작합니다"},
    "pm2.restarts.why.unknown": {"en": "PM2's log does not say why", "ko": "PM2 로그에 이유가 없습니다"},
    "pm2.restarts.loop": {
        "en": "{app} reads online but PM2 restarted it {count} time(s) within {window}: {why}",
        "ko": "{app}은(는) online으로 보이지만 PM2가 {window} 동안 {count}번 재시작했습니다: {why}",
    },
    "pm2.restarts.ok_first": {
        "en": "{app}: {restarts} restart(s) so far, {recent} in PM2's log lately (no earlier look to compare)",
        "ko": "{app}: 지금까지 재시작 {restarts}번, 최근 PM2 로그에 {recent}번 (비교할 이전 확인 없음)",
    },
    "pm2.restarts.ok": {
        "en": "{app}: {restarts} restart(s), {delta} since the last look",
        "ko": "{app}: 재시작 {restarts}번, 지난 확인 이후 {delta}번",
    },
    "next.static.not_standalone": {
        "en": "not a standalone deployment (PM2 does not run .next/standalone/server.js)",
        "ko": "standalone 배포가 아닙니다 (PM2가 .next/standalone/server.js를 실행하지 않음)",
    },
    "next.static.standalone_not_run": {
        "en": "{config} sets output standalone, but PM2 does not run .next/standalone/server.js",
        "ko": "{config}에 output standalone이 설정되어 있지만 PM2는 .next/standalone/server.js를 실행하지 않습니다",
    },
    "next.static.missing": {
        "en": "PM2 runs {server}, but {missing} is missing next to it: /_next/static answers 404",
        "ko": "PM2가 {server}를 실행하지만 옆에 {missing}이(가) 없습니다: /_next/static이 404로 응답합니다",
    },
    "next.static.ok": {
        "en": "{server} has .next/static and public next to it",
        "ko": "{server} 옆에 .next/static과 public이 있습니다",
    },
    "fix.oom_memory": {
        "en": "give the host memory: add swap (fallocate -l 2G /swapfile && chmod 600 /swapfile && mkswap /swapfile "
              "&& swapon /swapfile) or a bigger plan; build elsewhere or stop the app while building",
        "ko": "호스트 메모리를 늘리세요: 스왑 추가 (fallocate -l 2G /swapfile && chmod 600 /swapfile && mkswap "
              "/swapfile && swapon /swapfile) 또는 더 큰 플랜; 다른 곳에서 빌드하거나 빌드 중에는 앱을 멈추세요",
    },
    "fix.oom_heap": {
        "en": "raise the app's heap (NODE_OPTIONS=--max-old-space-size=<MB> in its PM2 env) or find the leak",
        "ko": "앱의 힙을 늘리거나(PM2 env에 NODE_OPTIONS=--max-old-space-size=<MB>) 메모리 누수를 찾으세요",
    },
    "fix.disk_free": {
        "en": "free space on {mount} (the biggest PM2 logs first), and rotate PM2's logs:",
        "ko": "{mount}의 공간을 확보하세요 (가장 큰 PM2 로그부터), 그리고 PM2 로그를 회전시키세요:",
    },
    "fix.fd_limit": {
        "en": "raise the open-files limit of PM2 and the app (LimitNOFILE=65535 in the pm2-<user> unit, then start "
              "PM2 through it), and look for leaked sockets",
        "ko": "PM2와 앱의 열린 파일 한도를 올리세요 (pm2-<user> 유닛에 LimitNOFILE=65535, PM2를 그 유닛으로 시작), "
              "그리고 새는 소켓이 없는지 보세요",
    },
    "fix.restart_loop_memory": {
        "en": "raise max_memory_restart above the app's working set ({memory} MB now, limit {limit} MB) in the "
              "ecosystem file, then reload it with --update-env",
        "ko": "ecosystem 파일에서 max_memory_restart를 앱의 작업 메모리보다 높이세요 (현재 {memory} MB, 한도 "
              "{limit} MB), 그다음 --update-env로 reload",
    },
    "fix.restart_loop_watch": {
        "en": "turn watch off in production, or ignore_watch the files the app writes (logs, uploads, .next)",
        "ko": "프로덕션에서는 watch를 끄거나, 앱이 쓰는 파일(logs, uploads, .next)을 ignore_watch에 넣으세요",
    },
    "fix.static_copy": {
        "en": "copy the assets next to the standalone server after each build (Next does not):",
        "ko": "빌드할 때마다 standalone 서버 옆에 자산을 복사하세요 (Next가 해 주지 않음):",
    },
    # -- end wt-host2 ----------------------------------------------------------------------------------------------
    # -- facts (why a check could not find out) -------------------------------------------------------------------
    "facts.nginx_dump_failed": {
        "en": "nginx -T failed, so its config cannot be read",
        "ko": "nginx -T가 실패해 설정을 읽을 수 없습니다",
    },
    "facts.nginx_parse": {
        "en": "cannot parse the nginx -T dump: {error}",
        "ko": "nginx -T 출력을 해석할 수 없습니다: {error}",
    },
    "facts.route_uncertain": {
        "en": "cannot tell where nginx sends {request}: {why} ({at})",
        "ko": "nginx가 {request} 요청을 어디로 보내는지 설정만으로는 알 수 없습니다: {why} ({at})",
    },
    "facts.route_wrong_server": {
        "en": "nginx answers {request} with {picked}, not with {app}, which proxies to the app",
        "ko": "nginx는 {request} 요청을 앱으로 프록시하는 {app}이(가) 아니라 {picked}에서 처리합니다",
    },
    "facts.route_redirect": {
        "en": "nginx answers {request} itself in {picked}: redirect {status} to {target}",
        "ko": "nginx가 {picked}에서 {request} 요청에 직접 응답합니다: {status} 리다이렉트 → {target}",
    },
    "facts.route_not_proxied": {
        "en": "nginx answers {request} itself in {picked} (status {status}); it never reaches the app",
        "ko": "nginx가 {picked}에서 {request} 요청에 직접 응답합니다 (상태 {status}); 앱에 도달하지 않습니다",
    },
    "facts.no_location": {
        "en": "no nginx location proxies to the app (no server on port {port} for {host}, no proxy_pass to port "
              "{app_port})",
        "ko": "앱으로 프록시하는 nginx location이 없습니다 ({host}의 {port} 포트를 맡는 server 없음, "
              "{app_port} 포트로 가는 proxy_pass 없음)",
    },
    "facts.pm2_missing": {
        "en": "{bin} not found on the target: set pm2_bin to its absolute path (nvm and npm -g bins are not on a "
              "non-login PATH)",
        "ko": "대상 서버에서 {bin}을(를) 찾을 수 없습니다: pm2_bin에 절대 경로를 설정하세요 "
              "(nvm이나 npm -g로 설치한 실행 파일은 로그인하지 않은 셸의 PATH에 없습니다)",
    },
    "facts.pm2_failed": {
        "en": "pm2 jlist failed ({code}): {error}",
        "ko": "pm2 jlist 실패 ({code}): {error}",
    },
    "facts.pm2_parse": {
        "en": "cannot parse pm2 jlist output: {error}",
        "ko": "pm2 jlist 출력을 해석할 수 없습니다: {error}",
    },
    "facts.ss_missing": {
        "en": "ss not found on the target (package iproute2)",
        "ko": "대상 서버에 ss가 없습니다 (iproute2 패키지)",
    },
    "facts.ss_failed": {
        "en": "ss -ltnp failed: {error}",
        "ko": "ss -ltnp 실패: {error}",
    },
    "facts.sudo_hint": {
        "en": "{error} — allow it without a password in sudoers (see deploy/target/)",
        "ko": "{error} — sudoers에서 비밀번호 없이 허용하세요 (deploy/target/ 참고)",
    },
    "facts.ss_parse": {
        "en": "cannot parse ss output: {error}",
        "ko": "ss 출력을 해석할 수 없습니다: {error}",
    },
    "facts.ps_failed": {
        "en": "ps failed: {error}",
        "ko": "ps 실패: {error}",
    },
    "facts.ps_parse": {
        "en": "cannot parse ps output: {error}",
        "ko": "ps 출력을 해석할 수 없습니다: {error}",
    },
    "facts.stat_missing": {
        "en": "stat not found on the target",
        "ko": "대상 서버에 stat이 없습니다",
    },
    "facts.stat_failed": {
        "en": "stat failed: {error}",
        "ko": "stat 실패: {error}",
    },
    "facts.no_output": {
        "en": "(no output)",
        "ko": "(출력 없음)",
    },
    # -- transport and probe errors (the OS's own words, e.g. "Connection refused", stay as they are) ----------
    "transport.known_hosts_missing": {
        "en": "known_hosts file {path} does not exist: host keys are always verified; add {host}'s key with "
              "`wscheck trust {target}`",
        "ko": "known_hosts 파일 {path}이(가) 없습니다: 호스트 키는 항상 검증합니다; `wscheck trust {target}`로 "
              "{host}의 키를 추가하세요",
    },
    "transport.key_encrypted": {
        "en": "the key is encrypted: load it into ssh-agent or use a deploy key without a passphrase ({path})",
        "ko": "키가 암호화되어 있습니다: ssh-agent에 키를 등록하거나 암호 없는 배포 키를 사용하세요 ({path})",
    },
    "transport.identity_unreadable": {
        "en": "identity_file {path} cannot be read as a private key",
        "ko": "identity_file {path}을(를) 개인 키로 읽을 수 없습니다",
    },
    "transport.identity_missing": {
        "en": "identity_file {path} does not exist",
        "ko": "identity_file {path}이(가) 없습니다",
    },
    "transport.retry_later": {
        # Kept for results stored before issue 13 (15); rendered without their frozen countdown.
        "en": "{error}",
        "ko": "{error}",
    },
    "transport.host_key": {
        "en": "host key of {host}:{port} is not trusted ({reason}): it is unknown or has CHANGED. Compare its "
              "fingerprint with `ssh-keygen -lf` on the server, then run `wscheck trust {target}`",
        "ko": "{host}:{port}의 호스트 키를 신뢰할 수 없습니다 ({reason}): 모르는 키이거나 키가 바뀌었습니다. "
              "서버에서 `ssh-keygen -lf`로 지문을 비교한 뒤 `wscheck trust {target}`를 실행하세요",
    },
    "transport.login_refused": {
        "en": "SSH login as {user} to {host} was refused (key not authorized?)",
        "ko": "{host}에 {user} 계정으로 SSH 로그인이 거부되었습니다 (키가 등록되지 않았나요?)",
    },
    "transport.default_user": {
        "en": "(default user)",
        "ko": "(기본 사용자)",
    },
    "transport.ssh_timeout": {
        "en": "cannot reach {host}:{port}: no SSH connection within {timeout:g} s",
        "ko": "{host}:{port}에 접속할 수 없습니다: {timeout:g}초 안에 SSH 연결이 되지 않았습니다",
    },
    "transport.unreachable": {
        "en": "cannot reach {host}:{port}: {reason}",
        "ko": "{host}:{port}에 접속할 수 없습니다: {reason}",
    },
    "transport.channel_refused": {
        "en": "SSH server refused a new channel (MaxSessions?)",
        "ko": "SSH 서버가 새 채널을 거부했습니다 (MaxSessions?)",
    },
    # --- wt-rel1 (issue 13): bounded commands and bounded input ---
    "transport.no_timeout": {
        "en": "{host} has no `timeout` command (coreutils), which bounds every command wscheck runs there",
        "ko": "{host}에 `timeout` 명령(coreutils)이 없습니다. wscheck가 실행하는 모든 명령의 시간 제한에 필요합니다",
    },
    "facts.nginx_too_large_bytes": {
        "en": "the nginx configuration is too large to model ({mb:.1f} MB, over {limit_mb:.0f} MB): "
              "its routing is not checked",
        "ko": "nginx 설정이 너무 커서 분석하지 않습니다 ({mb:.1f} MB, 한도 {limit_mb:.0f} MB): "
              "라우팅은 검사하지 않았습니다",
    },
    "facts.nginx_too_large_statements": {
        "en": "the nginx configuration is too large to model (about {count} statements, over {limit}): "
              "its routing is not checked",
        "ko": "nginx 설정이 너무 커서 분석하지 않습니다 (약 {count}개 구문, 한도 {limit}개): "
              "라우팅은 검사하지 않았습니다",
    },
    "facts.pm2_too_large": {
        "en": "pm2 jlist printed {mb:.1f} MB, more than the {limit_mb:.0f} MB wscheck reads",
        "ko": "pm2 jlist 출력이 {mb:.1f} MB로, wscheck가 읽는 한도 {limit_mb:.0f} MB를 넘습니다",
    },
    # --- end wt-rel1 ---
    "transport.ssh_failed": {
        "en": "cannot reach {host}:{port}: the SSH handshake failed (the server's reason is in the details)",
        "ko": "{host}:{port}에 접속할 수 없습니다: SSH 핸드셰이크 실패 (서버가 밝힌 이유는 details에 있습니다)",
    },
    "transport.command_timeout": {
        "en": "{command} did not finish within {timeout:g} s",
        "ko": "{command} 명령이 {timeout:g}초 안에 끝나지 않았습니다",
    },
    "transport.connection_lost": {
        "en": "SSH connection to {host} lost",
        "ko": "{host}와의 SSH 연결이 끊겼습니다",
    },
    "transport.cannot_start": {
        "en": "cannot start {command}: {error}",
        "ko": "{command} 명령을 시작할 수 없습니다: {error}",
    },
    "probe.refused": {
        "en": "connection to {host}:{port} refused",
        "ko": "{host}:{port} 연결이 거부되었습니다",
    },
    "probe.timed_out": {
        "en": "connection to {host}:{port} timed out",
        "ko": "{host}:{port} 연결 시간 초과",
    },
    "probe.failed": {
        "en": "connection to {host}:{port} failed: {reason}",
        "ko": "{host}:{port} 연결 실패: {reason}",
    },
    "probe.target_failed": {
        "en": "connection to {host}:{port} on the target failed: {reason}",
        "ko": "대상 서버 안에서 {host}:{port} 연결 실패: {reason}",
    },
    "probe.target_timed_out": {
        "en": "connection to {host}:{port} on the target timed out",
        "ko": "대상 서버 안에서 {host}:{port} 연결 시간 초과",
    },
    "probe.tls_failed": {
        "en": "TLS with {host}:{port} failed: {reason}",
        "ko": "{host}:{port}와의 TLS 실패: {reason}",
    },
    "probe.not_http": {
        "en": "not an HTTP answer: {error}",
        "ko": "HTTP 응답이 아닙니다: {error}",
    },
    "probe.closed_no_answer": {
        "en": "connection closed without an HTTP answer",
        "ko": "HTTP 응답 없이 연결이 닫혔습니다",
    },
    "probe.ws_closed": {
        "en": "WebSocket closed before answering the ping",
        "ko": "WebSocket이 ping에 응답하기 전에 닫혔습니다",
    },
    "probe.ws_closed_by_server": {
        "en": "WebSocket closed by the server before answering the ping",
        "ko": "서버가 ping에 응답하기 전에 WebSocket을 닫았습니다",
    },
    "probe.handshake_status": {
        "en": "handshake answered HTTP {status} {reason} instead of 101",
        "ko": "핸드셰이크 응답이 101이 아니라 HTTP {status} {reason}입니다",
    },
    "probe.handshake_rejected": {
        "en": "handshake rejected: {error}",
        "ko": "핸드셰이크 거부됨: {error}",
    },
    "probe.handshake_failed": {
        "en": "handshake failed: {error}",
        "ko": "핸드셰이크 실패: {error}",
    },
    "probe.handshake_closed": {
        "en": "connection closed during the WebSocket handshake",
        "ko": "WebSocket 핸드셰이크 중에 연결이 닫혔습니다",
    },
    # -- durations in sentences ("5 min" -> "5분"); exact timings ("412 ms", "1.3 s") stay as they are ----------
    "unit.s": {
        "en": "{n} s",
        "ko": "{n}초",
    },
    "unit.min": {
        "en": "{n} min",
        "ko": "{n}분",
    },
    "unit.h": {
        "en": "{n} h",
        "ko": "{n}시간",
    },
    "unit.d": {
        "en": "{n} d",
        "ko": "{n}일",
    },
    # -- config ---------------------------------------------------------------------------------------------------
    "config.this_machine": {
        "en": "this machine",
        "ko": "이 서버",
    },
    # -- runner ---------------------------------------------------------------------------------------------------
    "runner.command_timeout": {
        "en": "command timed out: {error}",
        "ko": "명령 시간 초과: {error}",
    },
    "runner.timeout": {
        "en": "did not finish within {timeout:g} s (check_timeout)",
        "ko": "{timeout:g}초 안에 끝나지 않았습니다 (check_timeout)",
    },
    "runner.internal": {
        "en": "internal error in the check ({kind}); see the details and the bot's log",
        "ko": "검사 내부 오류 ({kind}); details와 봇 로그를 확인하세요",
    },
    # -- diagnosis: cause summaries ---------------------------------------------------------------------------------
    "cause.target_unreachable": {
        "en": "the bot cannot see the server: {reason}",
        "ko": "봇이 서버를 볼 수 없습니다: {reason}",
    },
    "cause.target_unreachable_public": {
        "en": "the bot cannot see the server (and public_url does not answer either): {reason}",
        "ko": "봇이 서버를 볼 수 없습니다 (public_url도 응답하지 않습니다): {reason}",
    },
    "cause.nginx_config_invalid": {
        "en": "nginx config is invalid: {message}",
        "ko": "nginx 설정 문법 오류: {message}",
    },
    "cause.port_conflict": {
        "en": "port {port} is held by {who}, so {app} cannot bind it",
        "ko": "{port} 포트를 {who}이(가) 점유하고 있어 {app} 프로세스가 포트를 열 수 없습니다",
    },
    "cause.another_process": {
        "en": "another process",
        "ko": "다른 프로세스",
    },
    "cause.next_build_missing": {
        "en": "no production build in {app_dir} (.next/BUILD_ID missing): `next start` exits with "
              "\"Could not find a production build\", so PM2 cannot keep {app} up",
        "ko": "{app_dir}에 프로덕션 빌드가 없습니다 (.next/BUILD_ID 누락): `next start`가 "
              "\"Could not find a production build\"로 종료되어 PM2가 {app} 프로세스를 살려 둘 수 없습니다",
    },
    "cause.app_not_listening": {
        "en": "{summary} although {app} is online",
        "ko": "{summary} — {app} 프로세스는 online 상태인데도",
    },
    "cause.app_not_listening_pm2_unknown": {
        "en": "{summary} (whether {app} is online is unknown: pm2.status did not run)",
        "ko": "{summary} ({app} 프로세스가 online인지는 알 수 없습니다: pm2.status가 실행되지 않았습니다)",
    },
    "cause.nginx_not_running": {
        "en": "nothing answers on {url}: nginx is not running or listens elsewhere",
        "ko": "{url}에서 아무것도 응답하지 않습니다: nginx가 실행 중이 아니거나 다른 곳에서 수신 대기 중입니다",
    },
    "cause.app_websocket_missing": {
        "en": "{app} answers HTTP but not the WebSocket handshake on {ws_path}: wrong ws_path, or the app's "
              "upgrade handler is not attached",
        "ko": "{app} 프로세스가 HTTP에는 응답하지만 {ws_path} 경로의 WebSocket 핸드셰이크에는 응답하지 않습니다: "
              "ws_path가 틀렸거나 앱의 업그레이드 핸들러가 연결되지 않았습니다",
    },
    "cause.unknown": {
        "en": "failing without a known cause: {checks}",
        "ko": "알려진 원인 없이 실패 중: {checks}",
    },
    "cause.unknown_not_run": {
        "en": "checks could not run, and no known cause explains it: {checks}",
        "ko": "검사를 실행할 수 없었고, 알려진 원인으로 설명되지 않습니다: {checks}",
    },
    "cause.unknown_mixed": {
        "en": "failing without a known cause: {checks}; could not run: {errored}",
        "ko": "알려진 원인 없이 실패 중: {checks}; 실행할 수 없었음: {errored}",
    },
    # -- diagnosis: descriptive fix lines (command lines are never translated) -------------------------------------
    "fix.ssh_login": {
        "en": "{command}   # can you log in from the bot's host?",
        "ko": "{command}   # 봇 호스트에서 로그인되나요?",
    },
    "fix.trust": {
        "en": "wscheck trust {target}   # after comparing the fingerprint with ssh-keygen -lf on the server",
        "ko": "wscheck trust {target}   # 서버에서 ssh-keygen -lf로 지문을 비교한 뒤에",
    },
    "fix.trust_config": {
        "en": "{command}   # after comparing the fingerprint with ssh-keygen -lf on the server",
        "ko": "{command}   # 서버에서 ssh-keygen -lf로 지문을 비교한 뒤에",
    },
    "fix.tool_missing": {
        "en": "{bin} is not installed on the target (or not on PATH): install {tool}, or set {setting} in "
              "wscheck.toml to its absolute path",
        "ko": "대상 서버에 {bin}이(가) 설치되어 있지 않습니다 (또는 PATH에 없음): {tool}을(를) 설치하거나 "
              "wscheck.toml의 {setting}에 절대 경로를 지정하세요",
    },
    "fix.edit": {
        "en": "edit {where}",
        "ko": "{where} 수정",
    },
    "fix.the_nginx_config": {
        "en": "the nginx config",
        "ko": "nginx 설정",
    },
    "fix.confirm_port_holder": {
        "en": "ss -ltnp 'sport = :{port}'   # confirm who holds the port",
        "ko": "ss -ltnp 'sport = :{port}'   # 누가 포트를 점유하는지 확인",
    },
    "fix.kill": {
        "en": "kill {pids}   # only if that process is not needed",
        "ko": "kill {pids}   # 그 프로세스가 필요 없을 때만",
    },
    "fix.set_app_port": {
        "en": "set app_port = {port} for {target} in wscheck.toml",
        "ko": "wscheck.toml에서 {target}의 app_port = {port}로 설정",
    },
    "fix.edit_proxy_pass": {
        "en": "edit {where}: proxy_pass http://127.0.0.1:{port};",
        "ko": "{where} 수정: proxy_pass http://127.0.0.1:{port};",
    },
    "fix.restart_nginx": {
        "en": "systemctl restart nginx   # or start nginx your usual way",
        "ko": "systemctl restart nginx   # 또는 평소 방식으로 nginx 시작",
    },
    "fix.add_to_location": {
        "en": "add to {location} in {where}:",
        "ko": "{where}의 {location}에 추가:",
    },
    "fix.check_ws_path": {
        "en": "check ws_path ({ws_path}) against the app's WebSocket route",
        "ko": "ws_path({ws_path})가 앱의 WebSocket 경로와 맞는지 확인",
    },
    # -- wt-host (issue 12): bind address, hung app, reboot survival ----------------------------------------------
    "port.match.address": {
        "en": "{app} listens on {listen}, but nginx dials {dialed}: same port, another address (nothing accepts there)",
        "ko": "{app} 프로세스는 {listen}에서 수신 대기하지만 nginx는 {dialed}로 접속합니다: 포트는 같고 주소가 "
              "다릅니다 (그 주소에서는 아무도 받지 않습니다)",
    },
    "pm2.saved.unknown_app": {
        "en": "{app} is not in PM2's list: nothing to compare with the saved list",
        "ko": "{app} 앱이 PM2 목록에 없습니다: 저장된 목록과 비교할 것이 없습니다",
    },
    "pm2.saved.no_home": {
        "en": "cannot tell PM2_HOME of {app} (set pm2_home for this target)",
        "ko": "{app} 앱의 PM2_HOME을 알 수 없습니다 (이 대상에 pm2_home을 설정하세요)",
    },
    "pm2.saved.no_dump": {
        "en": "{dump} does not exist: `pm2 save` was never run, so {app} will not come back after a reboot",
        "ko": "{dump} 파일이 없습니다: `pm2 save`를 한 번도 하지 않아 재부팅 후 {app} 앱이 다시 뜨지 않습니다",
    },
    "pm2.saved.unreadable": {
        "en": "cannot read {dump}: {error}",
        "ko": "{dump} 파일을 읽을 수 없습니다: {error}",
    },
    "pm2.saved.not_in_dump": {
        "en": "{app} runs but is not in the saved list {dump}: a reboot will not bring it back",
        "ko": "{app} 앱이 실행 중이지만 저장된 목록 {dump}에 없습니다: 재부팅하면 다시 뜨지 않습니다",
    },
    "pm2.saved.stale": {
        "en": "{app} was (re)created after the last `pm2 save` ({dump} is older): a reboot brings back the old list",
        "ko": "{app} 앱이 마지막 `pm2 save` 이후에 (다시) 만들어졌습니다 ({dump}이(가) 더 오래됨): 재부팅하면 "
              "예전 목록이 돌아옵니다",
    },
    "pm2.saved.ok": {
        "en": "{app} is in the saved list {dump}",
        "ko": "{app} 앱이 저장된 목록 {dump}에 있습니다",
    },
    "pm2.startup.no_systemd": {
        "en": "systemd is not the init here ({path} is missing, a container?): no PM2 startup unit to check",
        "ko": "이 호스트의 init은 systemd가 아닙니다 ({path} 없음, 컨테이너?): 확인할 PM2 시작 유닛이 없습니다",
    },
    "pm2.startup.no_user": {
        "en": "cannot tell which user PM2 runs as (set pm2_user for this target)",
        "ko": "PM2가 어떤 사용자로 실행되는지 알 수 없습니다 (이 대상에 pm2_user를 설정하세요)",
    },
    "pm2.startup.no_systemctl": {
        "en": "systemctl not found on the target",
        "ko": "대상 서버에서 systemctl을 찾을 수 없습니다",
    },
    "pm2.startup.not_enabled": {
        "en": "no enabled {unit} systemd unit ({state}): PM2 will not start at boot",
        "ko": "활성화된 {unit} systemd 유닛이 없습니다 ({state}): 부팅할 때 PM2가 시작되지 않습니다",
    },
    "pm2.startup.stale": {
        "en": "{unit} points at files that no longer exist ({missing}): PM2 will not start at boot (node upgraded?)",
        "ko": "{unit} 유닛이 더 이상 없는 파일을 가리킵니다 ({missing}): 부팅할 때 PM2가 시작되지 않습니다 "
              "(node를 업그레이드했나요?)",
    },
    "pm2.startup.ok": {
        "en": "{unit} is enabled",
        "ko": "{unit} 유닛이 활성화되어 있습니다",
    },
    "cause.app_listen_address_mismatch": {
        "en": "{summary}",
        "ko": "{summary}",
    },
    "cause.app_unresponsive": {
        "en": "{app} is online in PM2 and port {port} accepts connections, but neither HTTP nor the WebSocket "
              "answers within {timeout:g} s (a blocked event loop?){proxy}",
        "ko": "{app} 앱은 PM2에서 online이고 {port} 포트가 연결을 받지만, HTTP도 WebSocket도 {timeout:g}초 안에 "
              "응답하지 않습니다 (이벤트 루프가 막혔나요?){proxy}",
    },
    "cause.app_unresponsive_proxy": {
        "en": "; nginx: {what}",
        "ko": "; nginx: {what}",
    },
    "cause.pm2_not_saved": {
        "en": "{summary}",
        "ko": "{summary}",
    },
    "cause.pm2_startup_missing": {
        "en": "{summary}",
        "ko": "{summary}",
    },
    "fix.bind_all": {
        "en": "make the app listen where nginx dials: HOSTNAME=0.0.0.0 (next start: -H 0.0.0.0; or "
              "server.listen(port, '0.0.0.0')), then:",
        "ko": "nginx가 접속하는 주소에서 앱이 수신 대기하게 하세요: HOSTNAME=0.0.0.0 (next start: -H 0.0.0.0; 또는 "
              "server.listen(port, '0.0.0.0')), 그다음:",
    },
    "fix.proxy_pass_address": {
        "en": "or edit {where}: proxy_pass http://{address}:{port};   # the address the app listens on",
        "ko": "또는 {where} 수정: proxy_pass http://{address}:{port};   # 앱이 수신 대기하는 주소",
    },
    "fix.pm2_startup": {
        "en": "run the line `pm2 startup` prints (as root), then `pm2 save`",
        "ko": "`pm2 startup`이 출력하는 줄을 (root로) 실행한 다음 `pm2 save`",
    },
    # -- end wt-host ------------------------------------------------------------------------------------------------
    # -- wt-nginxrt: the running nginx (version, reload, error log) and its causes ---------------------------------
    "nginx.websocket.name.http2": {
        "en": "proxy_http_version 1.1 (proxy_http_version 2 breaks WebSocket: nginx cannot upgrade over HTTP/2)",
        "ko": "proxy_http_version 1.1 (proxy_http_version 2는 WebSocket을 깨뜨립니다: nginx는 HTTP/2로 업그레이드할 수 "
              "없습니다)",
    },
    "nginxrt.v_missing": {
        "en": "{bin} -V did not run: nginx not found on the target (set nginx_bin)",
        "ko": "{bin} -V를 실행할 수 없습니다: 대상 서버에 nginx가 없습니다 (nginx_bin을 설정하세요)",
    },
    "nginxrt.v_parse": {
        "en": "cannot read the nginx version from nginx -V: {error}",
        "ko": "nginx -V에서 nginx 버전을 읽을 수 없습니다: {error}",
    },
    "nginxrt.date": {
        "en": "cannot read the target's clock: {error}",
        "ko": "대상 서버의 시각을 읽을 수 없습니다: {error}",
    },
    "nginxrt.not_running": {
        "en": "no nginx master process runs, so nothing is loaded",
        "ko": "nginx master 프로세스가 없어 불러온 설정이 없습니다",
    },
    "nginxrt.no_master": {
        "en": "cannot tell which nginx master runs this config (pid file {pid_file} unreadable or stale, and "
              "several masters run)",
        "ko": "어느 nginx master가 이 설정을 실행하는지 알 수 없습니다 (pid 파일 {pid_file}을 읽을 수 없거나 "
              "오래되었고, master가 여러 개 실행 중)",
    },
    "nginxrt.stat_failed": {
        "en": "cannot read the config files' modification times: {error}",
        "ko": "설정 파일의 수정 시각을 읽을 수 없습니다: {error}",
    },
    "nginxrt.pending": {
        "en": "{file} changed at {modified}, after nginx last (re)loaded at {loaded} ({more} more file(s)): "
              "the running nginx does not run it yet",
        "ko": "{file}이(가) {modified}에 바뀌었지만 nginx는 {loaded}에 마지막으로 (re)load했습니다 (다른 파일 "
              "{more}개): 실행 중인 nginx는 아직 그 내용을 쓰지 않습니다",
    },
    "nginxrt.loaded": {
        "en": "nginx last (re)loaded at {loaded}; none of its {files} config file(s) changed since",
        "ko": "nginx는 {loaded}에 마지막으로 (re)load했고, 그 뒤로 설정 파일 {files}개 중 바뀐 것이 없습니다",
    },
    "nginxrt.log_unreadable": {
        "en": "cannot read the nginx error log {file}: {error} (give the login user read access, see deploy/target/)",
        "ko": "nginx 에러 로그 {file}을(를) 읽을 수 없습니다: {error} (로그인 사용자에게 읽기 권한을 주세요, "
              "deploy/target/ 참고)",
    },
    "nginxrt.capacity": {
        "en": "nginx ran out of connections {count} time(s) in the last {minutes} min: {line}",
        "ko": "최근 {minutes}분 동안 nginx 연결이 {count}번 부족했습니다: {line}",
    },
    "nginxrt.log_lines": {
        "en": "{count} problem line(s) in the nginx error log in the last {minutes} min ({kinds}): evidence for "
              "the other checks",
        "ko": "최근 {minutes}분 동안 nginx 에러 로그에 문제 줄 {count}개 ({kinds}): 다른 검사의 근거",
    },
    "nginxrt.log_quiet": {
        "en": "no problem lines in the last {minutes} min ({files})",
        "ko": "최근 {minutes}분 동안 문제 줄 없음 ({files})",
    },
    "cause.nginx_wrong_server": {
        "en": "nginx answers {request} with {picked}, not with {app}, the block that proxies to the app",
        "ko": "nginx는 {request} 요청을 앱으로 프록시하는 {app}이(가) 아니라 {picked}에서 처리합니다",
    },
    "cause.nginx_ws_not_proxied": {
        "en": "nginx answers {request} itself in location {location} ({where}) with {what}: the WebSocket never "
              "reaches the app",
        "ko": "nginx가 {request} 요청에 location {location} ({where})에서 직접 {what}(으)로 응답합니다: "
              "WebSocket이 앱에 도달하지 않습니다",
    },
    "cause.static_files": {
        "en": "static files",
        "ko": "정적 파일",
    },
    "cause.status_code": {
        "en": "status {status}",
        "ko": "상태 {status}",
    },
    "cause.connection_capacity_exhausted": {
        "en": "nginx runs out of connections (worker_connections {limit}): {count} recent line(s) like {line}",
        "ko": "nginx 연결이 부족합니다 (worker_connections {limit}): 최근 {count}개 줄, 예: {line}",
    },
    "cause.nginx_reload_pending": {
        "en": "{file} changed at {modified}, after nginx last (re)loaded at {loaded} ({more} more file(s)): "
              "nginx does not run what is on disk",
        "ko": "{file}이(가) {modified}에 바뀌었지만 nginx는 {loaded}에 마지막으로 (re)load했습니다 (다른 파일 "
              "{more}개): nginx가 디스크의 설정을 실행하고 있지 않습니다",
    },
    "cause.nginx_reload_pending_live": {
        "en": "nginx was not reloaded: {file} changed at {modified}, after its last (re)load at {loaded} ({more} "
              "more file(s)); {checks} fail although the config on disk is right and the app answers directly",
        "ko": "nginx가 reload되지 않았습니다: {file}이(가) 마지막 (re)load({loaded}) 뒤인 {modified}에 바뀌었습니다 "
              "(다른 파일 {more}개); 디스크의 설정은 맞고 앱도 직접 응답하는데 {checks}이(가) 실패합니다",
    },
    "cause.nginx_config_invalid_serving": {
        "en": "nginx config on disk is invalid: {message}; the running nginx still serves its previous config, "
              "but a reload now would fail",
        "ko": "디스크의 nginx 설정에 오류가 있습니다: {message}; 실행 중인 nginx는 이전 설정으로 계속 서비스하지만, "
              "지금 reload하면 실패합니다",
    },
    "cause.with_log": {
        "en": "{summary} — nginx error log: {lines}",
        "ko": "{summary} — nginx 에러 로그: {lines}",
    },
    "fix.wrong_server": {
        "en": "make {app} answer {host} (add it to server_name, or mark its listen default_server), or fix {picked}",
        "ko": "{app}이(가) {host}에 응답하게 하거나 (server_name에 추가, 또는 listen에 default_server 지정), "
              "{picked}을(를) 고치세요",
    },
    "fix.reload_action": {
        "en": "or approve the reload-nginx action: /wscheck reload-nginx {target}",
        "ko": "또는 reload-nginx 조치를 승인하세요: /wscheck reload-nginx {target}",
    },
    # -- end wt-nginxrt ------------------------------------------------------------------------------------------
    # -- wt-sio: Socket.IO, and PM2 as the bot sees it -----------------------------------------------------------
    "probe.eio_not_open": {
        "en": "the WebSocket opened but the app did not send an Engine.IO open packet (got {got!r}): "
              "not a Socket.IO v4 server on this path?",
        "ko": "WebSocket은 열렸지만 앱이 Engine.IO open 패킷을 보내지 않았습니다 (받은 것: {got!r}): "
              "이 경로에 Socket.IO v4 서버가 없는 것 아닌가요?",
    },
    "ws.ok_engineio": {
        "en": "{url}: 101 Switching Protocols, Engine.IO open (pingInterval {interval} ms), ping/pong {rtt:.0f} ms",
        "ko": "{url}: 101 Switching Protocols, Engine.IO open (pingInterval {interval} ms), "
              "ping/pong 응답 {rtt:.0f} ms",
    },
    "ws.sessions.not_socketio": {
        "en": "ws_protocol = {protocol}: not a Socket.IO target, no sessions to check",
        "ko": "ws_protocol = {protocol}: Socket.IO 대상이 아니므로 확인할 세션이 없습니다",
    },
    "ws.sessions.handshake_status": {
        "en": "{url}: the Engine.IO polling handshake answered HTTP {status}, not 200",
        "ko": "{url}: Engine.IO polling 핸드셰이크가 200이 아니라 HTTP {status}로 응답했습니다",
    },
    "ws.sessions.not_engineio": {
        "en": "{url}: the answer is not an Engine.IO open packet (got {got!r})",
        "ko": "{url}: 응답이 Engine.IO open 패킷이 아닙니다 (받은 것: {got!r})",
    },
    "ws.sessions.unknown": {
        "en": "{n} of {polls} polling requests of one Socket.IO session got 400 \"Session ID unknown\" "
              "(instances: {instances})",
        "ko": "한 Socket.IO 세션의 polling 요청 {polls}개 중 {n}개가 400 \"Session ID unknown\"을 받았습니다 "
              "(인스턴스 {instances}개)",
    },
    "ws.sessions.status": {
        "en": "polling requests of one Socket.IO session answered: {statuses} (expected 200 x {polls})",
        "ko": "한 Socket.IO 세션의 polling 요청 응답: {statuses} (기대값: 200 x {polls})",
    },
    "ws.sessions.ok": {
        "en": "{polls} polling requests of one Socket.IO session all reached its process (instances: {instances})",
        "ko": "한 Socket.IO 세션의 polling 요청 {polls}개가 모두 그 세션의 프로세스에 도달했습니다 "
              "(인스턴스 {instances}개)",
    },
    "pm2.daemon.no_holder": {
        "en": "nothing listens on port {port}: no process whose PM2 daemon to check",
        "ko": "{port} 포트에서 수신 대기하는 프로세스가 없어 PM2 데몬을 확인할 대상이 없습니다",
    },
    "pm2.daemon.hidden": {
        "en": "the process on port {port} is not shown (ss -p shows another user's process only as root): "
              "its PM2 daemon cannot be told",
        "ko": "{port} 포트의 프로세스가 보이지 않습니다 (ss -p는 root일 때만 다른 사용자의 프로세스를 보여 줌): "
              "그 PM2 데몬을 알 수 없습니다",
    },
    "pm2.daemon.mismatch": {
        "en": "the process on port {port} (pid {pid}) runs under the PM2 daemon of user {user} with PM2_HOME "
              "{home}, not the one the bot asks (user {our_user}, PM2_HOME {our_home})",
        "ko": "{port} 포트의 프로세스(pid {pid})는 봇이 조회하는 PM2 데몬(사용자 {our_user}, "
              "PM2_HOME {our_home})이 아니라 사용자 {user}, PM2_HOME {home}의 PM2 데몬 아래에서 실행 중입니다",
    },
    "pm2.daemon.ok": {
        "en": "the process on port {port} runs under the PM2 daemon the bot asks (user {user}, PM2_HOME {home})",
        "ko": "{port} 포트의 프로세스는 봇이 조회하는 PM2 데몬(사용자 {user}, PM2_HOME {home}) 아래에서 실행 중입니다",
    },
    "pm2.daemon.no_daemon": {
        "en": "the process on port {port} was not started by a PM2 daemon",
        "ko": "{port} 포트의 프로세스는 PM2 데몬이 시작한 것이 아닙니다",
    },
    "cause.socketio_no_sticky_sessions": {
        "en": "{app} runs {instances} Socket.IO instances without sticky sessions: {summary}",
        "ko": "{app}이(가) sticky session 없이 Socket.IO 인스턴스 {instances}개로 실행 중입니다: {summary}",
    },
    "cause.pm2_binary_not_found": {
        "en": "`{bin}` is not on the non-interactive PATH of the target (exit 127), so the bot cannot ask PM2; "
              "the app itself may be fine{found}",
        "ko": "대상 서버의 비대화형 PATH에 `{bin}`이(가) 없어(exit 127) 봇이 PM2에 물어볼 수 없습니다; "
              "앱 자체는 정상일 수 있습니다{found}",
    },
    "cause.pm2_binary_found_at": {
        "en": " (a login shell finds it at {path})",
        "ko": " (로그인 셸은 {path}에서 찾습니다)",
    },
    "cause.pm2_home_mismatch": {
        "en": "{summary}: the bot sees another PM2 than the one running {app}",
        "ko": "{summary}: 봇이 {app}을(를) 실행하는 PM2가 아닌 다른 PM2를 보고 있습니다",
    },
    "fix.sio_sticky": {
        "en": "enable sticky sessions: @socket.io/pm2 (or @socket.io/sticky + @socket.io/cluster-adapter), "
              "or one PM2 process per port behind an nginx upstream with ip_hash",
        "ko": "sticky session 사용: @socket.io/pm2 (또는 @socket.io/sticky + @socket.io/cluster-adapter), "
              "또는 포트마다 PM2 프로세스 하나를 두고 nginx upstream에 ip_hash",
    },
    "fix.sio_websocket_only": {
        "en": "or connect the clients with WebSocket only: io(url, {{ transports: [\"websocket\"] }})",
        "ko": "또는 클라이언트를 WebSocket으로만 연결: io(url, {{ transports: [\"websocket\"] }})",
    },
    "fix.sio_scale_one": {
        "en": "or run one instance: {command}",
        "ko": "또는 인스턴스를 하나만 실행: {command}",
    },
    "fix.set_pm2_bin": {
        "en": "set pm2_bin = \"{path}\" for {target} in wscheck.toml",
        "ko": "wscheck.toml에서 {target}의 pm2_bin = \"{path}\"로 설정",
    },
    "fix.find_pm2_bin": {
        "en": "find pm2 in a login shell on the target (bash -lic 'command -v pm2') and set pm2_bin for {target} "
              "in wscheck.toml to that absolute path",
        "ko": "대상 서버의 로그인 셸에서 pm2 위치를 찾아(bash -lic 'command -v pm2') wscheck.toml에서 {target}의 "
              "pm2_bin을 그 절대 경로로 설정",
    },
    "fix.set_pm2_owner": {
        "en": "set pm2_user = \"{user}\" and pm2_home = \"{home}\" for {target} in wscheck.toml "
              "(or run the app under the PM2 the bot asks)",
        "ko": "wscheck.toml에서 {target}의 pm2_user = \"{user}\", pm2_home = \"{home}\"로 설정 "
              "(또는 봇이 조회하는 PM2에서 앱을 실행)",
    },
}

#: Korean check titles and descriptions; the English side is checks/registry.py's (one source of truth).
_CHECK_KO: dict[str, tuple[str, str]] = {
    "nginx.syntax": ("nginx 설정 문법", "`nginx -t`: 설정을 해석하고 불러올 수 있는지"),
    "nginx.websocket": (
        "nginx WebSocket 프록시",
        "ws_path를 처리하는 location이 HTTP/1.1, Upgrade/Connection 전달, 긴 proxy_read_timeout, "
        "proxy_buffering off로 앱에 프록시하는지",
    ),
    "pm2.status": ("PM2 프로세스", "PM2 앱이 `online`이고 pid가 있으며 크래시 루프가 아닌지"),
    "port.listen": (
        "app_port 수신 대기",
        "app_port에서 무언가가 수신 대기 중이고 그것이 PM2 앱의 프로세스 트리에 속하는지",
    ),
    "port.match": (
        "포트 일치",
        "nginx 업스트림 포트 = 앱이 실제로 수신 대기하는 포트 = app_port인지 (3000 vs 3003 문제)",
    ),
    "port.conflict": ("포트 충돌 없음", "다른 프로세스가 app_port를 점유하고 있지 않은지"),
    "next.build": ("Next.js 빌드", "프로덕션 모드에 `.next/BUILD_ID`가 있는지; 개발 모드는 감지해서 알려 줌"),
    "http.local": ("호스트 내부 HTTP", "대상 서버 안에서 127.0.0.1:app_port의 http_path로 GET"),
    "http.proxy": ("nginx 경유 HTTP", "public_url + http_path로 GET하면 nginx가 2xx/3xx로 응답하는지"),
    "ws.local": ("호스트 내부 WebSocket", "127.0.0.1:app_port + ws_path에서 101 핸드셰이크 + ping/pong"),
    "ws.proxy": ("nginx 경유 WebSocket", "public_url + ws_path에서 101 핸드셰이크 + ping/pong"),
    # wt-nginxrt
    "nginx.reload": (
        "nginx가 디스크의 설정을 실행 중",
        "`nginx -T`가 나열한 파일 중 실행 중인 nginx의 마지막 (re)load보다 새로운 것이 없는지 (worker 시작 시각)",
    ),
    "nginx.errors": (
        "nginx 에러 로그",
        "nginx가 지정한 error_log 파일의 최근 줄을 분류 (업스트림 거부/시간 초과, worker_connections, SSL "
        "핸드셰이크, 너무 큰 본문); 연결 용량 고갈이면 실패",
    ),
    "pm2.logs": ("PM2 로그", "앱의 PM2 로그 파일에서 최근 에러 줄 (비밀값은 가림)"),
    # wt-tls
    "tls.certificate": (
        "TLS 인증서",
        "https public_url일 때: 제공되는 인증서가 검증되고(기간, 이름, 체인) 만료가 가깝지 않으며, nginx가 가리키는 "
        "ssl_certificate 파일의 인증서와 같은지 (갱신 후 reload 누락 아님)",
    ),
    # wt-host
    "pm2.saved": ("PM2 목록 저장",
                  "앱이 PM2의 저장된 목록($PM2_HOME/dump.pm2)에 있고, 앱을 마지막으로 (다시) 만든 뒤에 저장되었는지"),
    "pm2.startup": ("부팅 시 PM2 시작",
                    "활성화된 pm2-<user> systemd 유닛이 있고 그 실행 파일이 존재하는지 "
                    "(systemd가 init이 아니면 건너뜀)"),
    # wt-sio
    "pm2.daemon": (
        "앱의 PM2 데몬",
        "app_port의 프로세스가 봇이 조회하는 PM2 데몬(사용자, PM2_HOME) 아래에서 실행되는지; `pm2`가 비대화형 "
        "PATH에 없으면 로그인 셸이 찾는 위치",
    ),
    "ws.sessions": (
        "Socket.IO 세션",
        "ws_protocol = \"socket.io\"일 때: 한 세션의 polling 요청이 모두 그 세션의 프로세스에 도달하는지 "
        "(400 \"Session ID unknown\" 없음: 인스턴스가 여럿이면 sticky session)",
    ),
    # wt-host2
    "pm2.restarts": ("online 중 PM2 재시작",
                     "앱이 `online`인 채로 재시작 횟수가 늘지 않는지 (max_memory_restart, watch); "
                     "이전 확인과 PM2 자체 로그로 비교"),
    "next.static": ("Next.js standalone 자산",
                    "PM2가 실행하는 standalone `server.js` 옆에 `.next/static`과 `public`이 있는지"),
    "host.memory": ("호스트 메모리", "최근 커널 OOM 강제 종료나 V8 힙 부족이 없는지; MemAvailable"),
    "host.disk": ("호스트 디스크", "app_dir, PM2 로그, nginx 로그의 파일 시스템이 disk_warn_percent(90) / "
                  "disk_fail_percent(98) 미만이고 로그에 ENOSPC가 없는지"),
    "host.fds": ("열린 파일", "앱 로그에 EMFILE이 없는지; 앱의 열린 fd와 한도"),
}

for _spec in CHECKS:
    _title_ko, _desc_ko = _CHECK_KO[_spec.id]
    MESSAGES[f"title.{_spec.id}"] = {"en": _spec.title, "ko": _title_ko}
    MESSAGES[f"check_desc.{_spec.id}"] = {"en": _spec.description, "ko": _desc_ko}

#: Every cause's description in both languages, from its row in checks/causes.py (where a cause is registered).
CAUSE_DESCRIPTIONS: dict[str, dict[str, str]] = {
    spec.id: {"en": spec.description, "ko": spec.description_ko} for spec in CAUSE_SPECS
}

for _cause, _texts in CAUSE_DESCRIPTIONS.items():
    MESSAGES[f"cause_desc.{_cause}"] = _texts


# ---------------------------------------------------------------------------------------------------------------
# Building messages (check code) and rendering them (renderers)
# ---------------------------------------------------------------------------------------------------------------

_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class Msg:
    """One message: its English text (what the checks always said) and how to say it again in any language.

    `ref` is a plain string (text that is not ours: shown as is in every language), `{"$msg": key, "params":
    {...}}`, or `{"$join": [refs], "sep": sep}`.
    """

    text: str
    ref: Any = field(default=None)

    @property
    def key(self) -> str:
        return str(self.ref["$msg"]) if isinstance(self.ref, dict) and "$msg" in self.ref else ""

    @property
    def params(self) -> dict[str, Any]:
        if isinstance(self.ref, dict) and "$msg" in self.ref:
            return dict(self.ref.get("params") or {})
        return {}


def _stored(value: Any) -> Any:
    return value.ref if isinstance(value, Msg) else value


def msg(key: str, **params: Any) -> Msg:
    """The message `key` with `params` (a param may itself be a Msg: a translated part of the sentence)."""
    template = MESSAGES[key]["en"]
    text = _format(template, {k: (v.text if isinstance(v, Msg) else v) for k, v in params.items()})
    return Msg(text, {"$msg": key, "params": {k: _stored(v) for k, v in params.items()}})


def verbatim(text: str) -> Msg:
    """Text that is not ours (a command, a log line, nginx's error): the same in every language."""
    return Msg(text, text)


def joined(items: Sequence[Msg], sep: str) -> Msg:
    """Several messages joined with `sep` (each translated on its own)."""
    return Msg(sep.join(m.text for m in items), {"$join": [m.ref for m in items], "sep": sep})


def of_result(result: CheckResult) -> Msg:
    """A check's summary as a message (its English text as reported, its key when it has one)."""
    if result.summary_key:
        return Msg(result.summary, {"$msg": result.summary_key, "params": dict(result.summary_params)})
    return verbatim(result.summary)


def _format(template: str, values: Mapping[str, Any]) -> str:
    return template.format(**values)


def render_ref(ref: Any, lang: str) -> str:
    """A stored message (see Msg.ref) in `lang`; English for a language or key the catalog lacks."""
    if isinstance(ref, dict):
        if "$msg" in ref:
            return render(str(ref["$msg"]), ref.get("params") or {}, lang)
        if "$join" in ref:
            return str(ref.get("sep", ", ")).join(render_ref(item, lang) for item in ref["$join"] or [])
    return "" if ref is None else str(ref)


def _param(value: Any, lang: str) -> Any:
    if isinstance(value, dict) and ("$msg" in value or "$join" in value):
        return render_ref(value, lang)
    return value


def render(key: str, params: Mapping[str, Any], lang: str) -> str:
    """`key` in `lang` with `params`; English when the language or the translation cannot be used."""
    entry = MESSAGES[key]
    values = {k: _param(v, lang) for k, v in params.items()}
    template = entry.get(lang) or entry["en"]
    try:
        return _format(template, values)
    except (KeyError, IndexError, ValueError, TypeError):
        if lang == "en":
            raise
        return _format(entry["en"], {k: _param(v, "en") for k, v in params.items()})


def placeholders(template: str) -> set[str]:
    """The field names a template uses (for tests: both languages must use the same ones)."""
    return {name for _, name, _, _ in _FORMATTER.parse(template) if name is not None}


# ---------------------------------------------------------------------------------------------------------------
# Localizing results
# ---------------------------------------------------------------------------------------------------------------


def _localized(text: str, key: str, params: Mapping[str, Any], lang: str) -> str:
    """`text` said in `lang`, or `text` itself (English, no key, unknown key, or a template that fails)."""
    if lang == "en" or not key or key not in MESSAGES or lang not in LANGS:
        return text
    try:
        return redact(render(key, params, lang))
    except (KeyError, IndexError, ValueError, TypeError):
        return text


def localize_result(result: CheckResult, lang: str) -> CheckResult:
    summary = _localized(result.summary, result.summary_key, result.summary_params, lang)
    return result if summary == result.summary else result.model_copy(update={"summary": summary})


def localize_cause(cause: Cause, lang: str) -> Cause:
    """A copy of `cause` with its summary and descriptive fix lines in `lang` (commands stay as they are)."""
    if lang == "en":
        return cause
    summary = _localized(cause.summary, cause.summary_key, cause.summary_params, lang)
    fix = cause.fix
    if len(cause.fix_keys) == len(cause.fix):
        fix = tuple(_localized(line, key, params, lang) for line, (key, params) in zip(cause.fix, cause.fix_keys,
                                                                                        strict=True))
    if summary == cause.summary and fix == cause.fix:
        return cause
    return cause.model_copy(update={"summary": summary, "fix": fix})


def localize_where(where: str, lang: str) -> str:
    """A target's `where` ("deploy@203.0.113.10", or "this machine" for a local target) in `lang`."""
    return render("config.this_machine", {}, lang) if where == MESSAGES["config.this_machine"]["en"] else where


def localize(report: TargetReport, lang: str) -> TargetReport:
    """A copy of `report` with check summaries, cause summaries and fix lines in `lang`."""
    if lang == "en":
        return report
    return report.model_copy(update={
        "host": localize_where(report.host, lang),
        "checks": tuple(localize_result(c, lang) for c in report.checks),
        "diagnosis": tuple(localize_cause(c, lang) for c in report.diagnosis),
    })


def check_title(check_id: str, lang: str) -> str | None:
    """The check's short title in `lang` (None for an unknown check id)."""
    key = f"title.{check_id}"
    return render(key, {}, lang) if key in MESSAGES else None


def check_description(check_id: str, lang: str) -> str | None:
    key = f"check_desc.{check_id}"
    return render(key, {}, lang) if key in MESSAGES else None


def cause_description(cause: str, lang: str) -> str | None:
    key = f"cause_desc.{cause}"
    return render(key, {}, lang) if key in MESSAGES else None


def plain_params(params: Mapping[str, Any], clean: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Params with every string passed through `clean` (the runner redacts them), nested messages included."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return clean(value) if clean else value
        if isinstance(value, dict):
            return {str(k): (v if k == "$msg" else walk(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return {str(k): walk(v) for k, v in params.items()}
