"""The Slack front: Bolt AsyncApp over Socket Mode (default) or HTTP. Listeners only translate.

Every listener acks at once (Slack gives 3 s) and moves the work to a background task; answers go
through `response_url`, so reports reach people in channels the bot is not a member of. The Web API
base URL comes from SLACK_API_URL for everything, Socket Mode included (GovSlack, proxies, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.chat import commands as cmd
from bot.chat.core import Bot, Requester, Responder
from bot.i18n import t, tn
from bot.i18n import text as i18n_text
from bot.settings import Settings
from checks.models import TargetReport
from wsmsg import Msg

log = logging.getLogger(__name__)

#: How long a listener may wait for users.info before acking anyway (Slack's ack deadline is 3 s).
USER_LOOKUP_BUDGET = 1.2
USER_CACHE_TTL = 600.0
REPORT_CACHE = 200
#: response_url posts: attempts before falling back to the Web API, and the first delay between them (doubling).
RESPOND_ATTEMPTS = 3
RESPOND_DELAY = 0.5
#: Socket Mode envelope ids remembered to drop re-deliveries (Slack retries an envelope whose ack was late).
SEEN_ENVELOPES = 2000
#: At most this many separate report messages for one request; more targets get one compact message.
MAX_SEPARATE_REPORTS = 4

Respond = Callable[..., Awaitable[Any]]
T = TypeVar("T")


#: Bolt's own logger, quiet below ERROR: it warns at every start that it ignores SLACK_BOT_TOKEN from the
#: environment because we hand it a client (built from that very token, to set SLACK_API_URL).
_BOLT_LOG = logging.getLogger("wscheck.bolt")
_BOLT_LOG.setLevel(logging.ERROR)


class StartupError(Exception):
    """The front cannot start (bad token, missing app token…); one line for the operator."""


class StartupCancelled(Exception):
    """SIGTERM arrived while the front was still waiting for Slack: a clean stop, not an error."""


#: Slack's answers at startup that only a human can fix (a new token, a reinstalled app): exit 78 (EX_CONFIG),
#: which the systemd unit does not restart. Everything else — 5xx, 429, timeouts, refused connections, an unknown
#: error code — is a blip: retried with backoff, forever, and logged (issue 13: a 500 at boot stopped the service).
FATAL_AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type",
})
#: Backoff between startup attempts: doubles from the first delay up to the cap.
STARTUP_FIRST_DELAY = 1.0
STARTUP_MAX_DELAY = 60.0


def startup_delay(attempt: int) -> float:
    """Seconds before startup attempt `attempt + 1` (attempt counts failures so far, from 0)."""
    return min(STARTUP_MAX_DELAY, STARTUP_FIRST_DELAY * 2.0 ** min(attempt, 16))


def make_client(settings: Settings) -> AsyncWebClient:
    """One Web API client for the whole app, retrying 429 (Retry-After), 5xx and connection errors."""
    assert settings.slack_bot_token is not None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=max(1, round(settings.slack_timeout)),
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
        ],
    )


@dataclass
class _Shared:
    reports: list[TargetReport]
    command: cmd.RunChecks
    requested_by: str


class SlackResponder(Responder):
    """Answers one request through its response_url (ephemeral to the requester)."""

    def __init__(self, front: SlackFront, respond: Respond, who: Requester) -> None:
        self.front = front
        self.respond = respond
        self.who = who
        self.replace = True
        self.lang = front.settings.lang

    async def _send(self, *, text: str, blocks: list[dict[str, Any]], **extra: Any) -> None:
        if not self.replace:
            extra.setdefault("response_type", "ephemeral")
        await self._deliver(text=text, blocks=blocks, replace_original=self.replace, **extra)

    async def _deliver(self, *, text: str, blocks: list[dict[str, Any]], **args: Any) -> None:
        """Post through response_url; retry a 5xx, a 429 or a lost connection, then fall back to the Web API
        (an ephemeral message to the requester, or a channel message for an announcement) — never silently lost:
        a 500 used to leave the requester at "running N checks…" for good (issue 13)."""
        problem = ""
        for attempt in range(RESPOND_ATTEMPTS):
            try:
                response = await self.respond(text=text, blocks=blocks, **args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = int(getattr(response, "status_code", 200) or 200)
                if status < 400:
                    return
                problem = f"HTTP {status}"
                if status < 500 and status != 429:
                    break  # expired or used up: retrying cannot help
            if attempt + 1 < RESPOND_ATTEMPTS:
                await asyncio.sleep(RESPOND_DELAY * 2 ** attempt)
        log.warning("response_url post for %s failed (%s); sending it through the Web API instead",
                    self.who.user_id, problem)
        try:
            if args.get("response_type") == "in_channel":
                await self.front.client.chat_postMessage(channel=self.who.channel_id, text=text, blocks=blocks)
            else:
                await self.front.client.chat_postEphemeral(channel=self.who.channel_id, user=self.who.user_id,
                                                           text=text, blocks=blocks)
        except Exception as exc:
            log.error("answer to %s lost: response_url failed (%s) and so did the Web API (%s: %s)",
                      self.who.user_id, problem, type(exc).__name__, exc)

    async def progress(self, description: Msg, *, count: int, target: str | None) -> None:
        await self._send(text=tn("slack.running", count, lang=self.lang),
                         blocks=render.progress_blocks(description.render(self.lang), count=count, target=target,
                                                       requested_by=self.who.user_id, lang=self.lang))

    async def reports(self, reports: Sequence[TargetReport], *, command: cmd.RunChecks) -> None:
        now = datetime.now(UTC)
        share_id = self.front.remember(list(reports), command, self.who.user_id)
        run_again = cmd.as_text(command)
        if len(reports) > MAX_SEPARATE_REPORTS:
            blocks = render.multi_report_blocks(reports, requested_by=self.who.user_id, now=now,
                                                run_again=run_again, share=True, lang=self.lang)
            text = "\n".join(render.report_fallback(r, lang=self.lang) for r in reports)[:3000]
            await self._send(text=text, blocks=_with_share_id(blocks, share_id))
            return
        for report in reports:
            extra = self.front.bot.report_buttons(report) if self.front.bot.report_buttons else []
            blocks = render.report_blocks(report, requested_by=self.who.user_id, now=now, run_again=run_again,
                                          share=True, extra_actions=extra, lang=self.lang)
            await self._send(text=render.report_fallback(report, lang=self.lang), blocks=_with_share_id(blocks,
                                                                                                        share_id))
            self.replace = False

    async def invalid(self, problem: cmd.Invalid, *, targets: Sequence[str]) -> None:
        message = problem.message.render(self.lang)
        said = message if not problem.suggestion else \
            i18n_text("slack.did_you_mean", message=message, word=problem.suggestion).render(self.lang)
        usage = i18n_text("commands.help").render(self.lang) if problem.show_usage else None
        await self._send(text=said, blocks=render.error_blocks(
            message, suggestion=problem.suggestion, usage=usage, targets=targets if problem.show_targets else (),
            lang=self.lang))

    async def text(self, text: Msg) -> None:
        said = text.render(self.lang)
        await self._send(text=said[:3000], blocks=render.help_blocks(said, lang=self.lang))

    async def announce(self, text: Msg) -> None:
        said = text.render(self.lang)
        await self._deliver(text=said[:3000], blocks=render.help_blocks(said, lang=self.lang),
                            response_type="in_channel",
                            replace_original=False)


def malformed_body(body: bytes, content_type: str) -> str | None:
    """Why a Slack HTTP request body cannot be parsed, or None. Checked before Bolt sees it: Bolt parses before it
    verifies the signature, so an unsigned POST with a broken `payload` was a 500 and a traceback per request."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type == "application/json":
        try:
            json.loads(text or "null")
        except ValueError:
            return "body is not JSON"
        return None
    if "payload" in (form := parse_qs(text, keep_blank_values=True)):
        try:
            json.loads(form["payload"][0])
        except ValueError:
            return "payload is not JSON"
    return None


