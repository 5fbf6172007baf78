"""The fake workspace's state: users, channels, user groups, stored messages and ephemeral messages."""

from __future__ import annotations

import copy
import secrets
import string
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from .blocks import _walk
from .models import JSON, Channel, EphemeralMessage, Message, User, Usergroup

_ID_ALPHABET = string.ascii_letters + string.digits


def _random_id(n: int = 5) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


def ts_to_micros(ts: str) -> int:
    """ "1700000000.000100" -> 1700000000000100; raises ValueError on anything else."""
    try:
        value = Decimal(ts)
    except (InvalidOperation, TypeError) as e:
        raise ValueError(f"not a timestamp: {ts!r}") from e
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a timestamp: {ts!r}")
    return int(value * 1_000_000)


def micros_to_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def normalize_blocks(blocks: list[JSON] | None) -> list[JSON] | None:
    """What Slack stores: a copy with a generated `block_id` / `action_id` wherever the app gave none."""
    if blocks is None:
        return None
    out = copy.deepcopy(blocks)
    for block in out:
        block.setdefault("block_id", _random_id())
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            candidates = [block["accessory"]]
        elif block.get("type") == "input" and isinstance(block.get("element"), dict):
            candidates = [block["element"]]
        for element in candidates:
            if isinstance(element, dict) and element.get("type") != "image":
                element.setdefault("action_id", _random_id())
    return out


def find_button(blocks: list[JSON] | None, action_id: str) -> tuple[JSON, JSON] | None:
    """(block, element) of the element with `action_id` in stored (normalized) blocks."""
    for block in blocks or []:
        for _path, obj in _walk(block, ""):
            if obj is not block and obj.get("action_id") == action_id:
                return block, obj
    return None


