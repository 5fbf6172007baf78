"""`FakeSlack`: a strict local Slack (Web API + Socket Mode + response_url) for the bot's tests.

One aiohttp server on 127.0.0.1, port chosen by the OS:

* ``/api/<method>``   — the Web API (point ``AsyncWebClient(base_url=fake.api_url)`` at it);
* ``/socket?ticket=`` — Socket Mode (URLs handed out by ``apps.connections.open``);
* ``/response/<id>``  — response_url of every slash command / block action the fake sends.

Everything the bot does is recorded (`calls`, stored messages, envelopes and acks, response_url posts) and
`wait_for()` wakes up on every recorded event, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from aiohttp import web

from .models import (
    JSON,
    ApiCall,
    ApiError,
    Channel,
    Envelope,
    EphemeralMessage,
    Message,
    ResponseUrl,
    ResponseUrlPost,
    TokenKind,
    User,
    Usergroup,
)
from .socket_mode import SocketMode
from .webapi import APP_TOKEN_METHODS, READ_METHODS, WebApi, as_bool, as_str, check_content
from .workspace import Workspace, find_button

T = TypeVar("T")


@dataclass
class _Failure:
    status: int
    retry_after: int
    error: str | None


class FakeSlack:
    """Strict fake of the Slack Web API, Socket Mode and response_url, recording everything the bot does."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-1-fake",  # noqa: S107
        app_token: str = "xapp-1-fake",  # noqa: S107
        signing_secret: str = "fakesecret",  # noqa: S107
        team_id: str = "T0FAKE",
        bot_user_id: str = "UBOT",
        ack_timeout: float = 3.0,
        bot_id: str = "B0FAKE",
        app_id: str = "A0FAKE",
        response_url_ttl: float = 30 * 60,
        connect_wait: float = 10.0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        #: seconds a Socket Mode envelope may wait for its ack (Slack: 3)
        self.ack_timeout = ack_timeout
        #: a response_url expires after this many seconds (Slack: 30 minutes) …
        self.response_url_ttl = response_url_ttl
        #: … and accepts at most this many posts (Slack: 5)
        self.response_url_max_uses = 5
        #: how long send_* waits for a Socket Mode connection before failing the test
        self.connect_wait = connect_wait
        #: the legacy verification token Slack puts in every payload
        self.verification_token = "fakeverificationtoken"
        self.workspace = Workspace(team_id=team_id, bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id)
        self.webapi = WebApi(self)
        self.socket = SocketMode(self)
        #: every /api call, in arrival order
        self.calls: list[ApiCall] = []
        #: calls refused for their token (not_authed, invalid_auth, not_allowed_token_type, token_revoked)
        self.rejected_calls = 0
        #: protocol problems seen (missing/late/invalid acks, rejected response_url posts, refused sockets)
        self.problems: list[str] = []
        #: payloads built by slash_command_form / block_action_form (HTTP mode), newest last
        self.http_payloads: list[JSON] = []
        self.port = 0
        self._revoked: set[str] = set()
        self._failures: dict[str, list[_Failure]] = {}
        self._hangs: dict[str, list[float]] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        #: posts to response URLs the fake never handed out
        self.unknown_response_posts: list[ResponseUrlPost] = []

    # == lifecycle ===========================================================================================
    async def start(self) -> None:
        """Listen on 127.0.0.1 (OS-chosen port); returns once the socket is bound and accepting.

        Started again after `stop()`, it binds the port it had (a Slack that was down and came back)."""
        self._stopping.clear()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self.socket.handle)
        app.router.add_post("/response/{rid}", self._response_url)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        await self.socket.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What the bot gets as SLACK_API_URL: ``http://127.0.0.1:PORT/api/`` (with the trailing slash)."""
        return f"{self.base_url}/api/"

    # == workspace setup =====================================================================================
    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        team_id: str | None = None,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        is_bot: bool = False,
        tz: str = "Asia/Seoul",
        tz_offset: int = 32400,
        deleted: bool = False,
        real_name: str = "",
    ) -> User:
        user = User(
            id=user_id,
            name=name,
            team_id=team_id or self.team_id,
            is_restricted=is_restricted,
            is_ultra_restricted=is_ultra_restricted,
            is_bot=is_bot,
            tz=tz,
            tz_offset=tz_offset,
            deleted=deleted,
            real_name=real_name,
        )
        self.workspace.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        bot_is_member: bool = True,
        is_private: bool = False,
        is_archived: bool = False,
        members: set[str] | None = None,
    ) -> Channel:
        """`members=None`: everybody is a member (only chat.postEphemeral's `user_not_in_channel` looks)."""
        channel = Channel(
            id=channel_id,
            name=name,
            bot_is_member=bot_is_member,
            is_private=is_private,
            is_archived=is_archived,
            is_im=channel_id.startswith("D"),
            members=set(members) if members is not None else None,
        )
        self.workspace.channels[channel_id] = channel
        self.workspace.ensure_storage(channel_id)
        return channel

    def add_usergroup(self, group_id: str, users: list[str], *, paid_plan: bool = True) -> Usergroup:
        """`paid_plan=False`: usergroups.users.list answers `paid_teams_only`, like on a free workspace."""
        group = Usergroup(id=group_id, users=list(users), paid_plan=paid_plan)
        self.workspace.usergroups[group_id] = group
        return group

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        thread_ts: str | None = None,
        blocks: list[JSON] | None = None,
        metadata: JSON | None = None,
    ) -> Message:
        """A message somebody else (a human) posted, e.g. to seed conversations.history."""
        if channel not in self.workspace.channels:
            raise ValueError(f"unknown channel {channel!r}: add_channel() it first")
        if thread_ts is not None and self.workspace.find(channel, thread_ts) is None:
            raise ValueError(f"no message {thread_ts} in {channel}")
        msg = self.workspace.store(
            channel,
            text=text,
            user=user,
            blocks=blocks,
            metadata=metadata,
            thread_ts=thread_ts,
            as_bot=False,
            via="test",
        )
        self._notify()
        return msg

    def reset(self) -> None:
        """Forget everything recorded (calls, messages, ephemerals, envelopes, responses, problems, injected
        failures, revoked tokens) but keep users, channels, user groups and the open Socket Mode connections —
        for a session-scoped fake shared by many tests."""
        self.calls.clear()
        self.rejected_calls = 0
        self.problems.clear()
        self.http_payloads.clear()
        self.unknown_response_posts.clear()
        self._revoked.clear()
        self._failures.clear()
        self._hangs.clear()
        self._response_urls.clear()
        for msgs in self.workspace.messages_by_channel.values():
            msgs.clear()
        self.workspace.ephemerals.clear()
        self.socket.envelopes.clear()
        self.socket.ack_failures.clear()
        self.socket.unmatched_acks.clear()
        self.socket.client_messages.clear()
        self.socket.refused.clear()
        self.socket.route_to = None
        self._notify()

    def revoke_token(self, token: str) -> None:
        """Later calls with `token` answer `token_revoked`."""
        self._revoked.add(token)

    # == failure injection ===================================================================================
    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        error: str | None = None,
        count: int = 1,
    ) -> None:
        """Make the next `count` calls of `method` fail without being processed (nothing is stored).
        `method="response_url"`: the next posts to any response URL answer `status` (500 unless >= 400).

        * default: HTTP 429, ``Retry-After: retry_after``, ``{"ok": false, "error": "ratelimited"}``;
        * ``status=500`` (or any 5xx): that status with ``{"ok": false, "error": "fatal_error"}``;
        * ``error="..."``: HTTP 200 ``{"ok": false, "error": error}`` (pass ``status`` for another one).
        """
        if error is not None and status == 429:
            status = 200
        self._failures.setdefault(method, []).extend(
            _Failure(status=status, retry_after=retry_after, error=error) for _ in range(count)
        )

    def hang_next(self, method: str, seconds: float, *, count: int = 1) -> None:
        """Process and store the next `count` calls of `method`, but answer only after `seconds`.

        Simulates "the request reached Slack, the response did not reach us" (client timeout after sending).
        """
        self._hangs.setdefault(method, []).extend([seconds] * count)

    # == records =============================================================================================
    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str, *, include_deleted: bool = False) -> list[Message]:
        """Top-level messages of `channel` (plus thread broadcasts), oldest first."""
        return self.workspace.top_level(channel, include_deleted=include_deleted)

    def replies(self, channel: str, ts: str, *, include_deleted: bool = False) -> list[Message]:
        """Replies in the thread of `ts` (without the parent), oldest first."""
        return self.workspace.thread(channel, ts, include_deleted=include_deleted)

    def message(self, channel: str, ts: str) -> Message:
        msg = self.workspace.find(channel, ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {channel}")
        return msg

    def ephemeral(self, channel: str | None = None, user: str | None = None) -> list[EphemeralMessage]:
        return [
            e
            for e in self.workspace.ephemerals
            if not e.deleted
            and (channel is None or e.channel == channel)
            and (user is None or e.user == user)
        ]

    @property
    def envelopes(self) -> list[Envelope]:
        return self.socket.envelopes

    @property
    def ack_failures(self) -> list[Envelope]:
        return self.socket.ack_failures

    def response_posts(self, target: Envelope | str) -> list[ResponseUrlPost]:
        """Every POST (accepted or not) to the response_url of `target` (an Envelope or the URL itself)."""
        ru = self._response_url_for(target)
        return list(ru.posts) if ru is not None else []

    def responses(self, target: Envelope | str) -> list[dict[str, Any]]:
        """Bodies of the accepted POSTs to the response_url of `target`."""
        return [p.body for p in self.response_posts(target) if p.accepted]

    def assert_all_acked(self) -> None:
        """Raise if an envelope was not acked in time, or an ack was invalid / unmatched (for teardown)."""
        bad = [e for e in self.socket.envelopes if e in self.socket.ack_failures or e.ack_problems]
        if bad or self.socket.unmatched_acks:
            lines = [
                f"{e.type} {e.envelope_id} (retry {e.retry_attempt}): {'; '.join(e.ack_problems)}"
                for e in bad
            ]
            lines += [f"unmatched ack: {a!r}" for a in self.socket.unmatched_acks]
            raise AssertionError("Socket Mode ack problems:\n  " + "\n  ".join(lines))

    def assert_no_problems(self) -> None:
        """Raise if anything in `problems` (acks, rejected response_url posts, refused sockets)."""
        if self.problems:
            raise AssertionError("FakeSlack problems:\n  " + "\n  ".join(self.problems))

    # == Socket Mode =========================================================================================
    @property
    def connections(self) -> int:
        """Open Socket Mode connections right now."""
        return len(self.socket.open_connections)

    @property
    def total_connections(self) -> int:
        """Socket Mode connections ever accepted."""
        return len(self.socket.all_connections)

    async def wait_connected(self, timeout: float = 10.0, *, min_total: int = 1) -> None:
        """Wait for an open connection, and for at least `min_total` accepted connections overall."""
        await self.wait_for(
            lambda: (
                any(c.disconnect_sent is None for c in self.socket.open_connections)
                and self.total_connections >= min_total
            ),
            timeout,
            what=f"an open Socket Mode connection (total >= {min_total})",
        )

    async def disconnect(self, reason: str = "refresh_requested", *, grace: float = 2.0) -> None:
        """Send ``{"type": "disconnect", "reason": reason}`` on every open connection, then close them.

        Like Slack, the socket stays open for `grace` seconds so the client can reconnect first (slack_sdk
        closes the old socket itself once its new one is up); whatever is still open after that is closed.
        """
        await self.socket.disconnect(reason, grace)

    async def send_slash_command(
        self,
        text: str,
        *,
        command: str = "/wscheck",
        user_id: str = "U1",
        channel_id: str = "C1",
        team_id: str | None = None,
        wait_ack: bool = True,
    ) -> Envelope:
        """Push a `slash_commands` envelope; with wait_ack, return once acked or `ack_timeout` passed."""
        payload = self._slash_payload(
            text, command=command, user_id=user_id, channel_id=channel_id, team_id=team_id
        )
        raw: JSON = {
            "envelope_id": self.socket.new_envelope_id(),
            "payload": payload,
            "type": "slash_commands",
            "accepts_response_payload": True,
        }
        ru = self._response_url_for(payload["response_url"])
        assert ru is not None
        ru.envelope_id = raw["envelope_id"]
        return await self.socket.send(raw, wait_ack=wait_ack, response_url=payload["response_url"])

    async def send_block_action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str | None = None,
        container: Literal["message", "ephemeral"] = "message",
        response_url: bool = True,
        team_id: str | None = None,
        strict: bool = True,
        wait_ack: bool = True,
    ) -> Envelope:
        """Click the element `action_id` of a stored message and push the `block_actions` envelope.

        The element is looked up in the message `message_ts` of `channel_id` (or, without message_ts, the
        newest message having it): the payload's block_id, text, type and value come from what the bot
        really posted. With `strict` (default) clicking an element that does not exist, or passing a
        `value` that differs from the button's, raises AssertionError. `container="ephemeral"` clicks in an
        ephemeral message (shown to `user_id`); like Slack, the payload then has container.is_ephemeral
        and no `message`.
        """
        payload = self._block_action_payload(
            action_id,
            value,
            user_id=user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            container=container,
            response_url=response_url,
            team_id=team_id,
            strict=strict,
        )
        raw: JSON = {
            "envelope_id": self.socket.new_envelope_id(),
            "payload": payload,
            "type": "interactive",
            "accepts_response_payload": False,
        }
        url: str | None = payload.get("response_url")
        ru = self._response_url_for(url) if url else None
        if ru is not None:
            ru.envelope_id = raw["envelope_id"]
        return await self.socket.send(raw, wait_ack=wait_ack, response_url=url)

    async def send_event(self, event: JSON, *, wait_ack: bool = True) -> Envelope:
        """Push an `events_api` envelope wrapping `event` (e.g. ``{"type": "app_mention", ...}``)."""
        event = dict(event)
        event.setdefault("event_ts", self.workspace.next_ts())
        payload = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        raw: JSON = {
            "envelope_id": self.socket.new_envelope_id(),
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        return await self.socket.send(raw, wait_ack=wait_ack)

    async def send_raw_envelope(self, envelope: JSON, *, wait_ack: bool = False) -> Envelope:
        """Send `envelope` as is; acks are tracked when it has an `envelope_id`."""
        return await self.socket.send(copy.deepcopy(envelope), wait_ack=wait_ack)

    async def redeliver(
        self, envelope: Envelope, *, reason: str = "timeout", wait_ack: bool = True
    ) -> Envelope:
        """Send the same envelope again (same envelope_id, `retry_attempt` + 1), like Slack's retries."""
        raw = copy.deepcopy(envelope.raw)
        raw["retry_attempt"] = envelope.retry_attempt + 1
        raw["retry_reason"] = reason
        return await self.socket.send(raw, wait_ack=wait_ack, response_url=envelope.response_url)

    # == HTTP mode helpers ===================================================================================
    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """`X-Slack-Signature` (v0, HMAC-SHA256 of ``v0:{ts}:{body}``) and `X-Slack-Request-Timestamp`."""
        ts = int(time.time()) if timestamp is None else timestamp
        base = b"v0:" + str(ts).encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(ts)}

    def slash_command_form(
        self,
        text: str,
        *,
        command: str = "/wscheck",
        user_id: str = "U1",
        channel_id: str = "C1",
        team_id: str | None = None,
    ) -> bytes:
        """The form body Slack POSTs for a slash command in HTTP mode (its response_url is live)."""
        payload = self._slash_payload(
            text, command=command, user_id=user_id, channel_id=channel_id, team_id=team_id
        )
        self.http_payloads.append(payload)
        return urllib.parse.urlencode(payload).encode()

    def block_action_form(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str | None = None,
        container: Literal["message", "ephemeral"] = "message",
        team_id: str | None = None,
        strict: bool = True,
    ) -> bytes:
        """The form body (``payload=<json>``) Slack POSTs for a button click in HTTP mode."""
        payload = self._block_action_payload(
            action_id,
            value,
            user_id=user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            container=container,
            response_url=True,
            team_id=team_id,
            strict=strict,
        )
        self.http_payloads.append(payload)
        return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()

    # == waiting =============================================================================================
    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 10.0, *, what: str = "", poll: float = 0.1
    ) -> T:
        """Wait until `predicate()` is truthy and return its value.

        The predicate is re-checked on every event the fake records (call, message, envelope, ack,
        response_url post, connection); also every `poll` seconds, so predicates on state outside the fake
        (a log file, the bot process) work too. On timeout raise AssertionError with a dump of all records.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                label = what or getattr(predicate, "__name__", repr(predicate))
                raise AssertionError(
                    f"FakeSlack: timed out after {timeout}s waiting for {label}\n{self.dump()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, poll))

    async def _wait_quietly(self, predicate: Callable[[], object], timeout: float) -> bool:
        try:
            await self.wait_for(predicate, timeout)
        except AssertionError:
            return False
        return True

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _problem(self, problem: str) -> None:
        self.problems.append(problem)
        self._notify()

    def dump(self) -> str:
        """Human-readable summary of everything recorded (used in wait_for's timeout message)."""
        out = [f"--- FakeSlack on {self.base_url if self.port else '(not started)'} ---"]
        out.append(f"API calls ({len(self.calls)}, rejected for token: {self.rejected_calls}):")
        for c in self.calls[-60:]:
            status = "ok" if c.ok else f"error={c.error}"
            extra = f" hung {c.hung_for}s" if c.hung_for else ""
            extra += " (injected)" if c.injected else ""
            out.append(f"  {c.http_method} {c.method} [{c.token_kind}] -> {c.http_status} {status}{extra}")
        for channel_id, msgs in self.workspace.messages_by_channel.items():
            if msgs:
                out.append(f"messages in {channel_id}:")
                for m in msgs:
                    flags = " (deleted)" if m.deleted else ""
                    flags += " (edited)" if m.edited else ""
                    thread = f" thread={m.thread_ts}" if m.is_reply else ""
                    nblocks = len(m.blocks or [])
                    out.append(
                        f"  {m.ts} {m.user}{thread}{flags} blocks={nblocks} via={m.via}: {m.text[:100]!r}"
                    )
        if self.workspace.ephemerals:
            out.append("ephemeral messages:")
            for e in self.workspace.ephemerals:
                out.append(
                    f"  {e.ts} {e.channel}/{e.user} via={e.via}{' (deleted)' if e.deleted else ''}: "
                    f"{e.text[:100]!r}"
                )
        out.append(
            f"socket: open={self.connections} total={self.total_connections} "
            f"refused={len(self.socket.refused)}"
        )
        for env in self.socket.envelopes:
            state = f"acked in {env.ack_latency:.3f}s" if env.ack_latency is not None else "NOT ACKED"
            out.append(f"  envelope {env.type} {env.envelope_id} retry={env.retry_attempt}: {state}")
        for ru in self._response_urls.values():
            for p in ru.posts:
                out.append(f"  response_url {ru.id} -> {p.http_status} {json.dumps(p.response)}")
        if self.problems:
            out.append("problems:")
            out.extend(f"  {p}" for p in self.problems)
        return "\n".join(out)

    # == Web API plumbing ====================================================================================
    def _token_kind(self, token: str | None) -> TokenKind:
        if not token:
            return "none"
        if token in self._revoked:
            return "revoked"
        if token == self.bot_token:
            return "bot"
        if token == self.app_token:
            return "app"
        return "invalid"

    def _check_token(self, method: str, kind: TokenKind) -> None:
        if kind == "none":
            raise ApiError("not_authed")
        if kind == "invalid":
            raise ApiError("invalid_auth")
        if kind == "revoked":
            raise ApiError("token_revoked")
        wanted = "app" if method in APP_TOKEN_METHODS else "bot"
        if kind != wanted:
            raise ApiError("not_allowed_token_type")

    async def _parse_request(self, request: web.Request) -> tuple[JSON, str | None, list[str]]:
        """(args, token, warnings). Raises ApiError for bodies Slack would refuse."""
        args: JSON = {}
        warnings: list[str] = []
        query_token = None
        for key, value in request.query.items():
            if key == "token":
                query_token = value
            else:
                args[key] = value
        if query_token is not None:
            # Slack refuses tokens in the query string for apps created after 2021-02-24.
            warnings.append("token in the query string is ignored (send it as Authorization: Bearer)")
        body_token: str | None = None
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                raw = await request.read()
                try:
                    data = json.loads(raw) if raw else {}
                except json.JSONDecodeError as e:
                    raise ApiError("invalid_json") from e
                if not isinstance(data, dict):
                    raise ApiError("json_not_object")
                if "token" in data:
                    data.pop("token")
                    warnings.append("token in a JSON body is ignored (send it as Authorization: Bearer)")
                args.update(data)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, field_value in form.items():
                    if isinstance(field_value, str):
                        args[key] = field_value
                body_token = args.pop("token", None)
            elif ctype in ("", "application/octet-stream"):
                if await request.read():
                    raise ApiError("invalid_post_type")
            else:
                raise ApiError("invalid_post_type")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else None
        return args, token or body_token, warnings

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        call = ApiCall(method=method, args={}, token_kind="none", http_method=request.method, at=time.time())
        header = request.headers.get("Authorization", "")
        call.token_kind = self._token_kind(header[7:].strip() if header.startswith("Bearer ") else None)
        self.calls.append(call)
        status = 200
        headers: dict[str, str] = {}
        hang = 0.0
        try:
            args, token, warnings = await self._parse_request(request)
            call.args = args
            call.token_kind = self._token_kind(token)
            if method not in self.webapi.handlers:
                raise ApiError("unknown_method", req_method=method)
            if request.method not in ("GET", "POST"):
                raise ApiError("invalid_request_method")
            try:
                self._check_token(method, call.token_kind)
            except ApiError as e:
                self.rejected_calls += 1
                if warnings:
                    e.extra["response_metadata"] = {"warnings": warnings}
                raise
            if request.method == "GET" and method not in READ_METHODS:
                raise ApiError(
                    "invalid_arguments",
                    response_metadata={"messages": [f"[ERROR] fakeslack: {method} must be POSTed"]},
                )
            failure = self._pop(self._failures, method)
            if failure is not None:
                call.injected = True
                status, body, headers = self._injected_response(failure)
            else:
                hang = self._pop(self._hangs, method) or 0.0
                body = self.webapi.call(method, args)
        except ApiError as e:
            body = {"ok": False, "error": e.error, **e.extra}
        call.http_status = status
        call.response = body
        call.hung_for = hang
        self._notify()
        if hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), hang)
        return web.json_response(body, status=status, headers=headers)

    @staticmethod
    def _pop(queue: dict[str, list[Any]], method: str) -> Any:
        pending = queue.get(method)
        return pending.pop(0) if pending else None

    @staticmethod
    def _injected_response(failure: _Failure) -> tuple[int, JSON, dict[str, str]]:
        if failure.error is not None:
            return failure.status, {"ok": False, "error": failure.error}, {}
        if failure.status == 429:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(failure.retry_after)}
        return failure.status, {"ok": False, "error": "fatal_error"}, {}

    # == payloads and response_url ===========================================================================
    def _known_user_and_channel(self, user_id: str, channel_id: str) -> tuple[User, Channel]:
        user = self.workspace.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id!r}: add_user({user_id!r}, name=...) first")
        channel = self.workspace.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id!r}: add_channel({channel_id!r}, name) first")
        return user, channel

    def _new_response_url(
        self, kind: str, channel_id: str, user_id: str, original: tuple[str, str] | None = None
    ) -> str:
        rid = f"{self.team_id}-{secrets.randbelow(10**13)}-{secrets.token_hex(12)}"
        url = f"{self.base_url}/response/{rid}"
        self._response_urls[rid] = ResponseUrl(
            id=rid,
            url=url,
            created_at=time.monotonic(),
            kind=kind,
            channel_id=channel_id,
            user_id=user_id,
            original=original,
        )
        return url

    def _response_url_for(self, target: Envelope | str) -> ResponseUrl | None:
        url = target.response_url if isinstance(target, Envelope) else target
        if not url:
            return None
        return self._response_urls.get(url.rstrip("/").rsplit("/", 1)[-1])

    def expire_response_urls(self) -> None:
        """Make every response_url handed out so far expired (as if 30 minutes had passed)."""
        for ru in self._response_urls.values():
            ru.created_at -= self.response_url_ttl + 1

    @staticmethod
    def _channel_name(channel: Channel) -> str:
        if channel.is_im:
            return "directmessage"
        return "privategroup" if channel.is_private else channel.name

    def _slash_payload(
        self, text: str, *, command: str, user_id: str, channel_id: str, team_id: str | None
    ) -> dict[str, str]:
        user, channel = self._known_user_and_channel(user_id, channel_id)
        return {
            "token": self.verification_token,
            "team_id": team_id or user.team_id,
            "team_domain": self.workspace.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel),
            "user_id": user_id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._new_response_url("slash_commands", channel_id, user_id),
            "trigger_id": self.socket.new_trigger_id(),
        }

    def _block_action_payload(
        self,
        action_id: str,
        value: str | None,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str | None,
        container: Literal["message", "ephemeral"],
        response_url: bool,
        team_id: str | None,
        strict: bool,
    ) -> JSON:
        user, channel = self._known_user_and_channel(user_id, channel_id)
        source: Message | EphemeralMessage | None = None
        found: tuple[JSON, JSON] | None = None
        pool: list[Message | EphemeralMessage] = []
        if container == "message":
            pool.extend(m for m in self.workspace.all_messages(channel_id) if not m.deleted)
        else:
            pool.extend(self.ephemeral(channel_id, user_id))
        for candidate in reversed(pool):
            if message_ts is not None and candidate.ts != message_ts:
                continue
            found = find_button(candidate.blocks, action_id)
            if found is not None or message_ts is not None:
                source = candidate
                break
        if found is None and strict:
            where = f"message {message_ts}" if message_ts else f"any {container} message"
            raise AssertionError(
                f"no element with action_id {action_id!r} in {where} of {channel_id}"
                f"{' for ' + user_id if container == 'ephemeral' else ''}\n{self.dump()}"
            )
        block: JSON = {"block_id": "fakeblock"}
        element: JSON = {"type": "button"}
        if found is not None:
            block, element = found
        element_type = str(element.get("type", "button"))
        action: JSON = {
            "action_id": action_id,
            "block_id": block.get("block_id", "fakeblock"),
            "type": element_type,
            "action_ts": f"{time.time():.6f}",
        }
        if element_type == "button":
            button_value = element.get("value")
            if strict and value is not None and button_value is not None and value != button_value:
                raise AssertionError(f"button {action_id!r} has value {button_value!r}, not {value!r}")
            action["text"] = copy.deepcopy(element.get("text", {"type": "plain_text", "text": action_id}))
            final_value = value if value is not None else button_value
            if final_value is not None:
                action["value"] = final_value
            if "style" in element:
                action["style"] = element["style"]
        elif element_type in ("static_select", "overflow", "radio_buttons"):
            options: list[JSON] = element.get("options") or [
                o for g in element.get("option_groups", []) for o in g["options"]
            ]
            chosen = next((o for o in options if o.get("value") == value), None)
            if chosen is None and strict:
                raise AssertionError(f"{element_type} {action_id!r} has no option with value {value!r}")
            action["selected_option"] = copy.deepcopy(chosen or {"value": value})
        elif value is not None:
            action["value"] = value
        ts = source.ts if source is not None else (message_ts or self.workspace.next_ts())
        payload: JSON = {
            "type": "block_actions",
            "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": user.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": container == "ephemeral",
            },
            "trigger_id": self.socket.new_trigger_id(),
            "team": {"id": team_id or user.team_id, "domain": self.workspace.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(channel)},
            "state": {"values": {}},
            "actions": [action],
        }
        if container == "message":
            if isinstance(source, Message):
                message = source.to_api(include_metadata=False)
            else:
                message = {"type": "message", "ts": ts, "text": ""}
            payload["message"] = message
            if isinstance(source, Message) and source.is_reply:
                payload["container"]["thread_ts"] = source.thread_ts
        if response_url:
            payload["response_url"] = self._new_response_url(
                "block_actions", channel_id, user_id, original=(container, ts)
            )
        return payload

    def _apply_ack_payload(self, delivery: Envelope, payload: Any) -> None:
        """A slash command's ack payload is its immediate response: validate it and show it like Slack."""
        ru = self._response_url_for(delivery)
        try:
            if not isinstance(payload, dict):
                raise ApiError("invalid_payload")
            if ru is not None:
                self._respond(ru, payload, via="slash_ack")
            else:
                check_content(payload)
        except ApiError as e:
            details = e.extra.get("errors")
            delivery.ack_problems.append(
                f"ack payload rejected: {e.error}{' ' + str(details) if details else ''}"
            )

    def _respond(self, ru: ResponseUrl, body: JSON, *, via: str) -> None:
        """Apply a response_url body (or slash command ack payload) to the workspace, like Slack would."""
        ws = self.workspace
        response_type = body.get("response_type", "ephemeral")
        if response_type not in ("ephemeral", "in_channel"):
            raise ApiError("invalid_response_type")
        target: Message | EphemeralMessage | None = None
        if ru.original is not None:
            kind, ts = ru.original
            target = ws.find(ru.channel_id, ts) if kind == "message" else ws.find_ephemeral(ru.channel_id, ts)
        elif ru.last_ephemeral_ts is not None:
            target = ws.find_ephemeral(ru.channel_id, ru.last_ephemeral_ts)
        if as_bool(body, "delete_original"):
            if isinstance(target, Message):
                ws.delete(target)
            elif isinstance(target, EphemeralMessage):
                target.deleted = True
            return
        content = check_content(body)
        text = content.text if content.text is not None else (content.markdown_text or "")
        if as_bool(body, "replace_original") and target is not None and not target.deleted:
            ws.replace_content(
                target, text=text, blocks=content.blocks, attachments=content.attachments, keep_missing=False
            )
            return
        thread_ts = as_str(body, "thread_ts")
        if thread_ts is not None:
            parent = ws.find(ru.channel_id, thread_ts)
            if parent is None or parent.is_reply:
                raise ApiError("thread_not_found")
        if response_type == "in_channel":
            ws.store(
                ru.channel_id,
                text=text,
                user=self.bot_user_id,
                blocks=content.blocks or None,
                attachments=content.attachments or None,
                thread_ts=thread_ts,
                via=via,
                args=body,
            )
        else:
            eph = ws.add_ephemeral(
                ru.channel_id,
                ru.user_id,
                text=text,
                blocks=content.blocks or None,
                attachments=content.attachments or None,
                thread_ts=thread_ts,
                via=via,
            )
            ru.last_ephemeral_ts = eph.ts

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        raw = await request.read()
        ru = self._response_urls.get(rid)
        body: Any = raw.decode("utf-8", "replace")
        status = 200
        response: JSON = {"ok": True}
        failure = self._pop(self._failures, "response_url")  # fail_next("response_url", status=500): not processed
        try:
            if failure is not None:
                status = failure.status if failure.status >= 400 else 500
                raise ApiError("injected")
            if ru is None or time.monotonic() - ru.created_at > self.response_url_ttl:
                status = 404
                raise ApiError("expired_url")
            if ru.uses >= self.response_url_max_uses:
                status = 404
                raise ApiError("used_url")
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as e:
                status = 400
                raise ApiError("invalid_payload") from e
            if not isinstance(body, dict):
                status = 400
                raise ApiError("invalid_payload")
            status = 400
            self._respond(ru, body, via="response_url")
            status = 200
            ru.uses += 1
        except ApiError as e:
            response = {"ok": False, "error": e.error, **e.extra}
            if failure is None:
                self.problems.append(f"response_url post rejected ({status} {e.error}): {str(body)[:200]}")
        post = ResponseUrlPost(
            url=ru.url if ru is not None else str(request.url),
            body=body,
            http_status=status,
            response=response,
            at=time.time(),
        )
        if ru is not None:
            ru.posts.append(post)
        else:
            self.unknown_response_posts.append(post)
        self._notify()
        return web.json_response(response, status=status)
