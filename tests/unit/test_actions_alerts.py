"""Pure pieces around remediation and alerts: plans, offers, messages within Slack's limits, the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot import outgoing as og
from bot.chat.commands import Silence
from bot.chat.handlers import silence_until
from bot.fronts.outgoing import approval_blocks, root_blocks, slack
from bot.monitoring import incidents as inc
from bot.monitoring.alerts import ACTION_PROPOSE, ops_for
from bot.remediation import actions as act
from bot.remediation import approvals as ap
from bot.store import Store
from bot.store.outbox import Outbox, Payload, SinkError
from checks.config import Target
from checks.diagnosis import CAUSES, diagnose
from checks.models import Cause, CheckResult, Status, TargetReport
from checks.registry import CHECK_IDS

T = Target.model_validate({"name": "web", "host": "203.0.113.10", "pm2_app": "kathario-saas", "app_port": 3003,
                           "app_dir": "/srv/app", "pm2_home": "/home/app/.pm2", "pm2_user": "app", "sudo": True,
                           "nginx_conf": "/etc/nginx/nginx.conf"})
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def report(**overrides: tuple[Status, dict[str, Any]]) -> TargetReport:
    checks = [CheckResult(id=cid, status=overrides.get(cid, (Status.OK, {}))[0], summary=cid,
                          details=overrides.get(cid, (Status.OK, {}))[1]) for cid in CHECK_IDS]
    return TargetReport(target="web", host=T.where, checks=tuple(checks), diagnosis=diagnose(T, checks))


def valid(blocks: list[dict[str, Any]]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


def test_plans_are_argv_lists_from_config_only() -> None:
    restart = act.plan("restart", T)
    assert restart.steps[-1].argv[-2:] == ("pm2", "save")  # wt-host: a restart a reboot undoes is no fix
    assert restart.steps[0].argv == ("sudo", "-n", "-u", "app", "env", "PM2_HOME=/home/app/.pm2", "pm2", "restart",
                                     "kathario-saas")
    reload = act.plan("reload-nginx", T)
    assert reload.steps[0].gate and reload.steps[0].argv == ("sudo", "-n", "nginx", "-t", "-c", "/etc/nginx/nginx.conf")
    assert reload.steps[1].argv == ("sudo", "-n", "nginx", "-s", "reload", "-c", "/etc/nginx/nginx.conf")
    rebuild = act.plan("rebuild", T)
    assert rebuild.long and rebuild.steps[0].argv == ("sudo", "-n", "-u", "app", "npm", "--prefix", "/srv/app", "run",
                                                      "build")
    with pytest.raises(act.NotOffered):
        act.plan("rm -rf", T)


def port_report(side: str, app_ports: list[int], port_env: str | None, exec_: str) -> TargetReport:
    return report(**{
        "port.match": (Status.FAIL, {"side": side, "app_ports": app_ports, "port_env": port_env,
                                     "nginx_ports": [3003]}),
        "pm2.status": (Status.OK, {"instances": [{"exec": exec_, "pid": 10, "restarts": 1, "status": "online"}]}),
    })


@pytest.mark.parametrize(
    ("app_ports", "port_env", "exec_", "offered"),
    [
        ([3000], None, "/usr/bin/npm run start", True),  # Next's default: PORT moves it (the seed's fix)
        ([3001], "3001", "/usr/bin/npm run start", True),  # honours PORT
        ([3000], None, "/usr/bin/node node_modules/.bin/next start -p 3000", False),  # hard-coded: a human
        ([4000], "3001", "/usr/bin/npm run start", False),  # ignores PORT
    ],
)
def test_fix_port_only_when_the_app_honours_port(app_ports: list[int], port_env: str | None, exec_: str,
                                                 offered: bool) -> None:
    rep = port_report("app", app_ports, port_env, exec_)
    if offered:
        p = act.plan("fix-port", T, rep)
        assert p.steps[0].argv[-4:] == ("pm2", "restart", "kathario-saas", "--update-env")
        assert "PORT=3003" in p.steps[0].argv
        assert p.steps[1].argv[-1] == "save"
    else:
        with pytest.raises(act.NotOffered, match="human"):
            act.plan("fix-port", T, rep)


def test_fix_port_not_offered_when_nginx_is_the_odd_one_out() -> None:
    with pytest.raises(act.NotOffered, match="off app_port"):
        act.plan("fix-port", T, port_report("nginx", [3003], None, "npm run start"))


def test_every_cause_has_an_action_or_a_human_step() -> None:
    assert set(act.ACTION_FOR_CAUSE) == set(CAUSES)
    for cause_id in CAUSES:
        if act.ACTION_FOR_CAUSE[cause_id] is None:
            text = act.human_step(Cause(cause=cause_id, summary="s", fix=("    proxy_http_version 1.1;",)), T).en
            assert "human" in text.lower()


def test_restart_of_an_app_pm2_does_not_know_needs_a_human() -> None:
    rep = report(**{"pm2.status": (Status.FAIL, {"known_apps": ["other"]})})
    assert act.proposal(rep, T)[0] is None
    with pytest.raises(act.NotOffered, match="start it"):
        act.plan("restart", T, rep)


def test_restart_of_an_app_started_twice_needs_a_human_to_delete_the_copy() -> None:
    rep = report(**{"pm2.status": (Status.WARN, {"partial": True, "duplicates": True, "culprit": 1})})
    with pytest.raises(act.NotOffered, match="pm2 delete 1"):
        act.plan("restart", T, rep)
    # one cluster instance down: restarting is still a fix the bot may run
    cluster = report(**{"pm2.status": (Status.WARN, {"partial": True, "duplicates": False, "culprit": 1})})
    assert act.plan("restart", T, cluster).action == "restart"


def test_proposal_for_a_stopped_app_is_restart() -> None:
    rep = report(**{"pm2.status": (Status.FAIL, {"instances": [{"status": "stopped", "pid": 0, "restarts": 2}]})})
    assert act.proposal(rep, T)[0] == "restart"
    assert act.fingerprint(rep) == {"pid": 0, "restart_time": 2, "status": "stopped"}


def incident(cause: str = "pm2_not_online", kind: str = "down") -> inc.Incident:
    c = Cause(cause=cause, summary="<!channel> kathario-saas is `stopped` & ```gone```",
              evidence=("pm2.status", "port.listen"), fix=("pm2 restart kathario-saas",) * 40)
    return inc.Incident(id="web-1", target="web", kind=kind, cause=cause, summary=c.summary, causes=(c,),  # type: ignore[arg-type]
                        opened_at=NOW, first_failure_at=NOW - timedelta(seconds=30), announced=True,
                        root_ts="1.1", channel="C1")


@pytest.mark.parametrize("kind", ["down", "unreachable"])
def test_root_message_within_limits_and_harmless(kind: str) -> None:
    text, blocks = root_blocks(incident(kind=kind), mention="S0ONCALL", remediation=True, lang="en")
    valid(blocks)
    body = json.dumps(blocks)
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "<!subteam^S0ONCALL>" in text
    assert ("cannot see the server" in text) == (kind == "unreachable")
    assert ACTION_PROPOSE in body
    resolved_text, resolved = root_blocks(incident(), mention="", resolved_after=252, resolved_at=NOW, lang="en")
    valid(resolved)
    assert "resolved after 4 min 12 s" in resolved_text and "actions" not in json.dumps(resolved)


def test_every_event_renders_valid_messages() -> None:
    i = incident()
    events: list[inc.Event] = [
        inc.IncidentOpened(incident=i), inc.IncidentOpened(incident=i, reused_root=True),
        inc.CauseChanged(incident=i, previous_cause="x", previous_summary="y"), inc.Reminder(incident=i, open_for=3600),
        inc.Flapping(incident=i, transitions=3, window=1800), inc.FlapSettled(incident=i, still_failing=True),
        inc.IncidentResolved(incident=i, duration=61), inc.ManualRun(incident=i, by="U1", healthy=False, summary="s"),
        inc.BotWasDown(incident=i, down_for=600),
    ]
    keys = set()
    for seq, event in enumerate(events):
        for op in ops_for(event, mention="", now=NOW, seq=seq):
            text, blocks = slack(op.message, lang="en")
            valid(blocks)
            assert text
            keys.add(op.key)
    assert len(keys) == sum(len(ops_for(e, mention="", now=NOW)) for e in events)


def test_silence_until_is_in_the_requesters_time_zone() -> None:
    now = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 08:00 next day in Seoul
    until = silence_until(Silence("web", until=(9, 30)), now=now, tz="Asia/Seoul")
    assert until == datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    earlier = silence_until(Silence("web", until=(7, 0)), now=now, tz="Asia/Seoul")
    assert earlier == datetime(2026, 11, 27, 22, 0, tzinfo=UTC)  # tomorrow 07:00 KST
    assert silence_until(Silence("web", seconds=1800), now=now, tz="bogus/zone") == now + timedelta(minutes=30)


def test_approval_message_pending_and_final() -> None:
    policy = ap.ApprovalPolicy(approvers=frozenset({"U2", "U3"}))
    request = ap.new_request(entropy=b"\x01" * 8, target="web", action="restart", commands=("pm2 restart x",) * 60,
                             host="deploy@web", reason="pm2_not_online: <@U9> stopped", cause="pm2_not_online",
                             requested_by="U1", team_id="T1", channel="C1", now=NOW, policy=policy,
                             fingerprint={"pid": 0, "restart_time": 1})
    _, blocks = approval_blocks(og.approval_message(request, approvers=policy.approvers, quorum=policy.quorum),
                                lang="en")
    valid(blocks)
    body = json.dumps(blocks)
    assert "wscheck_approve" in body and request.id in body and "<@U9>" not in body
    done = ap.finish(ap.start(ap.click(request, request_id=request.id, user="U2", team_id="T1", bot_team_id="T1",
                                       approve=True, policy=policy, now=NOW).request, now=NOW),
                     ok=True, exit_code=0, note="done", now=NOW)
    _, final = approval_blocks(og.approval_message(done, approvers=policy.approvers, quorum=policy.quorum), lang="en")
    valid(final)
    assert "wscheck_approve" not in json.dumps(final) and "Approved by <@U2>" in json.dumps(final)


class FlakySink:
    """A Slack that rate-limits, then loses an answer after posting: the outbox must deliver exactly once."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str | None, str]] = []
        self.failures = [SinkError("429", retry_after=0), SinkError("timeout", uncertain=True)]
        self.lost: list[str] = []

    def render(self, message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        return slack(og.load(message), lang="en")

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        key = metadata["event_payload"]["op"]
        if self.failures:
            failure = self.failures.pop(0)
            if failure.uncertain:  # the post happened; the answer got lost
                self.posted.append((key, thread_ts, text))
                self.lost.append(key)
            raise failure
        self.posted.append((key, thread_ts, text))
        return f"ts-{len(self.posted)}"

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.posted.append(("update:" + ts, None, text))

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        return "ts-found" if key in self.lost else None


async def test_outbox_retries_429_and_finds_uncertain_posts(db: str) -> None:
    store = await Store.open(db)
    sink = FlakySink()
    roots: dict[str, str] = {}

    async def posted(target: str, incident_id: str, channel: str, ts: str) -> None:
        roots[incident_id] = ts

    async def root_ts(target: str, incident_id: str) -> str | None:
        return roots.get(incident_id)

    clock = [datetime.now(UTC)]  # the store stamps enqueued items with the real time
    box = Outbox(store, sink, on_root_posted=posted, root_ts=root_ts, clock=lambda: clock[0])
    try:
        for kind, key in (("post_root", "k-root"), ("reply", "k-reply")):
            payload = Payload(kind=kind, target="web", incident_id="web-1", key=key, channel="C1",
                              message=og.dump(og.Rendered(text=key)))
            await store.enqueue(lane="web", kind=kind, payload=payload.dump(), dedup_key=key)
        for _ in range(6):
            clock[0] += timedelta(seconds=120)
            await box.drain_once()
        assert await store.outbox_depth() == 0
        keys = [p[0] for p in sink.posted]
        assert keys.count("k-root") == 1, sink.posted  # the lost answer was found, not posted again
        assert keys.count("k-reply") == 1
        reply = next(p for p in sink.posted if p[0] == "k-reply")
        assert reply[1] == roots["web-1"] == "ts-found"
    finally:
        await store.close()
