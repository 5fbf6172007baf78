"""The causes the diagnosis can name and the fixes the bot can run: one row each, everything else derives.

Why one table: the knowledge about one cause used to be spread over five places (the id list of the
diagnosis, its descriptions, the cause -> action map, the human-step if-chain and the incident kind), and the
fix words over four (the grammar, approvals, actions and the reserved words). Now the diagnosis' `CAUSES`,
`checks.messages`' `cause_desc.*` keys, `bot.remediation.actions`' `ACTION_FOR_CAUSE` and `human_step`, the incident
machine's rank and kind, the `/wscheck` grammar's fix words, approvals' `ACTIONS` and the reserved target names
all read these two tables (tests/unit/test_cause_registry.py keeps them complete and consistent).

Pure data, next to `checks.registry`'s CheckSpec list: `checks/` and the pure modules of `bot/` import it, it
imports nothing of either (`bot.i18n` keys are named as plain strings and checked by a test).

Cause ids and fix names are a public interface (alerts, remediation, the store, the `/wscheck` grammar):
never rename one. Adding a cause: docs/architecture.md, "Adding a cause".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from checks.models import Status

IncidentKind = Literal["unreachable", "down"]


@dataclass(frozen=True, slots=True)
class FixSpec:
    """A fix the bot may run after approval; `name` is the `/wscheck` word that requests it.

    What it runs on a target is `bot.remediation.actions.plan`; here only what the grammar, approvals and the help need.
    """

    name: str
    #: Its progress goes to the thread (a build takes minutes).
    long: bool = False


#: The allow-listed fixes, in the order the help and the grammar list them.
FIXES: tuple[FixSpec, ...] = (
    FixSpec("restart"),
    FixSpec("reload-nginx"),
    FixSpec("fix-port"),
    FixSpec("rebuild", long=True),
)
FIX_NAMES: tuple[str, ...] = tuple(f.name for f in FIXES)

#: The human step of a cause that names none (and of a cause whose fix the bot ends up not offering).
HUMAN_LOOK = "actions.human_look"


@dataclass(frozen=True, slots=True)
class CauseSpec:
    """Everything about one cause that is not its rule (checks/diagnosis.py) or its summaries (checks/messages.py).

    The position in CAUSE_SPECS is the cause's rank: root first, the order the rules run in and the order the
    incident machine uses to let a more fundamental cause replace the headline.
    """

    id: str
    #: One line for `wscheck checks`, the README and help: English (also the `--json` text) and Korean.
    description: str
    description_ko: str
    #: The severity a rule gives it unless it says otherwise (`unknown` takes its first check's).
    severity: Status = Status.FAIL
    #: "unreachable": the bot cannot see (the server, or PM2 on it); "down": the app is down (the incident's wording).
    incident_kind: IncidentKind = "down"
    #: The FIXES name the bot proposes for it (after approval), or None when a person must act.
    fix: str | None = None
    #: The bot.i18n key telling a person what to do (params: summary, target, lines) when the bot does not fix it.
    human_step: str = HUMAN_LOOK
    #: Where the cause is produced when no rule of checks.diagnosis.RULES names it ("" = by a rule there).
    produced_by: str = ""


CAUSE_SPECS: tuple[CauseSpec, ...] = (
    CauseSpec(
        "target_unreachable",
        "the bot cannot reach the server (SSH or network), so it cannot see the stack",
        "봇이 서버에 접속할 수 없어(SSH 또는 네트워크) 스택을 볼 수 없습니다",
        severity=Status.ERROR, incident_kind="unreachable", human_step="actions.human_unreachable",
    ),
    # wt-sio: the bot cannot ask PM2 at all; before every rule that reads pm2.status.
    CauseSpec(
        "pm2_binary_not_found",
        "`pm2` is not on the target's non-interactive PATH (nvm): the bot cannot ask PM2, the app may be fine",
        "대상 서버의 비대화형 PATH에 `pm2`가 없습니다(nvm): 봇이 PM2에 물어볼 수 없으며 앱은 정상일 수 있습니다",
        # wt-host3: "we cannot see", never "the app is down" (issue 12 item 7).
        severity=Status.ERROR, incident_kind="unreachable",
    ),
    CauseSpec(
        "nginx_config_invalid",
        "`nginx -t` fails: the next reload or restart of nginx will fail",
        "`nginx -t` 실패: 다음 nginx reload나 restart가 실패합니다",
        human_step="actions.human_nginx_config",
    ),
    # wt-sio: a "foreign" holder of the port and an empty `pm2 jlist` are the app under another PM2.
    CauseSpec(
        "pm2_home_mismatch",
        "the app runs under a PM2 daemon of another user or PM2_HOME than the one the bot asks",
        "앱이 봇이 조회하는 것과 다른 사용자 또는 PM2_HOME의 PM2 데몬 아래에서 실행 중입니다",
    ),
    CauseSpec(
        "nginx_wrong_server",
        "the public host lands on another nginx server block than the one that proxies to the app",
        "공개 호스트가 앱으로 프록시하는 server 블록이 아닌 다른 nginx server 블록으로 갑니다",
    ),
    CauseSpec(
        "nginx_ws_not_proxied",
        "nginx answers ws_path itself (a status or static files): it never reaches the app",
        "nginx가 ws_path에 직접 응답합니다 (상태 코드 또는 정적 파일): 앱에 도달하지 않습니다",
    ),
    CauseSpec(
        "connection_capacity_exhausted",
        "nginx runs out of connections (`worker_connections are not enough`)",
        "nginx 연결이 부족합니다 (`worker_connections are not enough`)",
    ),
    CauseSpec(
        "app_outside_pm2",
        "the app answers on app_port but runs outside PM2 (started by hand or by another manager): nothing "
        "restarts it after a crash or a reboot",
        "앱이 app_port에서 응답하지만 PM2 밖에서 실행 중입니다 (직접 시작했거나 다른 관리자): 충돌이나 재부팅 후 "
        "아무것도 다시 시작하지 않습니다",
        severity=Status.WARN,
    ),
    CauseSpec(
        "port_conflict",
        "another process holds the app port, so the app cannot bind it (EADDRINUSE)",
        "다른 프로세스가 앱 포트를 점유하고 있어 앱이 포트를 열 수 없습니다 (EADDRINUSE)",
        human_step="actions.human_port_conflict",
    ),
    # wt-host2: the host under the app (before the app-down causes they explain)
    CauseSpec(
        "host_out_of_memory",
        "the kernel OOM killer or the V8 heap limit killed the app or its build",
        "커널 OOM killer 또는 V8 힙 한도 때문에 앱이나 빌드가 강제 종료되었습니다",
    ),
    CauseSpec(
        "host_disk_full",
        "a file system of the app, the PM2 logs or nginx's logs is (nearly) full, or writes fail with ENOSPC",
        "앱, PM2 로그 또는 nginx 로그의 파일 시스템이 (거의) 가득 찼거나 쓰기가 ENOSPC로 실패합니다",
    ),
    CauseSpec(
        "process_fd_exhausted",
        "the app ran out of file descriptors (EMFILE): its open files hit its limit",
        "앱의 파일 디스크립터가 바닥났습니다 (EMFILE): 열린 파일이 한도에 닿았습니다",
    ),
    CauseSpec(
        "next_build_missing",
        "production mode without `.next/BUILD_ID`: `next start` exits at once",
        "프로덕션 모드인데 `.next/BUILD_ID`가 없음: `next start`가 바로 종료됩니다",
        fix="rebuild",
    ),
    CauseSpec(
        "next_static_assets_missing",
        "the standalone server runs without `.next/static` or `public` next to it: pages load, assets 404",
        "standalone 서버 옆에 `.next/static` 또는 `public`이 없습니다: 페이지는 뜨지만 자산은 404",
    ),
    CauseSpec(
        "pm2_crash_loop",
        "PM2 shows the app online but it keeps crashing and restarting",
        "PM2에는 online으로 보이지만 앱이 계속 죽고 재시작됩니다",
        human_step="actions.human_crash_loop",
    ),
    CauseSpec(
        "pm2_restart_loop_online",
        "PM2 shows the app online, but keeps restarting it (max_memory_restart, watch)",
        "PM2에는 online으로 보이지만 계속 재시작합니다 (max_memory_restart, watch)",
    ),
    CauseSpec(
        "pm2_not_online",
        "the PM2 app is not `online` (stopped, errored, waiting restart, or missing)",
        "PM2 앱이 `online` 상태가 아닙니다 (stopped, errored, waiting restart 또는 없음)",
        fix="restart",
    ),
    CauseSpec(
        "app_listen_address_mismatch",
        "the app listens on app_port, but not on the address nginx dials (::1 vs 127.0.0.1, LAN IP vs loopback)",
        "앱이 app_port에서 수신 대기하지만 nginx가 접속하는 주소에서는 아닙니다 (::1 vs 127.0.0.1, LAN IP vs 루프백)",
    ),
    CauseSpec(
        "port_mismatch",
        "nginx proxies to one port, the app listens on another (the 3000-vs-3003 bug)",
        "nginx가 프록시하는 포트와 앱이 실행 중인 포트가 다릅니다 (3000 vs 3003 문제)",
        fix="fix-port", human_step="actions.human_ports",
    ),
    CauseSpec(
        "app_port_misconfigured",
        "nginx and the app agree on a port, but wscheck's app_port is different",
        "nginx와 앱은 같은 포트를 쓰지만 wscheck의 app_port가 다릅니다",
        severity=Status.WARN,
    ),
    CauseSpec(
        "app_unresponsive",
        "PM2 says online and the port accepts, but the app answers neither HTTP nor WebSocket (hung)",
        "PM2는 online이고 포트도 연결을 받지만 앱이 HTTP에도 WebSocket에도 응답하지 않습니다 (멈춤)",
        fix="restart",
    ),
    CauseSpec(
        "app_not_listening",
        "PM2 says online but nothing listens on the app port",
        "PM2는 online이라고 하지만 앱 포트에서 수신 대기하는 프로세스가 없습니다",
        fix="restart",
    ),
    CauseSpec(
        "tls_certificate_not_reloaded",
        "the certificate file nginx names was renewed, but nginx still serves the old one",
        "nginx가 가리키는 인증서 파일은 갱신되었지만 nginx는 여전히 이전 인증서를 제공합니다",
        severity=Status.WARN, fix="reload-nginx",
    ),
    CauseSpec(
        "tls_certificate_invalid",
        "the served certificate fails verification: expired, not yet valid, wrong name or untrusted chain",
        "제공되는 인증서가 검증에 실패합니다: 만료, 유효 기간 전, 이름 불일치 또는 신뢰할 수 없는 체인",
    ),
    CauseSpec(
        "tls_certificate_expiring",
        "the served certificate expires within tls_expiry_warning days (14 by default)",
        "제공되는 인증서가 tls_expiry_warning일(기본 14일) 안에 만료됩니다",
        severity=Status.WARN,
    ),
    CauseSpec(
        "nginx_not_running",
        "nothing answers on public_url: nginx is down or listens elsewhere",
        "public_url에서 아무것도 응답하지 않습니다: nginx가 꺼져 있거나 다른 곳에서 수신 대기 중입니다",
        human_step="actions.human_start_nginx",
    ),
    CauseSpec(
        "ws_upgrade_redirected",
        "the WebSocket upgrade request gets a 3xx redirect, which browsers do not follow",
        "WebSocket 업그레이드 요청이 3xx 리다이렉트를 받습니다: 브라우저는 따라가지 않습니다",
    ),
    CauseSpec(
        "nginx_upgrade_headers_missing",
        "the nginx location lacks the WebSocket upgrade setup",
        "nginx location에 WebSocket 업그레이드 설정이 없습니다",
        human_step="actions.human_upgrade",
    ),
    CauseSpec(
        "app_websocket_missing",
        "the app answers HTTP but not the WebSocket handshake on ws_path",
        "앱이 HTTP에는 응답하지만 ws_path의 WebSocket 핸드셰이크에는 응답하지 않습니다",
    ),
    CauseSpec(
        "ws_path_routing_mismatch",
        "nginx passes ws_path to the app as another path (a URI part in proxy_pass replaces the matched prefix)",
        "nginx가 ws_path를 다른 경로로 앱에 전달합니다 (proxy_pass의 URI 부분이 일치한 접두사를 바꿉니다)",
    ),
    CauseSpec(
        "socketio_no_sticky_sessions",
        "Socket.IO on several instances without sticky sessions: polling gets 400 \"Session ID unknown\"",
        "sticky session 없이 여러 인스턴스에서 Socket.IO 실행: polling 요청이 400 \"Session ID unknown\"을 받습니다",
    ),
    CauseSpec(
        "nginx_ws_timeout_short",
        "nginx cuts idle WebSockets after proxy_read_timeout (60 s by default)",
        "proxy_read_timeout(기본 60초)이 지나면 nginx가 조용한 WebSocket을 끊습니다",
        severity=Status.WARN, human_step="actions.human_timeout",
    ),
    CauseSpec(
        "nginx_reload_pending",
        "a config file is newer than the running nginx's last reload: what runs is not on disk",
        "설정 파일이 실행 중인 nginx의 마지막 reload보다 새롭습니다: 실행 중인 설정이 디스크의 것과 다릅니다",
        severity=Status.WARN, fix="reload-nginx",
    ),
    CauseSpec(
        "pm2_not_saved",
        "the running PM2 list differs from the saved dump: the app will not come back after a reboot",
        "실행 중인 PM2 목록이 저장된 dump와 다릅니다: 재부팅 후 앱이 다시 뜨지 않습니다",
        severity=Status.WARN,
    ),
    CauseSpec(
        "pm2_startup_missing",
        "no enabled pm2-<user> systemd unit (or one pointing at a removed node): PM2 will not start at boot",
        "활성화된 pm2-<user> systemd 유닛이 없습니다 (또는 지워진 node를 가리킴): 부팅할 때 PM2가 시작되지 않습니다",
        severity=Status.WARN,
    ),
    CauseSpec(
        "unknown",
        "checks fail, but no known cause explains them",
        "검사가 실패하지만 알려진 원인으로 설명되지 않습니다",
    ),
)

CAUSE_BY_ID: dict[str, CauseSpec] = {c.id: c for c in CAUSE_SPECS}
CAUSE_IDS: tuple[str, ...] = tuple(c.id for c in CAUSE_SPECS)

assert len(CAUSE_BY_ID) == len(CAUSE_SPECS), "duplicate cause id in CAUSE_SPECS"
assert all(c.fix is None or c.fix in FIX_NAMES for c in CAUSE_SPECS), "a cause names a fix that is not in FIXES"