class Workspace:
    def __init__(self, *, team_id: str, bot_user_id: str, bot_id: str, app_id: str) -> None:
        self.team_id = team_id
        self.team_domain = "fakeslack"
        self.team_name = "Fake Slack"
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.ephemerals: list[EphemeralMessage] = []
        self.messages_by_channel: dict[str, list[Message]] = {}
        self._last_micros = 0
        self.users[bot_user_id] = User(id=bot_user_id, name="wscheck", team_id=team_id, is_bot=True)

    # -- time stamps -------------------------------------------------------------------------------------
    def next_ts(self) -> str:
        """A message ts like Slack's ("1700000000.000100"), from the wall clock, strictly increasing."""
        micros = max(int(time.time() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return micros_to_ts(micros)

    # -- channels and messages ---------------------------------------------------------------------------
    def channel_by_name(self, name: str) -> Channel | None:
        name = name.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        return None

    def dm_channel(self, user_id: str) -> Channel:
        """The bot's IM with `user_id` (created on first use, like posting to a user ID does on Slack)."""
        channel_id = "D" + user_id[1:] if len(user_id) > 1 else "D" + user_id
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = Channel(id=channel_id, name=user_id, is_im=True, members={user_id, self.bot_user_id})
            self.channels[channel_id] = channel
            self.messages_by_channel.setdefault(channel_id, [])
        return channel

    def ensure_storage(self, channel_id: str) -> list[Message]:
        return self.messages_by_channel.setdefault(channel_id, [])

    def all_messages(self, channel_id: str) -> list[Message]:
        return self.ensure_storage(channel_id)

    def find(self, channel_id: str, ts: str) -> Message | None:
        for msg in self.ensure_storage(channel_id):
            if msg.ts == ts:
                return msg
        return None

    def top_level(self, channel_id: str, *, include_deleted: bool = False) -> list[Message]:
        return [
            m
            for m in self.ensure_storage(channel_id)
            if (m.is_top_level or m.reply_broadcast) and (include_deleted or not m.deleted)
        ]

    def thread(self, channel_id: str, thread_ts: str, *, include_deleted: bool = False) -> list[Message]:
        return [
            m
            for m in self.ensure_storage(channel_id)
            if m.is_reply and m.thread_ts == thread_ts and (include_deleted or not m.deleted)
        ]

    def store(
        self,
        channel_id: str,
        *,
        text: str,
        user: str,
        blocks: list[JSON] | None = None,
        attachments: list[JSON] | None = None,
        metadata: JSON | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        as_bot: bool = True,
        via: str = "chat.postMessage",
        args: JSON | None = None,
    ) -> Message:
        ts = self.next_ts()
        user_obj = self.users.get(user)
        msg = Message(
            channel=channel_id,
            ts=ts,
            text=text,
            user=user,
            team=user_obj.team_id if user_obj is not None else self.team_id,
            blocks=normalize_blocks(blocks),
            attachments=copy.deepcopy(attachments),
            metadata=copy.deepcopy(metadata),
            bot_id=self.bot_id if as_bot else None,
            app_id=self.app_id if as_bot else None,
            thread_ts=thread_ts,
            reply_broadcast=reply_broadcast and thread_ts is not None,
            via=via,
            args=copy.deepcopy(args or {}),
        )
        if thread_ts is not None:
            parent = self.find(channel_id, thread_ts)
            assert parent is not None, "thread parent checked by the caller"
            parent.thread_ts = parent.ts
            msg.parent_user_id = parent.user
            parent.reply_count += 1
            parent.latest_reply = ts
            if user not in parent.reply_users:
                parent.reply_users.append(user)
        self.ensure_storage(channel_id).append(msg)
        return msg

    def replace_content(
        self,
        msg: Message | EphemeralMessage,
        *,
        text: str | None,
        blocks: list[JSON] | None,
        attachments: list[JSON] | None,
        metadata: JSON | None = None,
        keep_missing: bool = True,
    ) -> None:
        """Edit a message; with keep_missing, blocks/attachments not given are kept (chat.update's rule)."""
        old: JSON = {
            "text": msg.text,
            "blocks": copy.deepcopy(msg.blocks),
            "attachments": copy.deepcopy(msg.attachments),
            "replaced_at": time.time(),
        }
        if isinstance(msg, Message):
            old["metadata"] = copy.deepcopy(msg.metadata)
        msg.versions.append(old)
        if text is not None or not keep_missing:
            msg.text = text or ""
        if blocks is not None or not keep_missing:
            msg.blocks = normalize_blocks(blocks) if blocks else None
        if attachments is not None or not keep_missing:
            msg.attachments = copy.deepcopy(attachments) if attachments else None
        if isinstance(msg, Message) and metadata is not None:
            msg.metadata = copy.deepcopy(metadata)

    def delete(self, msg: Message) -> None:
        msg.deleted = True
        if msg.is_reply and msg.thread_ts is not None:
            parent = self.find(msg.channel, msg.thread_ts)
            if parent is not None:
                remaining = self.thread(msg.channel, parent.ts)
                parent.reply_count = len(remaining)
                parent.latest_reply = remaining[-1].ts if remaining else None
                parent.reply_users = list(dict.fromkeys(m.user for m in remaining))

    def add_ephemeral(
        self,
        channel_id: str,
        user: str,
        *,
        text: str,
        blocks: list[JSON] | None,
        attachments: list[JSON] | None = None,
        thread_ts: str | None = None,
        via: str = "chat.postEphemeral",
    ) -> EphemeralMessage:
        eph = EphemeralMessage(
            channel=channel_id,
            user=user,
            ts=self.next_ts(),
            text=text,
            blocks=normalize_blocks(blocks),
            attachments=copy.deepcopy(attachments),
            thread_ts=thread_ts,
            via=via,
        )
        self.ephemerals.append(eph)
        return eph

    def find_ephemeral(self, channel_id: str, ts: str) -> EphemeralMessage | None:
        for eph in self.ephemerals:
            if eph.channel == channel_id and eph.ts == ts:
                return eph
        return None

    def permalink(self, msg: Message) -> str:
        base = f"https://{self.team_domain}.slack.com/archives/{msg.channel}/p{msg.ts.replace('.', '')}"
        if msg.is_reply:
            return f"{base}?thread_ts={msg.thread_ts}&cid={msg.channel}"
        return base
