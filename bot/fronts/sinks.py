"""Where alert messages are delivered: the Slack Web API, or the console."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.fronts.outgoing import slack
from bot.i18n import t
from bot.outgoing import load
from bot.render import plain
from bot.store.outbox import APPROVAL_EVENT, Message, SinkError

#: Slack errors that no retry will fix: the message is recorded as failed and the lane moves on.
PERMANENT = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "channel_not_found", "not_in_channel",
    "is_archived", "invalid_blocks", "invalid_arguments", "msg_too_long", "no_text", "missing_text_fallback",
    "restricted_action", "message_not_found", "cant_update_message", "thread_not_found", "invalid_metadata_format",
    "missing_scope", "not_allowed_token_type",
})


def alert_client(token: str, base_url: str, *, timeout: float = 10.0) -> AsyncWebClient:
    """A client for alerts that retries only what is safe to retry blindly (429: Slack did nothing).

    Connection errors and 5xx are *not* retried here: the post may have happened, so the outbox looks it
    up by metadata first.
    """
    return AsyncWebClient(token=token, base_url=base_url, timeout=max(1, round(timeout)),
                          retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])


class SlackSink:
    def __init__(self, client: AsyncWebClient, lang: str = "en") -> None:
        self.client = client
        #: WSCHECK_LANG: what the typed messages are rendered in, at delivery.
        self.lang = lang

    def render(self, message: Message) -> tuple[str, list[dict[str, Any]]]:
        """Blocks and fallback text (bot/fronts/outgoing.py)."""
        return slack(load(message), lang=self.lang)

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        args: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks, "metadata": metadata,
                                "unfurl_links": False, "unfurl_media": False}
        if thread_ts:
            args["thread_ts"] = thread_ts
        response = await self._call(self.client.chat_postMessage, args, sending=True)
        return str(response["ts"])

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call(self.client.chat_update, {"channel": channel, "ts": ts, "text": text, "blocks": blocks},
                         sending=False)

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        oldest = f"{since.timestamp():.6f}"
        if thread_ts:
            response = await self._call(self.client.conversations_replies,
                                        {"channel": channel, "ts": thread_ts, "oldest": oldest,
                                         "include_all_metadata": True, "limit": 200}, sending=False)
        else:
            response = await self._call(self.client.conversations_history,
                                        {"channel": channel, "oldest": oldest, "include_all_metadata": True,
                                         "limit": 200}, sending=False)
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("op") == key:
                return str(message["ts"])
        return None

    async def _call(self, method: Callable[..., Any], args: dict[str, Any], *, sending: bool) -> Any:
        try:
            return await method(**args)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") or "")
            status = int(getattr(response, "status_code", 200) or 200)
            if status == 429 or error == "ratelimited":
                retry = float(response.headers.get("Retry-After", "1") or 1)
                raise SinkError(f"rate limited by Slack (Retry-After {retry:g} s)", retry_after=retry) from None
            if error in PERMANENT:
                raise SinkError(f"Slack refused it: {error}", permanent=True) from None
            raise SinkError(f"Slack error {status} {error}", uncertain=sending) from None
        except (TimeoutError, OSError) as exc:
            raise SinkError(f"no answer from Slack: {type(exc).__name__}: {exc}", uncertain=sending) from None
        except Exception as exc:  # aiohttp's ClientError family and friends
            if type(exc).__module__.startswith("aiohttp"):
                raise SinkError(f"connection to Slack failed: {type(exc).__name__}: {exc}", uncertain=sending) from None
            raise


class ConsoleSink:
    """Console mode: the same incident lifecycle, printed."""

    def __init__(self, write: Callable[[str], None], lang: str = "en") -> None:
        self._out = write
        self.lang = lang
        self._ts = itertools.count(1)
        self._lock = asyncio.Lock()

    def render(self, message: Message) -> tuple[str, list[dict[str, Any]]]:
        """The fallback text, printed as plain lines by `post`/`update` (the blocks are not shown)."""
        return slack(load(message), lang=self.lang)

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        ts = f"console.{next(self._ts):06d}"
        alert = metadata.get("event_type") == "wscheck_alert"
        async with self._lock:
            if thread_ts:
                self.write(f"  ↳ {text}")
            else:
                self.write(t("console.alert", text=text, lang=self.lang) if alert else text)
                if metadata.get("event_type") == APPROVAL_EVENT:  # a pending approval request: its buttons
                    request = (metadata.get("event_payload") or {}).get("op", "?")
                    self.write(t("console.approve_hint", request=request, lang=self.lang))
        return ts

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        async with self._lock:
            self.write(f"✏️  {text}")

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        return None

    def write(self, text: str) -> None:
        self._out(plain(text))