@web.middleware
async def _reject_malformed(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
    if request.method == "POST":
        body = await request.read()  # cached by aiohttp: Bolt reads it again
        problem = malformed_body(body, request.content_type)
        if problem is not None:
            log.warning("HTTP mode: 400 for a malformed request from %s: %s", request.remote, problem)
            return web.Response(status=400, text="malformed request\n")
    return await handler(request)


def _with_share_id(blocks: list[dict[str, Any]], share_id: str) -> list[dict[str, Any]]:
    """Point the Share button at the cached report (its value is only an opaque id)."""
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == render.ACTION_SHARE:
                element["value"] = share_id
    return blocks


class SlackFront:
    def __init__(self, bot: Bot, settings: Settings, *, http: bool = False) -> None:
        self.bot = bot
        self.settings = settings
        self.lang = settings.lang
        self.http = http or settings.http
        self.client = make_client(settings)
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}
        self._groups: dict[str, tuple[float, set[str]]] = {}
        self._shared: OrderedDict[str, _Shared] = OrderedDict()
        self._envelopes: OrderedDict[str, None] = OrderedDict()
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None
        self.team_id = ""
        self.bot_user_id = ""
        self.app = AsyncApp(
            client=self.client,
            signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret
            else "socket-mode-has-no-signing-secret",
            request_verification_enabled=self.http,
            process_before_response=False,
            logger=_BOLT_LOG,
        )
        self.app.command("/wscheck")(self.on_command)
        # One listener for every button, dispatching on the action id at click time: a feature may register its
        # buttons (bot.actions) after the front is built, and an unknown id is acked and logged, never left unanswered.
        self.app.action(re.compile(r".+"))(self.on_action)
        self.app.error(self.on_error)

    # -- lifecycle -------------------------------------------------------------------------------

    async def _patient(self, call: Callable[[], Awaitable[T]], *, what: str, setting: str,
                       stop: asyncio.Event | None) -> T:
        """`call()` until it succeeds: StartupError only for what a human must fix, otherwise log and back off."""
        attempt = 0
        while True:
            try:
                return await call()
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error in FATAL_AUTH_ERRORS:
                    raise StartupError(f"{setting} was rejected by Slack ({error}): copy the token again") from None
                reason = f"Slack answered {getattr(exc.response, 'status_code', '?')} {error}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiohttp errors, OSError (refused), TimeoutError: Slack or the network blinked
                reason = f"cannot reach Slack at {self.settings.slack_api_url}: {type(exc).__name__}: {exc}"
            delay = startup_delay(attempt)
            attempt += 1
            log.warning("startup: %s failed (%s); attempt %d, retrying in %.0f s", what, reason, attempt, delay)
            if stop is None:
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
                raise StartupCancelled(what)

    async def start(self, stop: asyncio.Event | None = None) -> None:
        if not self.http and self.settings.slack_app_token is None:
            raise StartupError(
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor --http / WSCHECK_HTTP=true "
                "(HTTP mode): set one (see README 'Connect to Slack in 5 minutes')"
            )
        if self.http and self.settings.slack_signing_secret is None:
            raise StartupError("HTTP mode needs SLACK_SIGNING_SECRET to verify that requests come from Slack")
        auth = await self._patient(self.client.auth_test, what="auth.test", setting="SLACK_BOT_TOKEN", stop=stop)
        self.team_id = str(auth.get("team_id") or "")
        self.bot_user_id = str(auth.get("user_id") or "")
        self.bot.access.bot_team_id = self.team_id
        if self.http:
            web_app = self.app.web_app(path="/slack/events", port=self.settings.http_port)
            web_app.middlewares.append(_reject_malformed)
            self._runner = web.AppRunner(web_app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
            await site.start()
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
            log.info("Slack HTTP mode: listening on http://%s:%s/slack/events", self.settings.http_host,
                     self.bound_port)
        else:
            assert self.settings.slack_app_token is not None
            app_token = self.settings.slack_app_token.get_secret_value()
            # slack_sdk's Socket Mode client retries a failed connect forever, a rejected app token included: ask
            # apps.connections.open once ourselves, so a bad token is exit 78 and a blip is retried and logged.
            await self._patient(lambda: self.client.apps_connections_open(app_token=app_token),
                                what="apps.connections.open", setting="SLACK_APP_TOKEN", stop=stop)
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            listeners = self._socket.client.socket_mode_request_listeners
            listeners[:] = [self._once(listener) for listener in listeners]
            await self._socket.connect_async()
            log.info("Slack Socket Mode: connected as %s in team %s", self.bot_user_id, self.team_id)

    def _once(self, listener: Callable[[Any, SocketModeRequest], Awaitable[None]]
              ) -> Callable[[Any, SocketModeRequest], Awaitable[None]]:
        """A Socket Mode listener that processes each envelope once: Slack re-delivers an envelope (same id,
        retry_attempt + 1) when it thinks the ack came late, and a re-delivered `/wscheck restart` or Approve was
        processed twice (issue 13). A repeat is acked again and dropped."""

        async def once(client: Any, req: SocketModeRequest) -> None:
            if req.envelope_id in self._envelopes:
                log.info("Socket Mode envelope %s delivered again (retry %s): acked, not processed again",
                         req.envelope_id, getattr(req, "retry_attempt", "?"))
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            self._envelopes[req.envelope_id] = None
            while len(self._envelopes) > SEEN_ENVELOPES:
                self._envelopes.popitem(last=False)
            await listener(client, req)

        return once

    async def connected(self) -> bool:
        """For /healthz: the Socket Mode WebSocket is up (HTTP mode: the server runs)."""
        if self._socket is not None:
            return bool(await self._socket.client.is_connected())
        return self._runner is not None

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.bot.drain()

    # -- helpers ---------------------------------------------------------------------------------

    def remember(self, reports: list[TargetReport], command: cmd.RunChecks, user: str) -> str:
        share_id = secrets.token_urlsafe(12)
        self._shared[share_id] = _Shared(reports, command, user)
        while len(self._shared) > REPORT_CACHE:
            self._shared.popitem(last=False)
        return share_id

    async def usergroup_members(self, groups: list[str]) -> set[str]:
        """Members of Slack user groups (approvers). Free workspaces have no user groups: say so, use user IDs."""
        members: set[str] = set()
        for group in groups:
            cached = self._groups.get(group)
            if cached and time.monotonic() - cached[0] < USER_CACHE_TTL:
                members |= cached[1]
                continue
            try:
                response = await self.client.usergroups_users_list(usergroup=group)
            except SlackApiError as exc:
                error = exc.response.get("error")
                if error == "paid_teams_only":
                    log.warning("approver group %s ignored: user groups need a paid Slack plan; list user IDs "
                                "in WSCHECK_APPROVERS instead", group)
                else:
                    log.warning("approver group %s cannot be resolved (%s)", group, error)
                continue
            users = {str(u) for u in response.get("users") or []}
            self._groups[group] = (time.monotonic(), users)
            members |= users
        return members

    async def user_info(self, user_id: str, *, fresh: bool = False) -> dict[str, Any]:
        cached = self._users.get(user_id)
        if cached and not fresh and time.monotonic() - cached[0] < USER_CACHE_TTL:
            return cached[1]
        response = await self.client.users_info(user=user_id)
        user = dict(response.get("user") or {})
        self._users[user_id] = (time.monotonic(), user)
        return user

    async def requester(self, body: dict[str, Any], *, fresh: bool = False) -> Requester:
        user = body.get("user") if isinstance(body.get("user"), dict) else None
        user_id = str(body.get("user_id") or (user or {}).get("id") or "")
        channel = body.get("channel_id") or (body.get("channel") or {}).get("id") or ""
        info = await self.user_info(user_id, fresh=fresh)
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        return Requester(
            user_id=user_id,
            user_name=str(info.get("name") or body.get("user_name") or ""),
            channel_id=str(channel),
            team_id=str(info.get("team_id") or ""),
            is_guest=bool(info.get("is_restricted") or info.get("is_ultra_restricted")),
            tz=str(info.get("tz") or "UTC"),
            source="slack",
            message_ts=str((container or {}).get("message_ts") or ""),
            thread_ts=str((message or {}).get("thread_ts") or ""),
            message_ephemeral=bool((container or {}).get("is_ephemeral")),
        )

    async def admitted(self, body: dict[str, Any], respond: Respond, *, replace: bool) -> Requester | None:
        """The requester, or None after telling them (only them) why not.

        `replace` is True only for a slash command's own progress message; a button sits on a message
        others may see (an alert), which a refusal must never overwrite.
        """
        answer: dict[str, Any] = {"replace_original": replace, "response_type": "ephemeral"}
        try:
            who = await self.requester(body)
        except SlackApiError as exc:
            await respond(text=t("slack.lookup_failed", error=exc.response.get("error"), lang=self.lang), **answer)
            return None
        refusal = self.bot.admit(who)
        if refusal:
            said = refusal.render(self.settings.lang)
            await respond(text=said, blocks=render.error_blocks(said, lang=self.lang), **answer)
            return None
        return who

    # -- listeners -------------------------------------------------------------------------------

    async def on_command(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: Respond) -> None:
        command = self.bot.parse(str(body.get("text") or ""))
        if isinstance(command, cmd.RunChecks):
            plan = self.bot.plan(command)
            await ack(text=tn("slack.running", plan.count, lang=self.lang), blocks=render.progress_blocks(
                cmd.describe(command).render(self.settings.lang), count=plan.count, target=plan.shown_target,
                requested_by=str(body.get("user_id") or ""), lang=self.lang))
        else:
            await ack()

        async def work() -> None:
            who = await self.admitted(body, respond, replace=True)
            if who is None:
                return
            await self.bot.handle(command, who, SlackResponder(self, respond, who))

        self.bot.spawn(work(), name=f"/wscheck {body.get('text', '')!r}")

    async def _on_button(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: Respond, *,
                         name: str, handle: Callable[[str, Requester, Respond], Awaitable[None]],
                         guarded: bool = False) -> None:
        """Every button: ack at once, then admit the clicker and hand the button's value over, in the background.

        Admission is the same decision as for slash commands (bot/chat/admission.py). A `guarded` button
        (approve/deny) looks the clicker up afresh (a user turned into a guest a minute ago is a guest now)
        and, refused or not, goes to its handler, which decides admission again and audits the click.
        A refusal never replaces the message the button sits on (an alert, an approval request): it is an
        ephemeral answer to the clicker alone.
        """
        await ack()
        value = str((body.get("actions") or [{}])[0].get("value") or "")

        async def work() -> None:
            if guarded:
                try:
                    who: Requester | None = await self.requester(body, fresh=True)
                except SlackApiError as exc:
                    await respond(text=t("slack.lookup_failed", error=exc.response.get("error"), lang=self.lang),
                                  replace_original=False, response_type="ephemeral")
                    return
            else:
                who = await self.admitted(body, respond, replace=False)
            if who is not None:
                await handle(value, who, respond)

        self.bot.spawn(work(), name=name)

    async def on_action(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: Respond) -> None:
        action_id = str((body.get("actions") or [{}])[0].get("action_id") or "")
        if action_id == render.ACTION_SHARE:
            await self._on_button(ack, body, respond, name="share", handle=self._share)
        elif action_id == render.ACTION_RUN_AGAIN:
            await self._on_button(ack, body, respond, name="run again", handle=self._run_again)
        elif action_id in self.bot.actions:
            await self._on_button(ack, body, respond, name=action_id,
                                  handle=functools.partial(self._feature_button, action_id),
                                  guarded=action_id in self.bot.self_guarded)
        else:
            await ack()
            log.warning("a button with no handler was clicked: %r", action_id[:80])


    async def _share(self, value: str, who: Requester, respond: Respond) -> None:
        shared = self._shared.get(value)
        if shared is None:
            await respond(text=t("slack.share_expired", lang=self.lang), replace_original=False,
                          response_type="ephemeral")
            return
        now = datetime.now(UTC)
        if len(shared.reports) > MAX_SEPARATE_REPORTS:
            blocks = render.multi_report_blocks(shared.reports, requested_by=shared.requested_by, now=now,
                                                share=False, shared_by=who.user_id, lang=self.lang)
            await respond(text="\n".join(render.report_fallback(r, lang=self.lang) for r in shared.reports)[:3000],
                          blocks=blocks, response_type="in_channel", replace_original=False)
            return
        for report in shared.reports:
            blocks = render.report_blocks(report, requested_by=shared.requested_by, now=now, share=False,
                                          shared_by=who.user_id, lang=self.lang)
            await respond(text=render.report_fallback(report, lang=self.lang), blocks=blocks,
                          response_type="in_channel",
                          replace_original=False)

    async def _run_again(self, value: str, who: Requester, respond: Respond) -> None:
        command = self.bot.parse(value)
        out = SlackResponder(self, respond, who)  # replaces the requester's own ephemeral report
        if isinstance(command, cmd.RunChecks):
            await self.bot.progress(command, out)
        await self.bot.handle(command, who, out)

    async def _feature_button(self, action_id: str, value: str, who: Requester, respond: Respond) -> None:
        """A button another feature registered (alerts, approvals)."""
        responder = SlackResponder(self, respond, who)
        responder.replace = False  # never overwrite the alert or approval message the button sits on
        await self.bot.actions[action_id](value, who, responder)

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener error: %s: %s", type(error).__name__, error)
