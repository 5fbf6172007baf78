"""The bot's own words in English and Korean, chosen once at startup by WSCHECK_LANG (`en` default, `ko`).

`set_language()` is called by bot/app.py (the bot) and bot/cli.py (`wscheck check` text output); everything
else asks `t(key, **params)` for the current language. What the checks and the diagnosis say lives in
checks/messages.py (checks never import bot/); renderers pass reports and causes through `localize_report()`
and `localize_cause()` before they draw them.

Not translated, on purpose: log lines (operators' logs), `--help`, JSON output (`wscheck check --json`,
`wscheck checks --json`, the audit export), the `/wscheck` grammar keywords, check and cause ids, status
words (`ok`, `FAIL`, `pending`…), commands, and text that comes from a target (log lines, nginx's errors).

Persisted English (approval outcome notes, approval state-machine messages) is said again in the current
language by `from_english()`, which matches the text against the English templates of a few known keys.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from checks import messages as check_messages
from checks.models import Cause, TargetReport

LANGS: tuple[str, ...] = ("en", "ko")

HELP_EN = """\
*Usage*: `/wscheck [ITEM...] [TARGET]`
• `/wscheck` or `/wscheck all [TARGET]`: the whole checklist (every target when none is named)
• `/wscheck ITEM [TARGET]`: one item: `nginx` (syntax + WebSocket setup), `pm2`, `port` (listen, match, conflict), \
`build`, `http`, `ws`, `logs`; check ids like `nginx.syntax` work too
• `/wscheck TARGET`: the whole checklist on that target
• `/wscheck targets`: the configured targets · `/wscheck help`: this text
• `/wscheck status`: open incidents and silences
• `/wscheck silence TARGET 30m|2h|until HH:MM` · `/wscheck unsilence TARGET`
• `/wscheck restart|reload-nginx|fix-port|rebuild [TARGET]`: propose a fix for a second person to approve
• `/wscheck history [TARGET]`: the latest remediation audit entries"""

HELP_KO = """\
*사용법*: `/wscheck [ITEM...] [TARGET]`
• `/wscheck` 또는 `/wscheck all [TARGET]`: 전체 체크리스트 (대상을 지정하지 않으면 모든 대상)
• `/wscheck ITEM [TARGET]`: 항목 하나: `nginx` (문법 + WebSocket 설정), `pm2`, `port` (수신 대기, 일치, 충돌), \
`build`, `http`, `ws`, `logs`; `nginx.syntax` 같은 검사 id도 됩니다
• `/wscheck TARGET`: 그 대상의 전체 체크리스트
• `/wscheck targets`: 설정된 대상 목록 · `/wscheck help`: 이 도움말
• `/wscheck status`: 열린 장애와 알림 중지 현황
• `/wscheck silence TARGET 30m|2h|until HH:MM` · `/wscheck unsilence TARGET`
• `/wscheck restart|reload-nginx|fix-port|rebuild [TARGET]`: 조치를 제안하고 다른 한 사람이 승인
• `/wscheck history [TARGET]`: 최근 조치 감사 기록"""

# Keys ending in `.one` / `.other` are plural forms picked by `tn()` (Korean has one form: both are the same).
MESSAGES: dict[str, dict[str, str]] = {
    # -- bot/commands.py: the /wscheck grammar ---------------------------------------------------------------------
    "commands.help": {"en": HELP_EN, "ko": HELP_KO},
    "commands.too_long": {
        "en": "that command is too long ({length} characters; at most {max})",
        "ko": "명령이 너무 깁니다 ({length}자; 최대 {max}자)",
    },
    "commands.unknown_target": {
        "en": "unknown target `{word}`",
        "ko": "알 수 없는 대상 `{word}`",
    },
    "commands.no_arguments": {
        "en": "`{word}` takes no arguments",
        "ko": "`{word}` 뒤에는 아무것도 붙일 수 없습니다",
    },
    "commands.usage_decide": {
        "en": "usage: `{word} REQUEST_ID` (the id shown on the approval message)",
        "ko": "사용법: `{word} REQUEST_ID` (승인 메시지에 표시된 id)",
    },
    "commands.one_target_max": {
        "en": "`{word}` takes at most one target",
        "ko": "`{word}`에는 대상을 하나까지만 지정할 수 있습니다",
    },
    "commands.usage_silence_target": {
        "en": "usage: `silence TARGET` 30m|2h|until HH:MM",
        "ko": "사용법: `silence TARGET` 30m|2h|until HH:MM",
    },
    "commands.usage_unsilence": {
        "en": "usage: `unsilence TARGET`",
        "ko": "사용법: `unsilence TARGET`",
    },
    "commands.unsilence_only_target": {
        "en": "`unsilence` takes only a target",
        "ko": "`unsilence`에는 대상만 지정합니다",
    },
    "commands.silence_range": {
        "en": "a silence lasts from 1m to 30d",
        "ko": "알림 중지는 1m부터 30d까지 가능합니다",
    },
    "commands.usage_silence": {
        "en": "usage: `silence TARGET 30m|2h|until HH:MM`",
        "ko": "사용법: `silence TARGET 30m|2h|until HH:MM`",
    },
    "commands.two_targets": {
        "en": "name one target at most (got `{first}` and `{second}`)",
        "ko": "대상은 하나만 지정하세요 (`{first}`, `{second}` 둘 다 지정됨)",
    },
    "commands.unknown_item": {
        "en": "unknown item `{word}`",
        "ko": "알 수 없는 항목 `{word}`",
    },
    "commands.unknown_command": {
        "en": "unknown command or item `{word}`",
        "ko": "알 수 없는 명령 또는 항목 `{word}`",
    },
    "commands.all_checks": {
        "en": "all checks",
        "ko": "전체 검사",
    },
    "commands.describe_on": {
        "en": "{what} on {target}",
        "ko": "{target}: {what}",
    },
    "commands.describe_everywhere": {
        "en": "{what} on every target",
        "ko": "모든 대상: {what}",
    },
    # -- bot/core.py ---------------------------------------------------------------------------------------------
    "core.guest": {
        "en": "Guests can't use /wscheck in this workspace.",
        "ko": "이 워크스페이스에서 게스트는 /wscheck를 사용할 수 없습니다.",
    },
    "core.other_team": {
        "en": "Only members of this workspace can use /wscheck (not Slack Connect users).",
        "ko": "이 워크스페이스의 멤버만 /wscheck를 사용할 수 있습니다 (Slack Connect 사용자는 제외).",
    },
    "core.not_allowed_user": {
        "en": "You are not on this bot's list of allowed users (WSCHECK_ALLOWED_USERS).",
        "ko": "이 봇의 허용 사용자 목록(WSCHECK_ALLOWED_USERS)에 없습니다.",
    },
    "core.channel_disabled": {
        "en": "/wscheck is not enabled in this channel (WSCHECK_ALLOWED_CHANNELS).",
        "ko": "이 채널에서는 /wscheck가 켜져 있지 않습니다 (WSCHECK_ALLOWED_CHANNELS).",
    },
    "core.rate_limited": {
        "en": "Easy there: at most {limit} commands per {window:g} s. Try again in {wait:.0f} s.",
        "ko": "잠시만요: {window:g}초마다 명령은 최대 {limit}개까지입니다. {wait:.0f}초 뒤에 다시 시도하세요.",
    },
    "core.targets_title": {
        "en": "*Targets*",
        "ko": "*대상*",
    },
    "core.target_line": {
        "en": "• `{name}` — {where}, app `{app}` on port {port}, {url}",
        "ko": "• `{name}` — {where}, 앱 `{app}` ({port} 포트), {url}",
    },
    "core.not_enabled": {
        "en": "That command is not enabled on this bot yet.",
        "ko": "이 봇에서는 아직 그 명령을 쓸 수 없습니다.",
    },
    # -- bot/render.py: reports ------------------------------------------------------------------------------------
    "render.text_head": {
        "en": "{target} ({host}): {status} in {took}",
        "ko": "{target} ({host}): {status}, {took} 소요",
    },
    "render.text_diagnosis": {
        "en": "Diagnosis (root cause first):",
        "ko": "진단 (근본 원인부터):",
    },
    "render.evidence": {
        "en": "evidence: {checks}",
        "ko": "근거: {checks}",
    },
    "render.text_fix": {
        "en": "fix:",
        "ko": "조치:",
    },
    "render.healthy": {
        "en": "No known problem: the stack looks healthy.",
        "ko": "알려진 문제 없음: 스택이 정상으로 보입니다.",
    },
    "render.no_summary": {
        "en": "_(no summary)_",
        "ko": "_(요약 없음)_",
    },
    "render.no_checks_ran": {
        "en": "_No checks ran._",
        "ko": "_실행된 검사가 없습니다._",
    },
    "render.more_checks.one": {
        "en": "_… {n} more check not shown_",
        "ko": "_… 검사 {n}개 더 있음 (생략)_",
    },
    "render.more_checks.other": {
        "en": "_… {n} more checks not shown_",
        "ko": "_… 검사 {n}개 더 있음 (생략)_",
    },
    "render.fine_checks.one": {
        "en": "{emoji} {n} check ok or skipped: {names}",
        "ko": "{emoji} 정상이거나 건너뛴 검사 {n}개: {names}",
    },
    "render.fine_checks.other": {
        "en": "{emoji} {n} checks ok or skipped: {names}",
        "ko": "{emoji} 정상이거나 건너뛴 검사 {n}개: {names}",
    },
    "render.label_warning": {
        "en": "*Warning*",
        "ko": "*경고*",
    },
    "render.label_root": {
        "en": "*Root cause*",
        "ko": "*근본 원인*",
    },
    "render.label_cause": {
        "en": "*Cause {n}*",
        "ko": "*원인 {n}*",
    },
    "render.more_fix_lines.one": {
        "en": "# … {n} more line (see `wscheck check`)",
        "ko": "# … {n}줄 더 있음 (`wscheck check`에서 확인)",
    },
    "render.more_fix_lines.other": {
        "en": "# … {n} more lines (see `wscheck check`)",
        "ko": "# … {n}줄 더 있음 (`wscheck check`에서 확인)",
    },
    "render.nothing_to_diagnose": {
        "en": "No checks ran, so there is nothing to diagnose.",
        "ko": "실행된 검사가 없어 진단할 것이 없습니다.",
    },
    "render.warnings_only": {
        "en": "No known problem, but look at the warnings above.",
        "ko": "알려진 문제는 없지만 위의 경고를 확인하세요.",
    },
    "render.unexplained": {
        "en": "Checks fail, but no known cause explains them.",
        "ko": "검사가 실패하지만 알려진 원인으로 설명되지 않습니다.",
    },
    "render.diagnosis_title": {
        "en": "*Diagnosis* (root cause first)",
        "ko": "*진단* (근본 원인부터)",
    },
    "render.more_causes_title": {
        "en": "*More causes*",
        "ko": "*추가 원인*",
    },
    "render.more_causes.one": {
        "en": "_… {n} more cause_",
        "ko": "_… 원인 {n}개 더 있음_",
    },
    "render.more_causes.other": {
        "en": "_… {n} more causes_",
        "ko": "_… 원인 {n}개 더 있음_",
    },
    "render.log_title": {
        "en": "*Recent error lines* from {check} (newest last)",
        "ko": "{check}의 *최근 에러 로그* (최신 줄이 마지막)",
    },
    "render.earlier_lines.one": {
        "en": "… {n} earlier line not shown",
        "ko": "… 이전 {n}줄 생략",
    },
    "render.earlier_lines.other": {
        "en": "… {n} earlier lines not shown",
        "ko": "… 이전 {n}줄 생략",
    },
    "render.age_min.one": {
        "en": "{n} min",
        "ko": "{n}분",
    },
    "render.age_min.other": {
        "en": "{n} mins",
        "ko": "{n}분",
    },
    "render.age_hour.one": {
        "en": "{n} hour",
        "ko": "{n}시간",
    },
    "render.age_hour.other": {
        "en": "{n} hours",
        "ko": "{n}시간",
    },
    "render.age_day.one": {
        "en": "{n} day",
        "ko": "{n}일",
    },
    "render.age_day.other": {
        "en": "{n} days",
        "ko": "{n}일",
    },
    "render.checked": {
        "en": "🕒 checked {date}",
        "ko": "🕒 {date} 검사",
    },
    "render.age_before": {
        "en": " ({age} before this message)",
        "ko": " (이 메시지보다 {age} 전)",
    },
    "render.took": {
        "en": "took {took}",
        "ko": "{took} 소요",
    },
    "render.asked_by": {
        "en": "asked by {user}",
        "ko": "요청: {user}",
    },
    "render.shared_by": {
        "en": "shared by {user}",
        "ko": "공유: {user}",
    },
    "render.button_share": {
        "en": "📣 Share to channel",
        "ko": "📣 채널에 공유",
    },
    "render.button_run_again": {
        "en": "🔁 Run again",
        "ko": "🔁 다시 실행",
    },
    "render.fallback_no_checks": {
        "en": "no checks ran",
        "ko": "실행된 검사 없음",
    },
    "render.fallback_healthy.one": {
        "en": "{n} check ok: the stack looks healthy",
        "ko": "검사 {n}개 정상: 스택이 정상으로 보입니다",
    },
    "render.fallback_healthy.other": {
        "en": "{n} checks ok: the stack looks healthy",
        "ko": "검사 {n}개 정상: 스택이 정상으로 보입니다",
    },
    "render.all_ok": {
        "en": "all ok",
        "ko": "모두 정상",
    },
    "render.targets.one": {
        "en": "{n} target",
        "ko": "대상 {n}개",
    },
    "render.targets.other": {
        "en": "{n} targets",
        "ko": "대상 {n}개",
    },
    "render.not_ok_of.one": {
        "en": "{bad} of {n} check not ok",
        "ko": "검사 {n}개 중 {bad}개 이상",
    },
    "render.not_ok_of.other": {
        "en": "{bad} of {n} checks not ok",
        "ko": "검사 {n}개 중 {bad}개 이상",
    },
    "render.more_not_ok.one": {
        "en": "_… {n} more check not ok_",
        "ko": "_… 이상 있는 검사 {n}개 더 있음_",
    },
    "render.more_not_ok.other": {
        "en": "_… {n} more checks not ok_",
        "ko": "_… 이상 있는 검사 {n}개 더 있음_",
    },
    "render.targets_ok": {
        "en": "{emoji} *{targets} ok*: {names}",
        "ko": "{emoji} *{targets} 정상*: {names}",
    },
    "render.no_targets_checked": {
        "en": "No targets were checked.",
        "ko": "검사한 대상이 없습니다.",
    },
    "render.every_target": {
        "en": "every target",
        "ko": "모든 대상",
    },
    "render.running.one": {
        "en": "⏳ Running {n} check on {where}…",
        "ko": "⏳ {where}에서 검사 {n}개 실행 중…",
    },
    "render.running.other": {
        "en": "⏳ Running {n} checks on {where}…",
        "ko": "⏳ {where}에서 검사 {n}개 실행 중…",
    },
    "render.more_lines.one": {
        "en": "_… {n} more line_",
        "ko": "_… {n}줄 더 있음_",
    },
    "render.more_lines.other": {
        "en": "_… {n} more lines_",
        "ko": "_… {n}줄 더 있음_",
    },
    "render.did_not_work": {
        "en": "That did not work.",
        "ko": "처리하지 못했습니다.",
    },
    "render.did_you_mean": {
        "en": "Did you mean {word}?",
        "ko": "혹시 {word}인가요?",
    },
    "render.targets_list": {
        "en": "*Targets*: {names}",
        "ko": "*대상*: {names}",
    },
    "render.no_targets": {
        "en": "No targets are configured (see `wscheck.toml`).",
        "ko": "설정된 대상이 없습니다 (`wscheck.toml` 참고).",
    },
    "render.more_targets.one": {
        "en": "_… {n} more target_",
        "ko": "_… 대상 {n}개 더 있음_",
    },
    "render.more_targets.other": {
        "en": "_… {n} more targets_",
        "ko": "_… 대상 {n}개 더 있음_",
    },
    "render.targets_header": {
        "en": "Targets ({n})",
        "ko": "대상 ({n})",
    },
    "render.trimmed.one": {
        "en": "… {n} more line trimmed (Slack shows at most {max} blocks)",
        "ko": "… {n}줄 생략 (Slack은 블록을 최대 {max}개까지 보여 줍니다)",
    },
    "render.trimmed.other": {
        "en": "… {n} more lines trimmed (Slack shows at most {max} blocks)",
        "ko": "… {n}줄 생략 (Slack은 블록을 최대 {max}개까지 보여 줍니다)",
    },
    "render.fix_more_lines": {
        "en": "# … {n} more lines",
        "ko": "# … {n}줄 더 있음",
    },
    # -- bot/cli.py (`wscheck check` and `wscheck checks` text output; --help and JSON stay English) ---------------
    "cli.checks_title": {
        "en": "Checks (run with `wscheck check --only ID|ITEM`):",
        "ko": "검사 목록 (`wscheck check --only ID|ITEM`으로 실행):",
    },
    "cli.causes_title": {
        "en": "Known causes (diagnosis, root cause first):",
        "ko": "알려진 원인 (진단, 근본 원인부터):",
    },
    # -- bot/cli.py `wscheck db status|migrate` (operators; wt-ops). Migration names and errors stay English ------
    "cli.db_database": {
        "en": "database: {db} ({engine})",
        "ko": "데이터베이스: {db} ({engine})",
    },
    "cli.db_none_yet": {
        "en": "schema: none yet (no file); this wscheck: version {known}; `wscheck db migrate` or the bot's first "
              "start creates it",
        "ko": "스키마: 아직 없음 (파일 없음); 이 wscheck: 버전 {known}; `wscheck db migrate` 또는 봇의 첫 시작 때 "
              "만들어집니다",
    },
    "cli.db_schema": {
        "en": "schema: version {version}; this wscheck: version {known}",
        "ko": "스키마: 버전 {version}; 이 wscheck: 버전 {known}",
    },
    "cli.db_applied": {
        "en": "applied",
        "ko": "적용됨",
    },
    "cli.db_pending": {
        "en": "pending",
        "ko": "대기",
    },
    "cli.db_up_to_date": {
        "en": "database {db}: schema version {version}, up to date",
        "ko": "데이터베이스 {db}: 스키마 버전 {version}, 최신 상태입니다",
    },
    "cli.db_migrated": {
        "en": "database {db}: migrated from schema version {before} to {after}",
        "ko": "데이터베이스 {db}: 스키마를 버전 {before}에서 {after}(으)로 올렸습니다",
    },
    # -- bot/fronts/console.py -------------------------------------------------------------------------------------
    "console.did_you_mean": {
        "en": "  did you mean {word}?",
        "ko": "  혹시 {word}인가요?",
    },
    "console.targets": {
        "en": "  targets: {names}",
        "ko": "  대상: {names}",
    },
    "console.usage_more": {
        "en": "   (type help for more)",
        "ko": "   (자세한 내용은 help 입력)",
    },
    "console.welcome": {
        "en": "wscheck console mode: type `/wscheck help` (or just `help`); `quit` to stop.",
        "ko": "wscheck 콘솔 모드: `/wscheck help`(또는 `help`)를 입력하세요; 끝내려면 `quit`.",
    },
    "console.targets_line": {
        "en": "targets: {names}",
        "ko": "대상: {names}",
    },
    "console.stdin_closed": {
        "en": "input closed; monitoring goes on; Ctrl-C stops",
        "ko": "입력이 닫혔습니다; 모니터링은 계속됩니다; Ctrl-C로 멈춥니다",
    },
    "config.builtin_defaults": {
        "en": "no wscheck.toml: using the built-in defaults (target {target}, app {app}, port {port}); "
              "see README 'Configuration' or `wscheck config`",
        "ko": "wscheck.toml이 없습니다: 내장 기본값을 사용합니다 (대상 {target}, 앱 {app}, 포트 {port}); "
              "README 'Configuration' 또는 `wscheck config`를 보세요",
    },
    "console.alert": {
        "en": "🚨 ALERT {text}",
        "ko": "🚨 알림 {text}",
    },
    "console.approve_hint": {
        "en": "  (approve with: as UXXXX approve {request} · deny: as UXXXX deny {request})",
        "ko": "  (승인: as UXXXX approve {request} · 거부: as UXXXX deny {request})",
    },
    # -- bot/fronts/slack.py ---------------------------------------------------------------------------------------
    "slack.running.one": {
        "en": "running {n} check…",
        "ko": "검사 {n}개 실행 중…",
    },
    "slack.running.other": {
        "en": "running {n} checks…",
        "ko": "검사 {n}개 실행 중…",
    },
    "slack.did_you_mean": {
        "en": "{message} (did you mean `{word}`?)",
        "ko": "{message} (혹시 `{word}`인가요?)",
    },
    "slack.lookup_failed": {
        "en": "Could not look you up in Slack ({error}); try again.",
        "ko": "Slack에서 사용자 정보를 찾지 못했습니다 ({error}); 다시 시도하세요.",
    },
    "slack.share_expired": {
        "en": "This report is no longer available to share (the bot restarted or it is old): press Run again.",
        "ko": "이 보고서는 더 이상 공유할 수 없습니다 (봇이 재시작했거나 오래된 보고서): 다시 실행을 누르세요.",
    },
    # -- bot/alerts.py ---------------------------------------------------------------------------------------------
    "alerts.unreachable": {
        "en": "the bot cannot see the server",
        "ko": "봇이 서버를 볼 수 없습니다",
    },
    "alerts.pm2_unseen": {
        "en": "the bot cannot see PM2 (the app may be fine)",
        "ko": "봇이 PM2를 볼 수 없습니다 (앱은 정상일 수 있습니다)",
    },
    "alerts.app_down": {
        "en": "the app is down",
        "ko": "앱이 다운되었습니다",
    },
    "alerts.ws_broken": {
        "en": "the WebSocket chat is broken",
        "ko": "WebSocket 채팅이 끊겼습니다",
    },
    "alerts.resolved_title": {
        "en": "✅ {target}: resolved after {duration}",
        "ko": "✅ {target}: {duration} 만에 해결됨",
    },
    "alerts.resolved_text": {
        "en": "{title} (was {cause}: {summary})",
        "ko": "{title} (이전 원인 {cause}: {summary})",
    },
    "alerts.was": {
        "en": "was: {summary}",
        "ko": "이전 원인: {summary}",
    },
    "alerts.resolved_context": {
        "en": "opened {opened} · resolved {resolved} · incident `{id}`",
        "ko": "발생 {opened} · 해결 {resolved} · 장애 `{id}`",
    },
    "alerts.since": {
        "en": "since {date}",
        "ko": "{date}부터",
    },
    "alerts.fix_title": {
        "en": "Fix",
        "ko": "조치",
    },
    "alerts.also": {
        "en": "Also: {causes}",
        "ko": "추가 원인: {causes}",
    },
    "alerts.evidence": {
        "en": "evidence: {evidence} · incident `{id}`",
        "ko": "근거: {evidence} · 장애 `{id}`",
    },
    "alerts.button_run": {
        "en": "Run checks",
        "ko": "검사 실행",
    },
    "alerts.button_silence": {
        "en": "Silence 1 h",
        "ko": "1시간 알림 중지",
    },
    "alerts.button_propose": {
        "en": "Propose {action}",
        "ko": "{action} 제안",
    },
    "alerts.unsilenced": {
        "en": "🔔 <@{user}> lifted the silence on {target}.",
        "ko": "🔔 <@{user}> 님이 {target}의 알림 중지를 해제했습니다.",
    },
    "alerts.silenced": {
        "en": "🔕 <@{user}> silenced {target} until {until}: no more messages here until then, except the resolve.",
        "ko": "🔕 <@{user}> 님이 {until}까지 {target}의 알림을 중지했습니다: 그때까지는 해결 소식 말고는 여기에 "
              "메시지를 올리지 않습니다.",
    },
    "alerts.back": {
        "en": "🔁 It's back: *{cause}* {summary}",
        "ko": "🔁 다시 발생했습니다: *{cause}* {summary}",
    },
    "alerts.cause_changed": {
        "en": "🔀 Cause changed: *{cause}* {summary} (was `{previous}`)",
        "ko": "🔀 원인이 바뀌었습니다: *{cause}* {summary} (이전 `{previous}`)",
    },
    "alerts.reminder": {
        "en": "⏰ Still open after {duration}: *{cause}* {summary}",
        "ko": "⏰ {duration}째 계속되고 있습니다: *{cause}* {summary}",
    },
    "alerts.flapping": {
        "en": "〰️ Flapping: {count} opens/closes within {duration}. Quiet until it settles.",
        "ko": "〰️ 상태가 오락가락합니다: {duration} 동안 {count}번 발생/해결. 안정될 때까지 조용히 있겠습니다.",
    },
    "alerts.flap_settled": {
        "en": "〰️ Stopped flapping: {state}.",
        "ko": "〰️ 오락가락이 멈췄습니다: {state}.",
    },
    "alerts.still_failing": {
        "en": "still failing",
        "ko": "여전히 실패 중",
    },
    "alerts.healthy_again": {
        "en": "healthy again",
        "ko": "다시 정상",
    },
    "alerts.resolved_reply": {
        "en": "✅ Resolved after {duration}: all checks pass again.",
        "ko": "✅ {duration} 만에 해결되었습니다: 모든 검사가 다시 통과합니다.",
    },
    "alerts.manual_run": {
        "en": "🔎 <@{user}> ran the checks: {result}",
        "ko": "🔎 <@{user}> 님이 검사를 실행했습니다: {result}",
    },
    "alerts.all_pass": {
        "en": "all checks pass",
        "ko": "모든 검사 통과",
    },
    "alerts.bot_was_down": {
        "en": "⚠️ The bot was down for {duration}; this incident is still open and being watched again.",
        "ko": "⚠️ 봇이 {duration} 동안 꺼져 있었습니다; 이 장애는 아직 열려 있으며 다시 지켜보고 있습니다.",
    },
    # -- wt-tls: bot/monitor.py, one notice per expiring certificate ----------------------------------------------
    "alerts.tls_expiring": {
        "en": "🔐 *{target}*: {summary}\nFix: {fix}",
        "ko": "🔐 *{target}*: {summary}\n조치: {fix}",
    },
    # -- end wt-tls ------------------------------------------------------------------------------------------------
    # -- bot/incidents.py (/wscheck status lines) and bot/monitor.py ----------------------------------------------
    "incidents.pending": {
        "en": "{target}: failing since {since} ({what}, {count} failed check run(s), not alerted yet)",
        "ko": "{target}: {since}부터 실패 중 ({what}, 검사 실패 {count}회, 아직 알리지 않음)",
    },
    "incidents.failing": {
        "en": "failing",
        "ko": "실패",
    },
    "incidents.ok": {
        "en": "{target}: ok{seen}",
        "ko": "{target}: 정상{seen}",
    },
    "incidents.last_checked": {
        "en": " (last checked {at})",
        "ko": " (마지막 검사 {at})",
    },
    "incidents.unreachable": {
        "en": "unreachable: the bot cannot see the server",
        "ko": "접속 불가: 봇이 서버를 볼 수 없습니다",
    },
    "incidents.pm2_unseen": {
        "en": "unseen: the bot cannot ask PM2",
        "ko": "확인 불가: 봇이 PM2에 물어볼 수 없습니다",
    },
    "incidents.down": {
        "en": "DOWN",
        "ko": "다운",
    },
    "incidents.line": {
        "en": "{target}: {what} since {since} — {cause}: {summary}",
        "ko": "{target}: {since}부터 {what} — {cause}: {summary}",
    },
    "incidents.flapping_healthy": {
        "en": "flapping (healthy right now)",
        "ko": "오락가락 (지금은 정상)",
    },
    "incidents.flapping": {
        "en": "flapping",
        "ko": "오락가락",
    },
    "incidents.not_announced": {
        "en": "not announced (silenced)",
        "ko": "알리지 않음 (알림 중지)",
    },
    "incidents.recovering": {
        "en": "recovering ({count} good run(s))",
        "ko": "회복 중 (정상 검사 {count}회)",
    },
    "monitor.not_checked": {
        "en": "not checked yet",
        "ko": "아직 검사 전",
    },
    "monitor.silenced_by": {
        "en": " — 🔕 silenced by <@{user}> until {until}",
        "ko": " — 🔕 <@{user}> 님이 {until}까지 알림 중지",
    },
    # -- bot/handlers.py -------------------------------------------------------------------------------------------
    "handlers.status_title": {
        "en": "*Incidents and silences*",
        "ko": "*장애와 알림 중지*",
    },
    "handlers.silenced": {
        "en": "🔕 <@{user}> silenced alerts for *{target}* until {until}.",
        "ko": "🔕 <@{user}> 님이 {until}까지 *{target}*의 알림을 중지했습니다.",
    },
    "handlers.unsilenced": {
        "en": "🔔 <@{user}> lifted the silence on *{target}*.",
        "ko": "🔔 <@{user}> 님이 *{target}*의 알림 중지를 해제했습니다.",
    },
    "handlers.not_silenced": {
        "en": "*{target}* was not silenced.",
        "ko": "*{target}*의 알림은 중지되어 있지 않았습니다.",
    },
    "handlers.gone_target": {
        "en": "That alert names a target this bot no longer has.",
        "ko": "이 알림의 대상은 이제 이 봇에 없습니다.",
    },
    "handlers.silenced_button": {
        "en": "🔕 Silenced *{target}* until {until} (the thread says who and until when).",
        "ko": "🔕 {until}까지 *{target}*의 알림을 중지했습니다 (누가 언제까지 중지했는지는 스레드에 남깁니다).",
    },
    "handlers.name_target": {
        "en": "Name the target: `/wscheck {action} TARGET` (targets: {names}).",
        "ko": "대상을 지정하세요: `/wscheck {action} TARGET` (대상: {names}).",
    },
    "handlers.requested": {
        "en": "Approval requested: `{id}` ({action} on {target}); a second person must approve.",
        "ko": "승인 요청됨: `{id}` ({target}의 {action}); 다른 한 사람이 승인해야 합니다.",
    },
    "handlers.history_title": {
        "en": "*Remediation history*",
        "ko": "*조치 기록*",
    },
    "handlers.history_title_for": {
        "en": "*Remediation history for {target}*",
        "ko": "*{target} 조치 기록*",
    },
    "handlers.nothing_yet": {
        "en": "nothing yet",
        "ko": "아직 없음",
    },
    "handlers.stale_button": {
        "en": "That button no longer matches this bot's configuration.",
        "ko": "이 버튼은 이제 봇 설정과 맞지 않습니다.",
    },
    # -- bot/remediation.py: the approval message, notes and errors ------------------------------------------------
    "remediation.title": {
        "en": "{icon} {action} on {target}: {status}",
        "ko": "{icon} {target}의 {action}: {status}",
    },
    "remediation.requested_line": {
        "en": "*{action}* on *{target}* ({host}) requested by <@{user}>",
        "ko": "*{target}* ({host})의 *{action}* — <@{user}> 님이 요청",
    },
    "remediation.why": {
        "en": "Why: {reason}",
        "ko": "이유: {reason}",
    },
    "remediation.needs": {
        "en": "Needs {quorum} approval(s) from {approvers}{so_far}. Expires {expires}.",
        "ko": "{approvers} 중 {quorum}명의 승인이 필요합니다{so_far}. 만료: {expires}.",
    },
    "remediation.so_far": {
        "en": " — so far: {votes}",
        "ko": " — 지금까지: {votes}",
    },
    "remediation.approved_by": {
        "en": "Approved by {users}",
        "ko": "승인: {users}",
    },
    "remediation.denied_by": {
        "en": "Denied by <@{user}>",
        "ko": "거부: <@{user}>",
    },
    "remediation.exit_code": {
        "en": "Exit code {code}",
        "ko": "종료 코드 {code}",
    },
    "remediation.exit_code_took": {
        "en": "Exit code {code} in {seconds:.1f} s",
        "ko": "종료 코드 {code} ({seconds:.1f}초 소요)",
    },
    "remediation.will_run": {
        "en": "Will run on {host}",
        "ko": "{host}에서 실행할 명령",
    },
    "remediation.commands_on": {
        "en": "Commands on {host}",
        "ko": "{host} 대상 명령",
    },
    "remediation.context": {
        "en": "request `{id}`",
        "ko": "요청 `{id}`",
    },
    "remediation.approve": {
        "en": "Approve",
        "ko": "승인",
    },
    "remediation.deny": {
        "en": "Deny",
        "ko": "거부",
    },
    "remediation.text": {
        "en": "{title} — requested by <@{user}>: {reason}",
        "ko": "{title} — <@{user}> 님이 요청: {reason}",
    },
    "remediation.interrupted": {
        "en": "⚠️ The bot restarted while `{id}` was {status}: it was not run again. Check the target and ask again "
              "if needed.",
        "ko": "⚠️ `{id}` 요청이 {status} 상태일 때 봇이 재시작했습니다: 다시 실행하지 않았습니다. 대상을 확인하고 "
              "필요하면 다시 요청하세요.",
    },
    "remediation.unknown_action": {
        "en": "unknown action {action}",
        "ko": "알 수 없는 조치 {action}",
    },
    "remediation.off": {
        "en": "Remediation is off: no approvers are configured. Set WSCHECK_APPROVERS (Slack user or user-group "
              "IDs) or `approvers` in the [remediation] table of wscheck.toml.",
        "ko": "조치 기능이 꺼져 있습니다: 승인자가 설정되지 않았습니다. WSCHECK_APPROVERS(Slack 사용자 또는 "
              "사용자 그룹 ID)나 wscheck.toml의 [remediation] 테이블에 `approvers`를 설정하세요.",
    },
    "remediation.by_hand": {
        "en": "requested by hand (no known problem right now)",
        "ko": "수동 요청 (지금은 알려진 문제 없음)",
    },
    "remediation.post_failed": {
        "en": "Could not post the approval request here ({error}); invite the bot to this channel or ask in the "
              "alert channel.",
        "ko": "여기에 승인 요청을 올리지 못했습니다 ({error}); 봇을 이 채널에 초대하거나 알림 채널에서 요청하세요.",
    },
    "remediation.cooldown": {
        "en": "Cooldown: {count} fixes ran on {target} in the last {hours:g} h (at most {max}). Something keeps "
              "breaking it: a human should look before another restart.",
        "ko": "쿨다운: 최근 {hours:g}시간 동안 {target}에서 조치가 {count}번 실행되었습니다 (최대 {max}번). 무언가가 "
              "계속 망가뜨리고 있습니다: 다시 재시작하기 전에 사람이 살펴봐야 합니다.",
    },
    "remediation.no_request": {
        "en": "That request does not exist (any more).",
        "ko": "그 요청은 (더 이상) 없습니다.",
    },
    "remediation.race": {
        "en": "Someone else decided this request at the same moment; look at the message.",
        "ko": "다른 사람이 같은 순간에 이 요청을 결정했습니다; 메시지를 확인하세요.",
    },
    "remediation.abort_recovered": {
        "en": "Already recovered: the checks pass now, nothing was run.",
        "ko": "이미 복구됨: 지금은 검사가 통과하므로 아무것도 실행하지 않았습니다.",
    },
    "remediation.abort_changed": {
        "en": "The PM2 process changed since the request (pid or restart count): ask again so the approver sees "
              "the current state.",
        "ko": "요청 뒤에 PM2 프로세스가 바뀌었습니다 (pid 또는 재시작 횟수): 승인자가 현재 상태를 볼 수 있도록 "
              "다시 요청하세요.",
    },
    "remediation.abort_not_applicable": {
        "en": "No longer applicable: {why}",
        "ko": "더 이상 해당하지 않음: {why}",
    },
    "remediation.abort_commands_differ": {
        "en": "The commands would differ from the approved ones (the config changed): ask again.",
        "ko": "승인된 명령과 달라집니다 (설정이 바뀜): 다시 요청하세요.",
    },
    "remediation.step_running": {
        "en": "⏳ `{label}` running…",
        "ko": "⏳ `{label}` 실행 중…",
    },
    "remediation.step_done": {
        "en": "{icon} `{label}` exit {code} in {seconds:.1f} s",
        "ko": "{icon} `{label}` exit {code} ({seconds:.1f}초 소요)",
    },
    "remediation.step_refused": {
        "en": "{label} refused to continue (exit {code}): {output}",
        "ko": "{label}: 다음 단계로 진행하지 않음 (exit {code}): {output}",
    },
    "remediation.step_failed": {
        "en": "{label} failed (exit {code}): {output}",
        "ko": "{label} 실패 (exit {code}): {output}",
    },
    "remediation.done": {
        "en": "done",
        "ko": "완료",
    },
    "remediation.verified": {
        "en": "✅ Verified healthy in {seconds:.0f} s after `{action}`.",
        "ko": "✅ `{action}` 후 {seconds:.0f}초 만에 정상 확인.",
    },
    "remediation.still_failing": {
        "en": "❌ Still failing {seconds:.0f} s after `{action}`: *{cause}* {summary}",
        "ko": "❌ `{action}` 후 {seconds:.0f}초가 지나도 여전히 실패: *{cause}* {summary}",
    },
    "remediation.allowed": {
        "en": "allowed",
        "ko": "허용",
    },
    "remediation.refused": {
        "en": "refused ({reason})",
        "ko": "거부됨 ({reason})",
    },
    # -- bot/approvals.py's sentences (its ClickResult messages, ValueErrors and outcome notes stay English in
    # the pure state machine and the audit; bot/remediation.py says them in the current language) -----------------
    "approvals.wrong_request": {
        "en": "That button belongs to a different request; nothing was changed.",
        "ko": "이 버튼은 다른 요청의 것입니다; 아무것도 바꾸지 않았습니다.",
    },
    "approvals.remediation_disabled": {
        "en": "Remediation is disabled: no approvers are configured.",
        "ko": "조치 기능이 꺼져 있습니다: 승인자가 설정되지 않았습니다.",
    },
    "approvals.other_team": {
        "en": "Only members of this workspace can decide on this request.",
        "ko": "이 워크스페이스의 멤버만 이 요청을 결정할 수 있습니다.",
    },
    "approvals.already_decided": {
        "en": "This request was already decided; it is now {status}.",
        "ko": "이 요청은 이미 결정되었습니다; 현재 상태: {status}.",
    },
    "approvals.expired": {
        "en": "This request has expired; ask again with a new request if it is still needed.",
        "ko": "이 요청은 만료되었습니다; 아직 필요하면 새로 요청하세요.",
    },
    "approvals.not_approver_approve": {
        "en": "You are not one of the approvers, so you can't approve this request.",
        "ko": "승인자가 아니므로 이 요청을 승인할 수 없습니다.",
    },
    "approvals.not_approver_deny": {
        "en": "You are not one of the approvers, so you can't deny this request.",
        "ko": "승인자가 아니므로 이 요청을 거부할 수 없습니다.",
    },
    "approvals.self_approval": {
        "en": "You can't approve your own request.",
        "ko": "자신의 요청은 승인할 수 없습니다.",
    },
    "approvals.already_voted": {
        "en": "You already approved this request; it needs a different approver.",
        "ko": "이미 이 요청을 승인했습니다; 다른 승인자가 필요합니다.",
    },
    "approvals.denied": {
        "en": "Denied: `{action}` on `{target}` will not run.",
        "ko": "거부됨: `{target}`의 `{action}` 조치를 실행하지 않습니다.",
    },
    "approvals.approved": {
        "en": "Approved: `{action}` on `{target}` will run now.",
        "ko": "승인됨: 지금 `{target}`의 `{action}` 조치를 실행합니다.",
    },
    "approvals.vote_recorded": {
        "en": "Your approval is recorded; {missing} more approver(s) needed.",
        "ko": "승인이 기록되었습니다; 승인자가 {missing}명 더 필요합니다.",
    },
    "approvals.err_disabled": {
        "en": "Remediation is disabled: no approvers are configured",
        "ko": "조치 기능이 꺼져 있습니다: 승인자가 설정되지 않았습니다",
    },
    "approvals.err_quorum": {
        "en": "Nobody can approve this: quorum {quorum} needs {quorum} approver(s) other than the requester",
        "ko": "승인할 수 있는 사람이 없습니다: 정족수 {quorum}에는 요청자 말고 승인자가 {quorum}명 필요합니다",
    },
    "approvals.err_commands": {
        "en": "Commands must list exactly what will run",
        "ko": "실행할 명령을 정확히 나열해야 합니다",
    },
    "approvals.err_empty": {
        "en": "{name} must be non-empty",
        "ko": "{name} 값이 비어 있으면 안 됩니다",
    },
    "approvals.note_expired": {
        "en": "expired at {at} UTC without a decision",
        "ko": "결정 없이 {at} UTC에 만료됨",
    },
    "approvals.note_superseded": {
        "en": "superseded by {id}",
        "ko": "{id} 요청으로 대체됨",
    },
    "approvals.note_stopped_running": {
        "en": "the bot stopped while this was running; check the target, it will not be re-run",
        "ko": "실행 중에 봇이 멈췄습니다; 대상을 확인하세요, 다시 실행하지 않습니다",
    },
    "approvals.note_restarted_approved": {
        "en": "the bot restarted before running this approved request: ask again",
        "ko": "승인된 요청을 실행하기 전에 봇이 재시작했습니다: 다시 요청하세요",
    },
    # -- bot/actions.py: why a fix is not offered, and what a human must do ----------------------------------------
    "actions.unknown_to_pm2": {
        "en": "{app} is not known to PM2, so there is nothing to restart: a human must start it (e.g. "
              "`PORT={port} pm2 start npm --name {app} -- run start`, then `pm2 save`)",
        "ko": "PM2가 {app} 프로세스를 모르므로 재시작할 것이 없습니다: 사람이 직접 시작해야 합니다 (예: "
              "`PORT={port} pm2 start npm --name {app} -- run start` 후 `pm2 save`)",
    },
    "actions.fix_port_side": {
        "en": "fix-port moves the app onto app_port; it is offered only when the app is the side that is off "
              "app_port (port.match)",
        "ko": "fix-port는 앱을 app_port로 옮깁니다; app_port에서 벗어난 쪽이 앱일 때만 제안합니다 (port.match)",
    },
    "actions.port_not_from_pm2": {
        "en": "the app's port cannot be changed from PM2 ({why}): a human must change the start command to listen "
              "on {port}",
        "ko": "PM2로는 앱 포트를 바꿀 수 없습니다 ({why}): 사람이 시작 명령을 {port} 포트에서 수신 대기하도록 "
              "바꿔야 합니다",
    },
    # -- wt-host2: the rebuild gate (bot/actions.py _rebuild_short) ------------------------------------------------
    "actions.rebuild_short_memory": {
        "en": "not starting a rebuild: the host has {available} MB of memory free (MemAvailable + swap), below "
              "rebuild_min_memory_mb = {needed} MB: `next build` could get OOM-killed and take the app with it. Free "
              "memory or add swap first",
        "ko": "다시 빌드하지 않습니다: 호스트의 여유 메모리(MemAvailable + 스왑)가 {available} MB로 "
              "rebuild_min_memory_mb = {needed} MB보다 적습니다: `next build`가 OOM으로 종료되며 앱까지 멈출 수 "
              "있습니다. 먼저 메모리를 확보하거나 스왑을 추가하세요",
    },
    "actions.rebuild_short_disk": {
        "en": "not starting a rebuild: {mount} (app_dir) has {available} MB free, below rebuild_min_disk_mb = "
              "{needed} MB: the build would fail with ENOSPC. Free disk space first",
        "ko": "다시 빌드하지 않습니다: {mount}(app_dir)의 여유 공간이 {available} MB로 rebuild_min_disk_mb = "
              "{needed} MB보다 적습니다: 빌드가 ENOSPC로 실패합니다. 먼저 디스크 공간을 확보하세요",
    },
    # -- end wt-host2 ----------------------------------------------------------------------------------------------
    "actions.unknown_action": {
        "en": "unknown action {action}",
        "ko": "알 수 없는 조치 {action}",
    },
    "actions.no_report": {
        "en": "no check report to decide from",
        "ko": "판단할 검사 보고서가 없음",
    },
    "actions.not_run": {
        "en": "port.match and pm2.status did not run",
        "ko": "port.match와 pm2.status가 실행되지 않음",
    },
    "actions.command_sets_port": {
        "en": "the start command sets the port itself ({command})",
        "ko": "시작 명령이 포트를 직접 지정함 ({command})",
    },
    "actions.listens_on_port_env": {
        "en": "the app listens on its PORT ({port})",
        "ko": "앱이 PORT({port})에서 수신 대기함",
    },
    "actions.listens_on_default": {
        "en": "no PORT set and the app listens on Next's default 3000",
        "ko": "PORT가 없고 앱이 Next 기본값 3000에서 수신 대기함",
    },
    "actions.listens_elsewhere": {
        "en": "the app listens on {listening} while PORT is {port}",
        "ko": "앱은 {listening}에서 수신 대기하는데 PORT는 {port}임",
    },
    "actions.listens_elsewhere_unset": {
        "en": "the app listens on {listening} while PORT is unset",
        "ko": "앱은 {listening}에서 수신 대기하는데 PORT가 없음",
    },
    "actions.listens_nowhere": {
        "en": "the app listens on nothing while PORT is {port}",
        "ko": "앱이 어디에서도 수신 대기하지 않는데 PORT는 {port}임",
    },
    "actions.listens_nowhere_unset": {
        "en": "the app listens on nothing while PORT is unset",
        "ko": "앱이 어디에서도 수신 대기하지 않고 PORT도 없음",
    },
    "actions.human_upgrade": {
        "en": "A human must edit the nginx site and add, in the location that proxies to the app:\n{lines}\nthen "
              "`/wscheck reload-nginx {target}`.",
        "ko": "사람이 nginx 사이트 설정을 고쳐, 앱으로 프록시하는 location에 다음을 추가해야 합니다:\n{lines}\n그다음 "
              "`/wscheck reload-nginx {target}`.",
    },
    "actions.human_timeout": {
        "en": "A human should raise proxy_read_timeout/proxy_send_timeout to 86400 in the site, then "
              "`/wscheck reload-nginx {target}`.",
        "ko": "사람이 사이트 설정에서 proxy_read_timeout/proxy_send_timeout을 86400으로 올린 뒤 "
              "`/wscheck reload-nginx {target}`을 실행해야 합니다.",
    },
    "actions.human_nginx_config": {
        "en": "A human must fix the nginx config: {summary}",
        "ko": "사람이 nginx 설정을 고쳐야 합니다: {summary}",
    },
    "actions.human_port_conflict": {
        "en": "A human must decide about the process holding the port: {summary}",
        "ko": "포트를 점유한 프로세스를 어떻게 할지 사람이 정해야 합니다: {summary}",
    },
    "actions.human_unreachable": {
        "en": "A human must restore access to the server: {summary}",
        "ko": "사람이 서버 접속을 복구해야 합니다: {summary}",
    },
    "actions.human_ports": {
        "en": "A human must align the ports: {summary}",
        "ko": "사람이 포트를 맞춰야 합니다: {summary}",
    },
    "actions.human_crash_loop": {
        "en": "A human must read the app's error log and fix the crash; a restart would only loop again.",
        "ko": "사람이 앱의 에러 로그를 읽고 크래시를 고쳐야 합니다; 재시작은 루프만 반복합니다.",
    },
    "actions.human_start_nginx": {
        "en": "A human must start nginx (check `nginx -t` first).",
        "ko": "사람이 nginx를 시작해야 합니다 (먼저 `nginx -t` 확인).",
    },
    "actions.human_look": {
        "en": "A human must look: {summary}",
        "ko": "사람이 살펴봐야 합니다: {summary}",
    },
    "actions.no_problem": {
        "en": "no known problem",
        "ko": "알려진 문제 없음",
    },
    # --- wt-rel2: reliability (issue 13) ---
    "approvals.guest": {
        "en": "Guests can't decide on remediation requests.",
        "ko": "게스트는 복구 요청을 결정할 수 없습니다.",
    },
    "approvals.not_allowed_user": {
        "en": "You are not on this bot's list of allowed users.",
        "ko": "이 봇의 허용 사용자 목록에 없습니다.",
    },
    "approvals.channel_disabled": {
        "en": "Decisions are not accepted from this channel.",
        "ko": "이 채널에서는 결정을 받지 않습니다.",
    },
    "handlers.joined": {
        "en": "`{action}` on `{target}` is already waiting for approval as `{id}` (asked by <@{user}>): your request "
              "joined it.",
        "ko": "`{target}`의 `{action}`은(는) 이미 `{id}`로 승인을 기다리고 있습니다 (<@{user}> 요청): "
              "요청이 여기에 합쳐졌습니다.",
    },
    "approvals.note_post_failed": {
        "en": "the approval message could not be posted ({error}): withdrawn, ask again",
        "ko": "승인 메시지를 게시하지 못했습니다 ({error}): 철회되었으니 다시 요청하세요",
    },
    "alerts.fix_outcome": {
        "en": "This opened right after the approved fix `{id}` (`{action}`): {outcome}",
        "ko": "승인된 수정 `{id}` (`{action}`) 직후에 열렸습니다: {outcome}",
    },
    "remediation.started": {
        "en": "started",
        "ko": "시작됨",
    },
    # --- end wt-rel2 ---
}

_STATE = {"lang": "en"}
_FORMATTER = string.Formatter()


def set_language(lang: str) -> None:
    """Choose the language of every message from now on (once, at startup)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; one of {', '.join(LANGS)}")
    _STATE["lang"] = lang


