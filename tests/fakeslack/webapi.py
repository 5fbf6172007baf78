"""Web API methods of the fake: argument checking as strict as Slack's, then the workspace operation.

Required arguments come from Slack's OpenAPI spec
(`/work/shared/slack/slack_web_openapi_v2_without_examples.json`, see `SPEC_REQUIRED`), plus those the
2020 spec marks optional but Slack's current reference requires (`DOCS_REQUIRED`).
`tests/unit/test_fakeslack.py` checks `SPEC_REQUIRED` against the spec file.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .blocks import MAX_MARKDOWN_TEXT, MAX_MESSAGE_TEXT, BlocksFormatError, decode_json_arg, validate_blocks
from .models import JSON, ApiError, Channel, Message
from .workspace import ts_to_micros

if TYPE_CHECKING:
    from .server import FakeSlack

#: required arguments (besides `token`) exactly as the OpenAPI spec lists them
SPEC_REQUIRED: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("channel",),
    "chat.update": ("channel", "ts"),
    "chat.postEphemeral": ("channel", "user"),
    "chat.delete": (),
    "chat.getPermalink": ("channel", "message_ts"),
    "users.info": (),
    "conversations.history": (),
    "conversations.replies": (),
    "conversations.info": (),
    "usergroups.users.list": ("usergroup",),
}
#: required by Slack's current method reference although the 2020 spec marks them optional
DOCS_REQUIRED: dict[str, tuple[str, ...]] = {
    "chat.delete": ("channel", "ts"),
    "users.info": ("user",),
    "conversations.history": ("channel",),
    "conversations.replies": ("channel", "ts"),
    "conversations.info": ("channel",),
    "apps.connections.open": (),
}
#: the error Slack answers when that argument is missing (anything else: `invalid_arguments`)
MISSING_ARG_ERROR: dict[tuple[str, str], str] = {
    ("*", "channel"): "channel_not_found",
    ("chat.update", "ts"): "message_not_found",
    ("chat.delete", "ts"): "message_not_found",
    ("chat.getPermalink", "message_ts"): "message_not_found",
    ("conversations.replies", "ts"): "thread_not_found",
    ("users.info", "user"): "user_not_found",
}
#: methods that may be called with GET (query string); the others must be POSTed
READ_METHODS = frozenset(
    {
        "auth.test",
        "users.info",
        "conversations.history",
        "conversations.replies",
        "conversations.info",
        "usergroups.users.list",
        "chat.getPermalink",
    }
)
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
MAX_ATTACHMENTS = 100


def required_args(method: str) -> tuple[str, ...]:
    return SPEC_REQUIRED.get(method, ()) + DOCS_REQUIRED.get(method, ())


def as_str(args: JSON, name: str) -> str | None:
    """A string argument; None when absent or empty (Slack treats `channel=""` as missing)."""
    value = args.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ApiError(
            "invalid_arguments", response_metadata={"messages": [f"[ERROR] {name} must be a string"]}
        )
    return value


def as_bool(args: JSON, name: str) -> bool:
    value = args.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes")


@dataclass
class Content:
    text: str | None
    blocks: list[JSON] | None  # None = not given; [] = given empty
    attachments: list[JSON] | None
    markdown_text: str | None


def check_content(args: JSON, *, require: bool = True) -> Content:
    """Validate text/blocks/attachments of a message (chat.*, response_url bodies, slash command acks).

    Stricter than Slack on one point: blocks without a `text` fallback are rejected with
    `missing_text_fallback` (Slack only logs a warning), because the product promises a text fallback for
    every notification (screen readers, push notifications, email digests). Attachments without `text`,
    `fallback` or message `text` are rejected the same way.
    """
    text = as_str(args, "text")
    markdown_text = as_str(args, "markdown_text")
    try:
        blocks = decode_json_arg(args.get("blocks"), "blocks")
        attachments = decode_json_arg(args.get("attachments"), "attachments")
    except BlocksFormatError as e:
        raise ApiError("invalid_blocks_format", errors=[str(e)]) from e
    if blocks is not None and not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format", errors=["blocks must be a JSON array"])
    if attachments is not None and (
        not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments)
    ):
        raise ApiError("invalid_attachments", errors=["attachments must be a JSON array of objects"])
    if attachments is not None and len(attachments) > MAX_ATTACHMENTS:
        raise ApiError("too_many_attachments")
    if markdown_text is not None and (text is not None or blocks):
        raise ApiError("markdown_text_conflict")
    if text is not None and len(text) > MAX_MESSAGE_TEXT:
        raise ApiError(
            "msg_too_long", errors=[f"text must be at most {MAX_MESSAGE_TEXT} characters, got {len(text)}"]
        )
    if markdown_text is not None and len(markdown_text) > MAX_MARKDOWN_TEXT:
        raise ApiError(
            "msg_too_long", errors=[f"markdown_text must be at most {MAX_MARKDOWN_TEXT} characters"]
        )
    errors: list[str] = []
    if blocks:
        errors.extend(validate_blocks(blocks))
    for i, attachment in enumerate(attachments or []):
        if "blocks" in attachment:
            errors.extend(validate_blocks(attachment["blocks"], pointer=f"/attachments/{i}/blocks"))
    if errors:
        raise ApiError(
            "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
        )
    if require:
        has_text = text is not None or markdown_text is not None
        if not has_text and not blocks and not attachments:
            raise ApiError("no_text")
        if blocks and not has_text:
            raise ApiError(
                "missing_text_fallback",
                errors=[
                    "fakeslack: blocks need a top-level `text` fallback (stricter than Slack, see docstring)"
                ],
            )
        if attachments and not has_text and not blocks:
            for i, attachment in enumerate(attachments):
                if not attachment.get("fallback") and not attachment.get("text"):
                    raise ApiError(
                        "missing_text_fallback", errors=[f"attachments[{i}] has neither fallback nor text"]
                    )
    return Content(text=text, blocks=blocks, attachments=attachments, markdown_text=markdown_text)


def check_metadata(args: JSON) -> JSON | None:
    try:
        metadata = decode_json_arg(args.get("metadata"), "metadata")
    except BlocksFormatError as e:
        raise ApiError("invalid_metadata_format", errors=[str(e)]) from e
    if metadata is None or metadata == "":
        return None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise ApiError(
            "invalid_metadata_format",
            errors=[
                "metadata must be an object with a non-empty event_type string and an event_payload object"
            ],
        )
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
        prefix, ts = raw.split(":", 1)
        if prefix != "next_ts":
            raise ValueError(raw)
        return ts_to_micros(ts)
    except ValueError as e:
        raise ApiError("invalid_cursor") from e


class WebApi:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.ws = fake.workspace
        self.handlers: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self.auth_test,
            "apps.connections.open": self.apps_connections_open,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.delete": self.chat_delete,
            "chat.getPermalink": self.chat_get_permalink,
            "users.info": self.users_info,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.info": self.conversations_info,
            "usergroups.users.list": self.usergroups_users_list,
        }

    def call(self, method: str, args: JSON) -> JSON:
        for name in required_args(method):
            if as_str(args, name) is None:
                error = MISSING_ARG_ERROR.get((method, name)) or MISSING_ARG_ERROR.get(("*", name))
                raise ApiError(
                    error or "invalid_arguments",
                    response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
                )
        return self.handlers[method](args)

    # -- helpers -----------------------------------------------------------------------------------------
    def _channel(self, args: JSON, *, allow_names: bool = False) -> Channel:
        channel_id = as_str(args, "channel")
        assert channel_id is not None
        channel = self.ws.channels.get(channel_id)
        if channel is None and allow_names:
            channel = self.ws.channel_by_name(channel_id)
            if channel is None and channel_id in self.ws.users and channel_id[:1] in ("U", "W"):
                channel = self.ws.dm_channel(channel_id)
        if channel is None or (channel.is_private and not channel.bot_is_member):
            raise ApiError("channel_not_found")
        return channel

    def _writable_channel(self, args: JSON, *, allow_names: bool = False) -> Channel:
        channel = self._channel(args, allow_names=allow_names)
        if channel.is_archived:
            raise ApiError("is_archived")
        if not channel.bot_is_member:
            raise ApiError("not_in_channel")
        return channel

    def _readable_channel(self, args: JSON) -> Channel:
        channel = self._channel(args)
        if not channel.bot_is_member:
            raise ApiError("not_in_channel")
        return channel

    def _thread_parent(self, channel: Channel, thread_ts: str) -> Message:
        """Stricter than Slack: an unknown thread_ts (or a reply's) is an error, not a top-level post."""
        parent = self.ws.find(channel.id, thread_ts)
        if parent is None or parent.is_reply or (parent.deleted and not parent.reply_count):
            raise ApiError(
                "thread_not_found",
                errors=[f"fakeslack: thread_ts {thread_ts!r} is not a top-level message of {channel.id}"],
            )
        return parent

    def _own_message(self, channel: Channel, ts: str, *, cant: str) -> Message:
        msg = self.ws.find(channel.id, ts)
        if msg is None or msg.deleted:
            raise ApiError("message_not_found")
        if msg.bot_id != self.ws.bot_id:
            raise ApiError(cant)
        return msg

    def _window(self, args: JSON) -> tuple[int | None, int | None, bool, int]:
        oldest = as_str(args, "oldest")
        latest = as_str(args, "latest")
        try:
            oldest_us = ts_to_micros(oldest) if oldest is not None else None
        except ValueError as e:
            raise ApiError("invalid_ts_oldest") from e
        try:
            latest_us = ts_to_micros(latest) if latest is not None else None
        except ValueError as e:
            raise ApiError("invalid_ts_latest") from e
        raw_limit = args.get("limit")
        try:
            limit = int(raw_limit) if raw_limit not in (None, "") else 100
        except (TypeError, ValueError) as e:
            raise ApiError("invalid_limit") from e
        if limit <= 0:
            limit = 100
        return oldest_us, latest_us, as_bool(args, "inclusive"), min(limit, 999)

    @staticmethod
    def _in_window(ts: str, oldest: int | None, latest: int | None, inclusive: bool) -> bool:
        t = ts_to_micros(ts)
        if oldest is not None and (t < oldest or (t == oldest and not inclusive)):
            return False
        return not (latest is not None and (t > latest or (t == latest and not inclusive)))

    # -- methods -----------------------------------------------------------------------------------------
    def auth_test(self, args: JSON) -> JSON:
        return {
            "ok": True,
            "url": f"https://{self.ws.team_domain}.slack.com/",
            "team": self.ws.team_name,
            "user": self.ws.users[self.ws.bot_user_id].name,
            "team_id": self.ws.team_id,
            "user_id": self.ws.bot_user_id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def apps_connections_open(self, args: JSON) -> JSON:
        return {"ok": True, "url": self.fake.socket.issue_url()}

    def chat_post_message(self, args: JSON) -> JSON:
        channel = self._writable_channel(args, allow_names=True)
        content = check_content(args)
        metadata = check_metadata(args)
        thread_ts = as_str(args, "thread_ts")
        if thread_ts is not None:
            self._thread_parent(channel, thread_ts)
        msg = self.ws.store(
            channel.id,
            text=content.text if content.text is not None else (content.markdown_text or ""),
            user=self.ws.bot_user_id,
            blocks=content.blocks or None,
            attachments=content.attachments or None,
            metadata=metadata,
            thread_ts=thread_ts,
            reply_broadcast=as_bool(args, "reply_broadcast"),
            args=args,
        )
        return {"ok": True, "channel": channel.id, "ts": msg.ts, "message": msg.to_api()}

    def chat_update(self, args: JSON) -> JSON:
        channel = self._channel(args)
        ts = as_str(args, "ts")
        assert ts is not None
        msg = self._own_message(channel, ts, cant="cant_update_message")
        content = check_content(args)
        metadata = check_metadata(args)
        self.ws.replace_content(
            msg,
            text=content.text if content.text is not None else content.markdown_text,
            blocks=content.blocks,
            attachments=content.attachments,
            metadata=metadata,
        )
        msg.edited = {"user": self.ws.bot_user_id, "ts": self.ws.next_ts()}
        return {"ok": True, "channel": channel.id, "ts": msg.ts, "text": msg.text, "message": msg.to_api()}

    def chat_post_ephemeral(self, args: JSON) -> JSON:
        channel = self._writable_channel(args, allow_names=True)
        user_id = as_str(args, "user")
        assert user_id is not None
        user = self.ws.users.get(user_id)
        if user is None or user.deleted or (channel.members is not None and user_id not in channel.members):
            raise ApiError("user_not_in_channel")
        content = check_content(args)
        thread_ts = as_str(args, "thread_ts")
        if thread_ts is not None:
            self._thread_parent(channel, thread_ts)
        eph = self.ws.add_ephemeral(
            channel.id,
            user_id,
            text=content.text if content.text is not None else (content.markdown_text or ""),
            blocks=content.blocks or None,
            attachments=content.attachments or None,
            thread_ts=thread_ts,
        )
        return {"ok": True, "message_ts": eph.ts}

    def chat_delete(self, args: JSON) -> JSON:
        channel = self._channel(args)
        ts = as_str(args, "ts")
        assert ts is not None
        msg = self._own_message(channel, ts, cant="cant_delete_message")
        self.ws.delete(msg)
        return {"ok": True, "channel": channel.id, "ts": msg.ts}

    def chat_get_permalink(self, args: JSON) -> JSON:
        channel = self._channel(args)
        ts = as_str(args, "message_ts")
        assert ts is not None
        msg = self.ws.find(channel.id, ts)
        if msg is None or msg.deleted:
            raise ApiError("message_not_found")
        return {"ok": True, "channel": channel.id, "permalink": self.ws.permalink(msg)}

    def users_info(self, args: JSON) -> JSON:
        user_id = as_str(args, "user")
        assert user_id is not None
        user = self.ws.users.get(user_id)
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user.to_api(include_locale=as_bool(args, "include_locale"))}

    def conversations_history(self, args: JSON) -> JSON:
        channel = self._readable_channel(args)
        oldest, latest, inclusive, limit = self._window(args)
        with_metadata = as_bool(args, "include_all_metadata")
        newest_first = [
            m
            for m in reversed(self.ws.top_level(channel.id, include_deleted=True))
            if (not m.deleted or m.reply_count) and self._in_window(m.ts, oldest, latest, inclusive)
        ]
        cursor = as_str(args, "cursor")
        if cursor is not None:
            before = _decode_cursor(cursor)
            newest_first = [m for m in newest_first if ts_to_micros(m.ts) <= before]
        page, rest = newest_first[:limit], newest_first[limit:]
        result: JSON = {
            "ok": True,
            "messages": [m.to_api(include_metadata=with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        result["response_metadata"] = {"next_cursor": _cursor(rest[0].ts) if rest else ""}
        return result

    def conversations_replies(self, args: JSON) -> JSON:
        channel = self._readable_channel(args)
        ts = as_str(args, "ts")
        assert ts is not None
        parent = self.ws.find(channel.id, ts)
        if parent is None or (parent.deleted and not parent.reply_count):
            raise ApiError("thread_not_found")
        oldest, latest, inclusive, limit = self._window(args)
        with_metadata = as_bool(args, "include_all_metadata")
        thread = [parent] if parent.is_reply else [parent, *self.ws.thread(channel.id, parent.ts)]
        # the parent always comes first, like Slack; the window applies to the replies
        selected = [thread[0]] + [m for m in thread[1:] if self._in_window(m.ts, oldest, latest, inclusive)]
        cursor = as_str(args, "cursor")
        if cursor is not None:
            after = _decode_cursor(cursor)
            selected = [m for m in selected if ts_to_micros(m.ts) >= after]
        page, rest = selected[:limit], selected[limit:]
        return {
            "ok": True,
            "messages": [m.to_api(include_metadata=with_metadata) for m in page],
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": _cursor(rest[0].ts) if rest else ""},
        }

    def conversations_info(self, args: JSON) -> JSON:
        channel = self._channel(args)
        return {
            "ok": True,
            "channel": channel.to_api(
                team_id=self.ws.team_id, include_num_members=as_bool(args, "include_num_members")
            ),
        }

    def usergroups_users_list(self, args: JSON) -> JSON:
        group_id = as_str(args, "usergroup")
        assert group_id is not None
        group = self.ws.usergroups.get(group_id)
        if group is None:
            raise ApiError("no_such_subteam")
        if not group.paid_plan:
            raise ApiError("paid_teams_only")
        return {"ok": True, "users": copy.deepcopy(group.users)}
