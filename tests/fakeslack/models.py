"""Records kept by the fake: workspace objects, stored messages, API calls, envelopes, response_url posts."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]
TokenKind = Literal["bot", "app", "none", "invalid", "revoked"]


class ApiError(Exception):
    """Raised inside a Web API handler: becomes `{"ok": false, "error": error, **extra}` (HTTP 200)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class User:
    id: str
    name: str
    team_id: str
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_bot: bool = False
    tz: str = "Asia/Seoul"
    tz_offset: int = 32400
    deleted: bool = False
    real_name: str = ""

    def to_api(self, *, include_locale: bool = False) -> JSON:
        real_name = self.real_name or self.name
        user: JSON = {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": self.tz_offset,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": self.name,
                "display_name_normalized": self.name,
                "team": self.team_id,
                "avatar_hash": "g0000000000",
                "image_48": "https://fakeslack.invalid/avatar_48.png",
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
            "is_email_confirmed": not self.is_bot,
        }
        if include_locale:
            user["locale"] = "en-US"
        return user


@dataclass
class Channel:
    id: str
    name: str
    bot_is_member: bool = True
    is_private: bool = False
    is_archived: bool = False
    is_im: bool = False
    #: None = every user is a member (only consulted by chat.postEphemeral's `user_not_in_channel`)
    members: set[str] | None = None
    created: int = 1700000000

    def to_api(self, *, team_id: str, include_num_members: bool = False) -> JSON:
        info: JSON = {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_mpim": False,
            "is_private": self.is_private or self.is_im,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": False,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "is_member": self.bot_is_member,
            "creator": "U0CREATOR",
            "context_team_id": team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        if include_num_members:
            info["num_members"] = len(self.members) if self.members is not None else 0
        return info


@dataclass
class Usergroup:
    id: str
    users: list[str]
    paid_plan: bool = True


@dataclass
class Message:
    """A message stored in a channel (top level, thread reply or thread broadcast)."""

    channel: str
    ts: str
    text: str
    user: str
    team: str
    blocks: list[JSON] | None = None
    attachments: list[JSON] | None = None
    metadata: JSON | None = None
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None
    reply_broadcast: bool = False
    reply_count: int = 0
    reply_users: list[str] = field(default_factory=list)
    latest_reply: str | None = None
    edited: JSON | None = None
    deleted: bool = False
    #: "chat.postMessage", "response_url", "slash_ack" or "test" (added by the test itself)
    via: str = "chat.postMessage"
    #: every argument the message was posted with (after parsing), for assertions on e.g. unfurl_links
    args: JSON = field(default_factory=dict)
    #: earlier versions ({"text", "blocks", "attachments", "metadata", "replaced_at"}) before each edit
    versions: list[JSON] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def is_top_level(self) -> bool:
        return not self.is_reply

    def to_api(self, *, include_metadata: bool = True) -> JSON:
        """The message as `conversations.history` / `chat.postMessage` show it."""
        if self.deleted:
            return {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                "hidden": True,
                "ts": self.ts,
                "thread_ts": self.ts,
                "reply_count": self.reply_count,
                "reply_users": list(self.reply_users),
                "reply_users_count": len(self.reply_users),
                "latest_reply": self.latest_reply,
            }
        msg: JSON = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "team": self.team,
        }
        if self.bot_id is not None:
            msg["bot_id"] = self.bot_id
            msg["app_id"] = self.app_id
            msg["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": "wscheck",
                "deleted": False,
            }
        if self.blocks:
            msg["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            msg["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts is not None:
            msg["thread_ts"] = self.thread_ts
        if self.is_reply:
            msg["parent_user_id"] = self.parent_user_id
            if self.reply_broadcast:
                msg["subtype"] = "thread_broadcast"
        if self.reply_count:
            msg.update(
                reply_count=self.reply_count,
                reply_users_count=len(self.reply_users),
                latest_reply=self.latest_reply,
                reply_users=list(self.reply_users),
                is_locked=False,
                subscribed=False,
            )
        if self.edited is not None:
            msg["edited"] = dict(self.edited)
        if include_metadata and self.metadata is not None:
            msg["metadata"] = copy.deepcopy(self.metadata)
        return msg


@dataclass
class EphemeralMessage:
    channel: str
    user: str
    ts: str
    text: str
    blocks: list[JSON] | None = None
    attachments: list[JSON] | None = None
    thread_ts: str | None = None
    #: "chat.postEphemeral", "response_url" or "slash_ack"
    via: str = "chat.postEphemeral"
    deleted: bool = False
    versions: list[JSON] = field(default_factory=list)

    def to_api(self) -> JSON:
        msg: JSON = {"type": "message", "text": self.text, "ts": self.ts, "is_ephemeral": True}
        if self.blocks:
            msg["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            msg["attachments"] = copy.deepcopy(self.attachments)
        return msg


@dataclass
class ApiCall:
    """One HTTP request to `/api/<method>` and what the fake answered."""

    method: str
    args: JSON
    token_kind: TokenKind
    http_method: str
    http_status: int = 0
    response: JSON = field(default_factory=dict)
    #: seconds the answer was held back by `hang_next` (0 if not)
    hung_for: float = 0.0
    #: True when the answer came from `fail_next` (nothing was processed)
    injected: bool = False
    at: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        err = self.response.get("error")
        return err if isinstance(err, str) else None


@dataclass(eq=False)
class Envelope:
    """One delivery of a Socket Mode envelope (a redelivery is a new `Envelope` with the same id)."""

    envelope_id: str
    type: str
    payload: JSON
    accepts_response_payload: bool
    retry_attempt: int = 0
    retry_reason: str = ""
    raw: JSON = field(default_factory=dict)
    connection_id: int = 0
    sent_at: float = 0.0
    acked_at: float | None = None
    #: the `payload` the client sent with its ack (None when it acked without one)
    ack_payload: JSON | None = None
    #: problems with the ack (late, invalid payload, payload not accepted for this type…)
    ack_problems: list[str] = field(default_factory=list)
    response_url: str | None = None
    ack_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def ack_latency(self) -> float | None:
        """Seconds between sending the envelope and receiving its ack (None if never acked)."""
        return None if self.acked_at is None else self.acked_at - self.sent_at


@dataclass
class ResponseUrlPost:
    """One POST to a response_url (accepted or rejected)."""

    url: str
    body: Any
    http_status: int
    response: JSON
    at: float

    @property
    def accepted(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class ResponseUrl:
    id: str
    url: str
    created_at: float
    kind: str
    channel_id: str
    user_id: str
    envelope_id: str | None = None
    #: the message the interaction came from: ("message"|"ephemeral", ts) or None (slash commands)
    original: tuple[str, str] | None = None
    uses: int = 0
    posts: list[ResponseUrlPost] = field(default_factory=list)
    #: ts of the last ephemeral this URL (or its slash command ack) produced — what replace_original replaces
    last_ephemeral_ts: str | None = None