def language() -> str:
    return _STATE["lang"]


@dataclass(frozen=True, slots=True)
class Text:
    """A message not rendered yet: its English (`en`, what is stored and logged) and the current language."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, lang: str) -> str:
        return render(self.key, self.params, lang)

    @property
    def en(self) -> str:
        return self.render("en")

    def __str__(self) -> str:
        return self.render(language())


def text(key: str, **params: Any) -> Text:
    if key not in MESSAGES:
        raise KeyError(key)
    return Text(key, params)


def render(key: str, params: Mapping[str, Any], lang: str) -> str:
    """`key` in `lang` (English when a translation is missing or does not fit its params)."""
    entry = MESSAGES[key]
    values = {k: (v.render(lang) if isinstance(v, Text) else v) for k, v in params.items()}
    template = entry.get(lang) or entry["en"]
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError, TypeError):
        if lang == "en":
            raise
        return render(key, params, "en")


def t(key: str, **params: Any) -> str:
    """`key` in the current language."""
    return render(key, params, language())


def en(key: str, **params: Any) -> str:
    return render(key, params, "en")


def tn(key: str, n: int, **params: Any) -> str:
    """A plural message: `key.one` for exactly one, `key.other` otherwise (with `n` as a param)."""
    return t(f"{key}.{'one' if n == 1 else 'other'}", n=n, **params)


def help_text() -> str:
    return t("commands.help")


def localize_report(report: TargetReport) -> TargetReport:
    """The report with check summaries, causes and fix lines in the current language."""
    return check_messages.localize(report, language())


def localize_cause(cause: Cause) -> Cause:
    return check_messages.localize_cause(cause, language())


def unit(key: str, n: int) -> str:
    """A duration part ("unit.min" -> "5 min" / "5분"), from the checks' catalog."""
    return check_messages.render(key, {"n": n}, language())


