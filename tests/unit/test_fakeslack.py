"""The Slack fake, proven with the real clients: slack_sdk's AsyncWebClient, its aiohttp SocketModeClient,
AsyncWebhookClient (response_url), SignatureVerifier, and a Bolt AsyncApp over AsyncSocketModeHandler."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

try:
    from tests.fakeslack import FakeSlack
    from tests.fakeslack.blocks import validate_blocks
    from tests.fakeslack.webapi import SPEC_REQUIRED
except ModuleNotFoundError:  # plain `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fakeslack import FakeSlack
    from tests.fakeslack.blocks import validate_blocks
    from tests.fakeslack.webapi import SPEC_REQUIRED

SPEC = Path("/work/shared/slack/slack_web_openapi_v2_without_examples.json")
Handler = Callable[[AsyncBaseSocketModeClient, SocketModeRequest], Awaitable[None]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(ack_timeout=1.0) as f:
        f.add_user("U1", name="alice")
        f.add_user("U2", name="bob")
        f.add_channel("C1", "general")
        f.add_channel("C2", "random", bot_is_member=False)
        yield f


@pytest.fixture
def web(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str, text: str = "Go", value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


async def error_of(call: Awaitable[Any]) -> str:
    """The `error` of a Web API call that must fail."""
    return str((await api_error(call)).response["error"])


def acking(payload: dict[str, Any] | None = None, delay: float = 0.0) -> Handler:
    async def handler(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        if delay:
            await asyncio.sleep(delay)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=payload)
        )

    return handler


async def socket_client(fake: FakeSlack, handler: Handler | None) -> SocketModeClient:
    client = SocketModeClient(
        app_token=fake.app_token, web_client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    )
    if handler is not None:
        client.socket_mode_request_listeners.append(handler)
    await client.connect()
    await fake.wait_connected()
    return client


# == server basics ===========================================================================================
async def test_listens_on_os_chosen_port_and_api_url_has_trailing_slash(fake: FakeSlack) -> None:
    assert fake.port > 0
    assert fake.api_url == f"http://127.0.0.1:{fake.port}/api/"


def test_spec_required_arguments_match_openapi_spec() -> None:
    if not SPEC.exists():
        pytest.skip("Slack OpenAPI spec not available")
    spec = json.loads(SPEC.read_text())
    for method, required in SPEC_REQUIRED.items():
        op = next(iter(spec["paths"]["/" + method].values()))
        from_spec = tuple(p["name"] for p in op["parameters"] if p.get("required") and p["name"] != "token")
        assert set(from_spec) == set(required), method


# == tokens ==================================================================================================
async def test_auth_test_and_token_rejections(fake: FakeSlack, web: AsyncWebClient) -> None:
    res = await web.auth_test()
    assert res["ok"] and res["user_id"] == "UBOT" and res["team_id"] == "T0FAKE" and res["bot_id"]

    bad = AsyncWebClient(token="xoxb-2-wrong", base_url=fake.api_url)
    assert await error_of(bad.auth_test()) == "invalid_auth"
    none = AsyncWebClient(base_url=fake.api_url)
    assert await error_of(none.auth_test()) == "not_authed"
    app_tok = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    err = await api_error(app_tok.chat_postMessage(channel="C1", text="hi"))
    assert err.response["error"] == "not_allowed_token_type"
    err = await api_error(web.apps_connections_open(app_token=fake.bot_token))
    assert err.response["error"] == "not_allowed_token_type"
    ok = await web.apps_connections_open(app_token=fake.app_token)
    assert ok["url"].startswith(f"ws://127.0.0.1:{fake.port}/socket?ticket=")

    assert fake.rejected_calls == 4
    assert [c.token_kind for c in fake.calls] == ["bot", "invalid", "none", "app", "bot", "app"]
    assert fake.messages("C1") == []

    fake.revoke_token(fake.bot_token)
    assert await error_of(web.auth_test()) == "token_revoked"


async def test_unknown_method(web: AsyncWebClient) -> None:
    err = await api_error(web.api_call("chat.postMessagez", json={"channel": "C1", "text": "x"}))
    assert err.response.status_code == 200
    assert err.response["error"] == "unknown_method"


async def test_raw_http_token_placement_and_verbs(fake: FakeSlack) -> None:
    auth = {"Authorization": f"Bearer {fake.bot_token}"}
    async with aiohttp.ClientSession() as s:
        # form-encoded with the token in the body: accepted, like Slack
        async with s.post(
            fake.api_url + "chat.postMessage", data={"token": fake.bot_token, "channel": "C1", "text": "form"}
        ) as r:
            assert (await r.json())["ok"] is True
        # token inside a JSON body: Slack ignores it
        async with s.post(fake.api_url + "auth.test", json={"token": fake.bot_token}) as r:
            assert (await r.json())["error"] == "not_authed"
        # token in the query string: refused (apps created after 2021)
        async with s.get(fake.api_url + "auth.test", params={"token": fake.bot_token}) as r:
            assert (await r.json())["error"] == "not_authed"
        # reads may be GET, writes must be POSTed
        async with s.get(fake.api_url + "conversations.history", params={"channel": "C1"}, headers=auth) as r:
            assert [m["text"] for m in (await r.json())["messages"]] == ["form"]
        async with s.get(
            fake.api_url + "chat.postMessage", params={"channel": "C1", "text": "x"}, headers=auth
        ) as r:
            assert (await r.json())["error"] == "invalid_arguments"
        async with s.post(
            fake.api_url + "chat.postMessage",
            data=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
        ) as r:
            assert (await r.json())["error"] == "invalid_json"
    assert len(fake.messages("C1")) == 1


# == chat.postMessage strictness =============================================================================
@pytest.mark.parametrize(
    ("blocks", "needle"),
    [
        ([section("x")] * 51, "no more than 50 items"),
        ([section("x" * 3001)], "cannot exceed 3000"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "cannot exceed 150"),
        ([{"type": "actions", "elements": [button("a", text="b" * 76)]}], "cannot exceed 75"),
        ([{"type": "sectionz", "text": {"type": "mrkdwn", "text": "x"}}], "unsupported block type"),
    ],
    ids=["51-blocks", "section-3001", "header-151", "button-text-76", "bad-type"],
)
async def test_invalid_blocks_rejected(
    fake: FakeSlack, web: AsyncWebClient, blocks: list[dict[str, Any]], needle: str
) -> None:
    err = await api_error(web.chat_postMessage(channel="C1", text="fallback", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert any(needle in e for e in err.response["errors"]), err.response["errors"]
    assert all("[json-pointer:/blocks" in e for e in err.response["errors"])
    assert fake.messages("C1") == []


@pytest.mark.parametrize(
    ("blocks", "needle"),
    [
        (
            [{"type": "actions", "elements": [button("a", value="v" * 2001)]}],
            "value attribute cannot exceed 2000",
        ),
        ([{"type": "actions", "elements": [button("a" * 256)]}], "action_id attribute cannot exceed 255"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "cannot exceed 10"),
        ([{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}], "cannot exceed 25"),
        ([{**section("x"), "block_id": "b" * 256}], "block_id cannot exceed 255"),
        ([{"type": "actions", "elements": [button("same"), button("same")]}], "not unique within the block"),
        ([{**section("x"), "block_id": "b"}, {**section("y"), "block_id": "b"}], "duplicate block_id"),
        ([{**section("x"), "colour": "red"}], "unknown field"),
        ([{"type": "section", "text": "bare string"}], "expected an object"),
        ([{"type": "actions", "elements": [{"type": "buttonz", "action_id": "a"}]}], "unsupported element"),
        ([section("")], "must not be empty"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "plain_text"),
        ([{"type": "context", "elements": [button("a")]}], "context elements must be"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}], "2001"),
    ],
)
def test_block_validator_limits(blocks: list[dict[str, Any]], needle: str) -> None:
    errors = validate_blocks(blocks)
    assert any(needle in e for e in errors), errors


def test_block_validator_accepts_a_realistic_report() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "wscheck: prod", "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "*3 checks failed*"},
            "accessory": button("details", "Details", "prod"),
        },
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": "*nginx*\nok"}, {"type": "mrkdwn", "text": "x"}],
        },
        {"type": "divider"},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "took 1.2s"},
                {"type": "image", "image_url": "https://x.invalid/i.png", "alt_text": "i"},
            ],
        },
        {
            "type": "actions",
            "block_id": "fixes",
            "elements": [
                {
                    **button("fix:nginx", "Fix nginx", "t1"),
                    "style": "danger",
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Sure?"},
                        "text": {"type": "mrkdwn", "text": "x"},
                        "confirm": {"type": "plain_text", "text": "Yes"},
                        "deny": {"type": "plain_text", "text": "No"},
                    },
                },
                {
                    "type": "static_select",
                    "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "p"},
                    "options": [{"text": {"type": "plain_text", "text": "a"}, "value": "a"}],
                },
            ],
        },
        {
            "type": "rich_text",
            "elements": [
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "nginx -t"}]}
            ],
        },
    ]
    assert validate_blocks(blocks) == []


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
@pytest.mark.filterwarnings("ignore:Additionally, the attachment-level:UserWarning")
async def test_text_fallback_rules(fake: FakeSlack, web: AsyncWebClient) -> None:
    err = await api_error(web.chat_postMessage(channel="C1", blocks=[section("x")]))
    assert err.response["error"] == "missing_text_fallback"
    err = await api_error(web.chat_postMessage(channel="C1"))
    assert err.response["error"] == "no_text"
    err = await api_error(web.chat_postMessage(channel="C1", text="x" * 40001))
    assert err.response["error"] == "msg_too_long"
    err = await api_error(web.chat_postMessage(channel="C1", attachments=[{"color": "#f00"}]))
    assert err.response["error"] == "missing_text_fallback"
    assert fake.messages("C1") == []


async def test_channel_membership_and_threads(fake: FakeSlack, web: AsyncWebClient) -> None:
    assert await error_of(web.chat_postMessage(channel="C2", text="x")) == "not_in_channel"
    assert await error_of(web.chat_postMessage(channel="C404", text="x")) == "channel_not_found"
    fake.add_channel("G1", "secret", is_private=True, bot_is_member=False)
    assert await error_of(web.chat_postMessage(channel="G1", text="x")) == "channel_not_found"
    fake.add_channel("C3", "old", is_archived=True)
    assert await error_of(web.chat_postMessage(channel="C3", text="x")) == "is_archived"

    err = await api_error(web.chat_postMessage(channel="C1", text="x", thread_ts="1700000000.000100"))
    assert err.response["error"] == "thread_not_found"
    parent = await web.chat_postMessage(channel="C1", text="alert")
    reply = await web.chat_postMessage(channel="C1", text="detail", thread_ts=parent["ts"])
    err = await api_error(web.chat_postMessage(channel="C1", text="x", thread_ts=reply["ts"]))
    assert err.response["error"] == "thread_not_found"  # a reply is not a thread
    assert [m.text for m in fake.messages("C1")] == ["alert"]
    assert [m.text for m in fake.replies("C1", parent["ts"])] == ["detail"]
    top = fake.messages("C1")[0]
    assert top.reply_count == 1 and top.latest_reply == reply["ts"]
    by_name = await web.chat_postMessage(channel="#general", text="by name")
    assert by_name["channel"] == "C1"
    assert float(by_name["ts"]) > float(reply["ts"]) > float(parent["ts"])


async def test_missing_required_arguments(web: AsyncWebClient) -> None:
    err = await api_error(web.api_call("chat.postMessage", json={"text": "x"}))
    assert err.response["error"] == "channel_not_found"
    err = await api_error(web.api_call("chat.update", json={"channel": "C1", "text": "x"}))
    assert err.response["error"] == "message_not_found"
    err = await api_error(web.api_call("chat.postEphemeral", json={"channel": "C1", "text": "x"}))
    assert err.response["error"] == "invalid_arguments"
    assert "missing required field: user" in err.response["response_metadata"]["messages"][0]
    err = await api_error(web.api_call("usergroups.users.list", http_verb="GET", params={}))
    assert err.response["error"] == "invalid_arguments"


# == failure injection =======================================================================================
async def test_429_retried_by_rate_limit_handler_and_stored_once(fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    client = AsyncWebClient(
        token=fake.bot_token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    res = await client.chat_postMessage(channel="C1", text="hello")
    assert res["ok"]
    assert [(c.http_status, c.error) for c in fake.calls_to("chat.postMessage")] == [
        (429, "ratelimited"),
        (200, None),
    ]
    assert len(fake.messages("C1")) == 1


async def test_429_carries_retry_after_and_other_injections(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)
    err = await api_error(web.chat_postMessage(channel="C1", text="x"))
    assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "7"
    assert err.response["error"] == "ratelimited"
    fake.fail_next("chat.postMessage", status=500)
    assert (await api_error(web.chat_postMessage(channel="C1", text="x"))).response.status_code == 500
    fake.fail_next("chat.update", error="cant_update_message", count=2)
    for _ in range(2):
        err = await api_error(web.chat_update(channel="C1", ts="1.2", text="x"))
        assert err.response["error"] == "cant_update_message"
    assert fake.messages("C1") == []
    assert all(c.injected for c in fake.calls)


async def test_hang_next_stores_the_message_but_client_times_out(fake: FakeSlack) -> None:
    fake.hang_next("chat.postMessage", 30)
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, timeout=0.5)
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="C1", text="sent but unanswered")
    assert [m.text for m in fake.messages("C1")] == ["sent but unanswered"]
    assert fake.calls_to("chat.postMessage")[0].hung_for == 30


# == reading back ============================================================================================
async def test_metadata_round_trip_and_history_paging(fake: FakeSlack, web: AsyncWebClient) -> None:
    meta = {"event_type": "wscheck_alert", "event_payload": {"target": "prod", "check": "ws_upgrade"}}
    first = await web.chat_postMessage(channel="C1", text="alert", metadata=meta)
    await web.chat_postMessage(channel="C1", text="second")
    third = await web.chat_postMessage(channel="C1", text="third")

    with_meta = await web.conversations_history(channel="C1", include_all_metadata=True)
    assert [m["text"] for m in with_meta["messages"]] == ["third", "second", "alert"]
    assert with_meta["messages"][2]["metadata"] == meta
    without = await web.conversations_history(channel="C1")
    assert "metadata" not in without["messages"][2]

    page = await web.conversations_history(channel="C1", oldest=first["ts"], limit=1)
    assert [m["text"] for m in page["messages"]] == ["third"] and page["has_more"]
    page2 = await web.conversations_history(
        channel="C1", oldest=first["ts"], limit=1, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in page2["messages"]] == ["second"]
    inclusive = await web.conversations_history(channel="C1", oldest=first["ts"], inclusive=True)
    assert len(inclusive["messages"]) == 3
    assert (await web.conversations_history(channel="C1", latest=third["ts"]))["messages"][0][
        "text"
    ] == "second"

    err = await api_error(web.chat_postMessage(channel="C1", text="x", metadata={"event_type": "x"}))
    assert err.response["error"] == "invalid_metadata_format"
    assert await error_of(web.conversations_history(channel="C2")) == "not_in_channel"


async def test_update_delete_permalink_and_replies(fake: FakeSlack, web: AsyncWebClient) -> None:
    blocks = [section("*down*"), {"type": "actions", "elements": [button("ack")]}]
    alert = await web.chat_postMessage(channel="C1", text="down", blocks=blocks)
    reply = await web.chat_postMessage(channel="C1", text="still down", thread_ts=alert["ts"])
    updated = await web.chat_update(channel="C1", ts=alert["ts"], text="recovered")
    assert updated["message"]["edited"]["user"] == "UBOT"
    msg = fake.message("C1", alert["ts"])
    assert msg.text == "recovered" and msg.blocks is not None and len(msg.blocks) == 2  # blocks retained
    assert msg.versions[0]["text"] == "down"
    assert all("block_id" in b for b in msg.blocks)  # Slack fills block_ids in

    thread = await web.conversations_replies(channel="C1", ts=alert["ts"])
    assert [m["text"] for m in thread["messages"]] == ["recovered", "still down"]
    assert thread["messages"][0]["reply_count"] == 1

    link = await web.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert link["permalink"].endswith(f"?thread_ts={alert['ts']}&cid=C1")

    human = fake.add_message("C1", "I'm on it", user="U1")
    assert await error_of(web.chat_update(channel="C1", ts=human.ts, text="x")) == "cant_update_message"
    assert await error_of(web.chat_delete(channel="C1", ts=human.ts)) == "cant_delete_message"
    assert await error_of(web.chat_update(channel="C1", ts="1.000001", text="x")) == "message_not_found"
    await web.chat_delete(channel="C1", ts=reply["ts"])
    assert fake.replies("C1", alert["ts"]) == [] and fake.message("C1", alert["ts"]).reply_count == 0
    err = await api_error(web.conversations_replies(channel="C1", ts="1.000001"))
    assert err.response["error"] == "thread_not_found"


async def test_ephemeral_users_channels_usergroups(fake: FakeSlack, web: AsyncWebClient) -> None:
    res = await web.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert res["message_ts"]
    assert [e.text for e in fake.ephemeral("C1", "U1")] == ["only you"]
    assert fake.messages("C1") == [] and fake.ephemeral(user="U2") == []
    err = await api_error(web.chat_postEphemeral(channel="C1", user="U404", text="x"))
    assert err.response["error"] == "user_not_in_channel"

    fake.add_user("UGUEST", name="guest", is_restricted=True, team_id="T0OTHER", tz="UTC", tz_offset=0)
    user = (await web.users_info(user="UGUEST"))["user"]
    assert user["is_restricted"] and user["team_id"] == "T0OTHER" and user["tz_offset"] == 0
    assert await error_of(web.users_info(user="U404")) == "user_not_found"

    info = await web.conversations_info(channel="C2")
    assert info["channel"]["name"] == "random" and info["channel"]["is_member"] is False

    fake.add_usergroup("S1", ["U1", "U2"])
    fake.add_usergroup("S2", ["U1"], paid_plan=False)
    assert (await web.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    assert await error_of(web.usergroups_users_list(usergroup="S2")) == "paid_teams_only"
    assert await error_of(web.usergroups_users_list(usergroup="S9")) == "no_such_subteam"


# == Socket Mode =============================================================================================
async def test_socket_mode_hello_and_slash_command_ack(fake: FakeSlack) -> None:
    received: list[dict[str, Any]] = []

    async def on_message(message: aiohttp.WSMessage) -> None:
        received.append(json.loads(message.data))

    client = SocketModeClient(
        app_token=fake.app_token,
        web_client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url),
        on_message_listeners=[on_message],
    )
    client.socket_mode_request_listeners.append(acking({"text": "Checking prod…"}))
    try:
        await client.connect()
        await fake.wait_connected()
        await fake.wait_for(lambda: received)
        hello = received[0]
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0FAKE"}

        env = await fake.send_slash_command("check prod", user_id="U1", channel_id="C1")
        assert env.acked and env.ack_latency is not None and 0 <= env.ack_latency < fake.ack_timeout
        assert env.ack_payload == {"text": "Checking prod…"}
        payload = received[1]["payload"]
        assert received[1]["type"] == "slash_commands" and received[1]["accepts_response_payload"] is True
        assert payload["command"] == "/wscheck" and payload["text"] == "check prod"
        assert payload["user_name"] == "alice" and payload["channel_name"] == "general"
        assert payload["is_enterprise_install"] == "false" and payload["response_url"] == env.response_url
        # the ack payload is the immediate (ephemeral) response
        assert [e.text for e in fake.ephemeral("C1", "U1")] == ["Checking prod…"]
        fake.assert_all_acked()
        fake.assert_no_problems()
    finally:
        await client.close()


async def test_unacked_and_late_acks_are_failures(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.1  # the late ack below comes 0.2 s after it, as before (0.3/0.5)
    client = await socket_client(fake, None)  # never acks
    try:
        env = await fake.send_slash_command("status")
        assert not env.acked and env in fake.ack_failures
        with pytest.raises(AssertionError, match=r"not acked within 0\.1s"):
            fake.assert_all_acked()
    finally:
        await client.close()

    fake.socket.ack_failures.clear()
    fake.socket.envelopes.clear()
    slow = await socket_client(fake, acking(delay=0.3))
    try:
        env = await fake.send_slash_command("status")
        assert not env.acked
        await fake.wait_for(lambda: env.acked)
        assert env.ack_latency is not None and env.ack_latency > 0.1
        assert any("late ack" in p for p in env.ack_problems)
        with pytest.raises(AssertionError):
            fake.assert_all_acked()
    finally:
        await slow.close()


async def test_disconnect_makes_the_client_reconnect(fake: FakeSlack) -> None:
    client = await socket_client(fake, acking())
    try:
        assert fake.total_connections == 1
        await fake.disconnect("refresh_requested")
        await fake.wait_connected(min_total=2)
        assert fake.connections == 1
        assert len(fake.calls_to("apps.connections.open")) == 2
        env = await fake.send_slash_command("after reconnect")
        assert env.acked and env.connection_id == 2
        assert fake.socket.refused == []
        fake.assert_all_acked()
    finally:
        await client.close()


async def test_redelivery_and_ticket_reuse(fake: FakeSlack) -> None:
    client = await socket_client(fake, acking())
    try:
        env = await fake.send_slash_command("status")
        again = await fake.redeliver(env)
        assert again.envelope_id == env.envelope_id and again.retry_attempt == 1 and again.acked
        assert again.raw["retry_reason"] == "timeout"
        fake.assert_all_acked()
    finally:
        await client.close()

    url = (await AsyncWebClient(base_url=fake.api_url).apps_connections_open(app_token=fake.app_token))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json()
            assert hello["type"] == "hello"
            await ws.send_str("ping")  # tolerated, recorded
            await ws.send_json({"type": "ping", "id": 1})
            await fake.wait_for(lambda: len(fake.socket.client_messages) == 2)
            assert fake.socket.client_messages == ["ping", {"type": "ping", "id": 1}]
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)  # tickets are single use
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"ws://127.0.0.1:{fake.port}/socket?ticket=made-up")
    assert fake.socket.refused == ["reused ticket", "unknown ticket 'made-up'"]


async def test_two_connections_at_once_newest_gets_envelopes_unless_routed(fake: FakeSlack) -> None:
    """Two replicas of one app: both connected at once; the fake hands an envelope to the newest open connection,
    or to the one `route_to` names (wt-ha aims a click at one replica with it)."""
    got: dict[str, list[str]] = {"first": [], "second": []}

    def client(name: str) -> SocketModeClient:
        async def on_request(c: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
            got[name].append(req.payload["text"])
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        made = SocketModeClient(app_token=fake.app_token,
                                web_client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        made.socket_mode_request_listeners.append(on_request)
        return made

    first, second = client("first"), client("second")
    try:
        await first.connect()
        await fake.wait_connected(min_total=1)
        await second.connect()
        await fake.wait_connected(min_total=2)
        older, newer = (c.id for c in fake.socket.open_connections)
        assert older < newer
        assert (await fake.send_slash_command("one", user_id="U1", channel_id="C1")).connection_id == newer
        fake.socket.route_to = older
        assert (await fake.send_slash_command("two", user_id="U1", channel_id="C1")).connection_id == older
        fake.socket.route_to = None
        assert (await fake.send_slash_command("three", user_id="U1", channel_id="C1")).connection_id == newer
        assert got == {"first": ["two"], "second": ["one", "three"]}
        fake.assert_all_acked()
    finally:
        await first.close()
        await second.close()
        fake.socket.route_to = None


# == response_url ============================================================================================
async def test_response_url_recording_and_limits(fake: FakeSlack) -> None:
    body = fake.slash_command_form("status", user_id="U1", channel_id="C1")
    url = urllib.parse.parse_qs(body.decode())["response_url"][0]
    hook = AsyncWebhookClient(url)

    bad = await hook.send(text="x", blocks=[{"type": "nope"}])
    assert bad.status_code == 400 and json.loads(bad.body)["error"] == "invalid_blocks"
    assert (await hook.send(blocks=[section("x")])).status_code == 400  # missing_text_fallback

    for i in range(5):
        res = await hook.send(text=f"update {i}", response_type="ephemeral" if i else "in_channel")
        assert res.status_code == 200 and json.loads(res.body) == {"ok": True}
    used = await hook.send(text="sixth")
    assert used.status_code == 404 and json.loads(used.body)["error"] == "used_url"

    assert [r["text"] for r in fake.responses(url)] == [f"update {i}" for i in range(5)]
    assert len(fake.response_posts(url)) == 8
    assert [m.text for m in fake.messages("C1")] == ["update 0"]  # in_channel
    assert [e.text for e in fake.ephemeral("C1", "U1")] == [f"update {i}" for i in range(1, 5)]

    expired = fake.slash_command_form("status", user_id="U1", channel_id="C1")
    expired_url = urllib.parse.parse_qs(expired.decode())["response_url"][0]
    fake.expire_response_urls()
    res = await AsyncWebhookClient(expired_url).send(text="late")
    assert res.status_code == 404 and json.loads(res.body)["error"] == "expired_url"
    res = await AsyncWebhookClient(f"{fake.base_url}/response/nope").send(text="x")
    assert res.status_code == 404 and json.loads(res.body)["error"] == "expired_url"
    with pytest.raises(AssertionError, match="response_url post rejected"):
        fake.assert_no_problems()


async def test_block_action_on_ephemeral_then_replace_and_delete(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    blocks = [
        section("Restart nginx?"),
        {"type": "actions", "elements": [button("approve", "Approve", "t-1")]},
    ]
    await web.chat_postEphemeral(channel="C1", user="U1", text="Restart nginx?", blocks=blocks)
    with pytest.raises(AssertionError, match="no element"):
        fake.block_action_form("approve", user_id="U1", channel_id="C1")  # not in a channel message
    with pytest.raises(AssertionError, match="has value 't-1'"):
        fake.block_action_form("approve", "t-2", user_id="U1", channel_id="C1", container="ephemeral")
    form = fake.block_action_form("approve", user_id="U1", channel_id="C1", container="ephemeral")
    payload = json.loads(urllib.parse.parse_qs(form.decode())["payload"][0])
    assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    assert payload["actions"][0]["value"] == "t-1" and payload["actions"][0]["block_id"]
    hook = AsyncWebhookClient(payload["response_url"])
    assert (await hook.send(text="Approved by alice", replace_original=True)).status_code == 200
    assert [e.text for e in fake.ephemeral("C1", "U1")] == ["Approved by alice"]
    assert (await hook.send_dict({"delete_original": True})).status_code == 200
    assert fake.ephemeral("C1", "U1") == []


async def test_events_form_encoded_blocks_and_reset(fake: FakeSlack) -> None:
    auth = {"Authorization": f"Bearer {fake.bot_token}"}
    async with aiohttp.ClientSession() as s:
        data = {"channel": "C1", "text": "t", "blocks": json.dumps([section("from a form")])}
        async with s.post(fake.api_url + "chat.postMessage", data=data, headers=auth) as r:
            assert (await r.json())["message"]["blocks"][0]["text"]["text"] == "from a form"
        data["blocks"] = "[{not json"
        async with s.post(fake.api_url + "chat.postMessage", data=data, headers=auth) as r:
            assert (await r.json())["error"] == "invalid_blocks_format"
    client = await socket_client(fake, acking())
    try:
        env = await fake.send_event(
            {"type": "app_mention", "user": "U1", "text": "<@UBOT> status", "channel": "C1"}
        )
        assert env.acked and env.type == "events_api" and env.payload["event"]["type"] == "app_mention"
        fake.reset()
        assert (
            fake.calls == [] and fake.messages("C1") == [] and fake.envelopes == [] and fake.connections == 1
        )
        assert (await fake.send_slash_command("after reset")).acked
    finally:
        await client.close()


# == HTTP mode ===============================================================================================
def test_sign_matches_slack_sdk_signature_verifier() -> None:
    fake = FakeSlack(signing_secret="s3cret")
    fake.add_user("U1", name="alice")
    fake.add_channel("C1", "general")
    fake.port = 1  # payloads embed a response_url; no server needed here
    body = fake.slash_command_form("check prod")
    headers = fake.sign(body)
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(body, headers)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"&x=1", headers)
    assert not verifier.is_valid_request(body, fake.sign(body, timestamp=1_600_000_000))  # stale
    form = urllib.parse.parse_qs(body.decode())
    assert form["command"] == ["/wscheck"] and form["text"] == ["check prod"] and form["user_id"] == ["U1"]


# == waiting =================================================================================================
async def test_wait_for_times_out_with_a_dump(fake: FakeSlack, web: AsyncWebClient) -> None:
    await web.chat_postMessage(channel="C1", text="something")
    with pytest.raises(AssertionError, match=r"(?s)timed out.*chat.postMessage.*'something'"):
        await fake.wait_for(lambda: fake.messages("C2"), timeout=0.2)


# == Bolt end to end =========================================================================================
async def test_bolt_async_app_over_socket_mode(fake: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))

    @app.command("/wscheck")
    async def wscheck(ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await ack(text=f"Checking {command['text']}…")
        await client.chat_postMessage(
            channel=command["channel_id"],
            text="prod: nginx down",
            blocks=[
                section("*prod*: nginx down"),
                {"type": "actions", "elements": [button("fix", "Fix", "nginx")]},
            ],
        )
        await respond(text="report posted")

    @app.action("fix")
    async def fix(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text=f"fixed {body['actions'][0]['value']}", replace_original=True)

    handler = AsyncSocketModeHandler(app, fake.app_token)
    await handler.connect_async()
    try:
        await fake.wait_connected()
        env = await fake.send_slash_command("prod")
        assert env.acked and env.ack_payload == {"text": "Checking prod…"}
        await fake.wait_for(lambda: fake.responses(env))
        assert fake.responses(env) == [{"text": "report posted"}]
        [report] = fake.messages("C1")
        assert len(fake.calls_to("auth.test")) == 1  # Bolt's authorization

        click = await fake.send_block_action("fix", user_id="U1", channel_id="C1")
        assert click.payload["message"]["ts"] == report.ts
        assert click.payload["actions"][0]["value"] == "nginx"
        await fake.wait_for(lambda: fake.responses(click))
        assert fake.message("C1", report.ts).text == "fixed nginx"
        with pytest.raises(AssertionError, match="no element with action_id 'nope'"):
            await fake.send_block_action("nope", user_id="U1", channel_id="C1")
        fake.assert_all_acked()
        fake.assert_no_problems()
    finally:
        await handler.close_async()