def localize_where(where: str) -> str:
    return check_messages.localize_where(where, language())


def check_title(check_id: str) -> str:
    return check_messages.check_title(check_id, language()) or check_id


# -- persisted English said again ---------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _pattern(template: str) -> re.Pattern[str]:
    """A regex that matches what `template` renders to, one named group per field (repeats must be equal)."""
    parts: list[str] = []
    seen: set[str] = set()
    for literal, name, _, _ in _FORMATTER.parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


def _fill(template: str, values: Mapping[str, str]) -> str:
    """`template` with captured (already formatted) values: format specs are not applied again."""
    out: list[str] = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, ""))
    return "".join(out)


def from_english(english: str, keys: Iterable[str], *, nested: tuple[str, ...] = ("why",)) -> str:
    """`english` (rendered from one of `keys` in English, maybe long ago) in the current language.

    Params named in `nested` are themselves looked up among `keys` (a note that quotes another message, which may
    quote another: each level is a shorter text, so this ends). Text that matches none of the keys is returned
    unchanged.
    """
    lang = language()
    if lang == "en":
        return english
    keys = tuple(keys)
    for key in keys:
        match = _pattern(MESSAGES[key]["en"]).fullmatch(english)
        if match is None:
            continue
        values = {name: (from_english(value, keys, nested=nested) if name in nested else value)
                  for name, value in match.groupdict().items()}
        return _fill(MESSAGES[key].get(lang) or MESSAGES[key]["en"], values)
    return english
