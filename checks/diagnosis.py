"""From check results to the known causes of the seed story, root cause first, with this target's fix.

Pure: no I/O, just rules over results. Each rule fires on its trigger check and *consumes* the failing
checks it explains, so a consequence is not reported as a cause of its own: a missing BUILD_ID makes
PM2 `errored`, nothing listen and nginx answer 502 — that is one cause (`next_build_missing`), not
four. Rules run in root-first order; alerts and remediation buttons use the first cause.

Cause ids are a public interface (alerts, remediation, the store): never rename one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from checks import commands as cmd
from checks.causes import CAUSE_BY_ID, CAUSE_SPECS
from checks.config import Target
from checks.messages import Msg, msg, verbatim
from checks.models import Cause, CheckResult, Status
from checks.parsers.certs import CERT_INVALID_KINDS, WHY_KEYS
from checks.parsers.nginx_route import split_proxy_pass
from checks.registry import CHECKS

BAD = (Status.FAIL, Status.ERROR)

#: Every cause id the diagnosis can produce, root-first, with its English description (docs, help, `--json`).
#: Derived from checks/causes.py's CAUSE_SPECS, where a cause is registered.
CAUSES: dict[str, str] = {spec.id: spec.description for spec in CAUSE_SPECS}


class _Cmd(str):
    """A command fix line that needs `tool` on the target: dropped when the same report found it missing."""

    tool: str

    def __new__(cls, text: str, tool: str) -> _Cmd:
        line = super().__new__(cls, text)
        line.tool = tool
        return line


#: Tools whose binary a check can find missing, and the Target setting that names the binary.
_TOOL_SETTING = {"pm2": "pm2_bin", "nginx": "nginx_bin"}


@dataclass
class _State:
    target: Target
    results: dict[str, CheckResult]
    #: The config file the targets came from ("" = built-in default): the `wscheck trust` hint keeps it.
    config_file: str = ""
    consumed: set[str] = field(default_factory=set)
    causes: list[Cause] = field(default_factory=list)

    def bad(self, check_id: str) -> bool:
        r = self.results.get(check_id)
        return r is not None and r.status in BAD and check_id not in self.consumed

    def failed(self, check_id: str) -> bool:
        """The check ran and found the problem (`fail`); an `error` is no evidence of a cause."""
        r = self.results.get(check_id)
        return r is not None and r.status is Status.FAIL and check_id not in self.consumed

    def ran(self, check_id: str) -> bool:
        """The check ran to a verdict (ok/warn/fail); skipped, errored and absent checks said nothing."""
        r = self.results.get(check_id)
        return r is not None and r.status in (Status.OK, Status.WARN, Status.FAIL)

    def ok(self, check_id: str) -> bool:
        r = self.results.get(check_id)
        return r is not None and r.status is Status.OK

    def missing_tools(self) -> set[str]:
        """Tools (pm2, nginx) whose binary this very report found missing on the target."""
        return {cid.split(".", 1)[0] for cid, r in self.results.items()
                if cid.split(".", 1)[0] in _TOOL_SETTING
                and "missing_binary" in (r.details.get("error_kind"), r.details.get("kind"))}

    def get(self, check_id: str) -> CheckResult | None:
        return self.results.get(check_id)

    def detail(self, check_id: str, key: str) -> object:
        r = self.results.get(check_id)
        return r.details.get(key) if r else None

    def add(self, cause: str, summary: Msg, trigger: str | Sequence[str], explains: Sequence[str],
            fix: Sequence[str | Msg], severity: Status | None = None) -> None:
        """Record a cause. A fix line given as `str` is a command (never translated), as `Msg` a sentence.

        `severity` defaults to the cause's registered one (checks/causes.py)."""
        if severity is None:
            severity = CAUSE_BY_ID[cause].severity
        triggers = [trigger] if isinstance(trigger, str) else list(trigger)
        evidence = [c for c in (*triggers, *explains) if self._counts(c)]
        self.consumed.update(evidence)
        lines = tuple(line if isinstance(line, Msg) else verbatim(str(line)) for line in self._runnable(fix))
        self.causes.append(Cause(cause=cause, message=summary, severity=severity,
                                 evidence=tuple(dict.fromkeys(evidence)), fixes=lines))

    def _runnable(self, fix: Sequence[str | Msg]) -> list[str | Msg]:
        """Never suggest a command the report found missing: say that the tool is missing instead (once)."""
        missing = self.missing_tools()
        out: list[str | Msg] = []
        said: set[str] = set()
        for line in fix:
            tool = line.tool if isinstance(line, _Cmd) else ("nginx" if isinstance(line, Msg)
                                                             and line.key == "fix.restart_nginx" else "")
            if tool not in missing:
                out.append(line)
            elif tool not in said:
                said.add(tool)
                setting = _TOOL_SETTING[tool]
                out.append(msg("fix.tool_missing", tool=tool, bin=getattr(self.target, setting), setting=setting))
        return out

    def _counts(self, check_id: str) -> bool:
        r = self.results.get(check_id)
        return r is not None and check_id not in self.consumed and r.status in (*BAD, Status.WARN, Status.SKIP)


Rule = Callable[[_State], None]


def _outward(check_id: str) -> int:
    """Evidence reads outward from the app, as every rule lists it: the app and its port, then the app answering
    on the host (`*.local`), then through nginx (`*.proxy`), then its logs. Ties keep the checklist order."""
    if check_id.endswith(".local") or check_id == "ws.sessions":  # wt-sio: a probe on the host, too
        return 1
    if check_id.endswith(".proxy"):
        return 2
    return 3 if check_id.endswith(".logs") else 0


#: What the rules of a down app (no build, port taken, PM2 not online or crash-looping) consume, outward:
#: every check downstream of the app (CheckSpec.downstream_of_app, the same set as bot.monitoring.monitor.APP_STARTING)
#: plus every other check of the app's port, i.e. port.conflict. Why port.conflict here and not there: a
#: *failing* port.conflict is a foreign holder, which a starting app does not explain (so it is not downstream
#: and the monitor does not set it aside), and `_port_conflict` runs before these rules and takes it; what is
#: left of it here is a warn/error/skip ("cannot tell whose the port is while the app has no process"), which
#: the down app does explain. pm2.status is the trigger of the PM2 rules and named first by the others.
_APP_DOWN_EFFECTS: tuple[str, ...] = tuple(sorted(
    (c.id for c in CHECKS if c.downstream_of_app or c.item == "port"), key=_outward))


def _pm2(t: Target, *args: str, env: dict[str, str] | None = None) -> str:
    return _Cmd(cmd.display(cmd.pm2(t, *args, env=env)), "pm2")


def _start_cmd(t: Target, script: str = "start") -> str:
    return _pm2(t, "start", "npm", "--name", t.pm2_app, "--", "run", script, env={"PORT": str(t.app_port)})


def _nginx_apply(t: Target) -> list[str]:
    return [_Cmd(cmd.display(cmd.nginx_test(t)), "nginx"), _Cmd(cmd.display(cmd.nginx_reload(t)), "nginx")]


def _ssh_login(t: Target) -> str:
    """The login the bot itself tries, with the same key, port and known_hosts, so that it works as printed."""
    argv = ["ssh"]
    if t.identity_file:
        argv += ["-i", t.identity_file]
    argv += ["-p", str(t.port), "-o", f"UserKnownHostsFile={t.known_hosts}", f"{t.user}@{t.host}" if t.user
             else t.host, "true"]
    return shlex.join(argv)


def _trust(s: _State) -> Msg:
    if s.config_file:
        return msg("fix.trust_config", command=shlex.join(["wscheck", "trust", s.target.name,
                                                           "--config", s.config_file]))
    return msg("fix.trust", target=s.target.name)


def _unreachable(s: _State) -> None:
    hit = [cid for cid, r in s.results.items() if r.details.get("error_kind") == "unreachable"]
    if not hit:
        return
    # The first attempt's own words, not a later check's "… (next attempt in N s)" echo of them.
    first = next((c for c in hit if s.results[c].message.key != "transport.retry_later"), hit[0])
    reason = s.results[first].message
    # "public_url does not answer either" only when the public checks ran and failed: a skipped or
    # errored http.proxy said nothing about public_url.
    public = [c for c in ("http.proxy", "ws.proxy") if c in s.results]
    explains = public if public and all(s.failed(c) for c in public) else []
    fix: list[str | Msg] = [msg("fix.ssh_login", command=_ssh_login(s.target))]
    if any(s.results[c].details.get("host_key") for c in hit):
        fix.append(_trust(s))
    key = "cause.target_unreachable_public" if explains else "cause.target_unreachable"
    s.add("target_unreachable", msg(key, reason=reason), hit, explains, fix)


def _nginx_invalid(s: _State) -> None:
    r = s.get("nginx.syntax")
    if not s.failed("nginx.syntax") or r is None:
        return
    where: str | Msg = f"{r.details.get('file')}:{r.details.get('line')}" if r.details.get("file") \
        else msg("fix.the_nginx_config")
    message = str(r.details.get("message")) if r.details.get("message") else r.message
    # The reverse of a pending reload (wt-nginxrt): the running nginx still serves its old config, so the
    # site works and this is a warning: a reload now would fail.
    serving = all(s.ok(c) for c in ("http.proxy", "ws.proxy"))
    key = "cause.nginx_config_invalid_serving" if serving else "cause.nginx_config_invalid"
    s.add("nginx_config_invalid", msg(key, message=message), "nginx.syntax", ("nginx.websocket", "port.match"),
          [msg("fix.edit", where=where), *_nginx_apply(s.target)], severity=Status.WARN if serving else Status.FAIL)


def _app_outside_pm2(s: _State) -> None:
    """The port's holder is not PM2's app, PM2 does not run the app, and yet app_port answers the app's HTTP and its
    WebSocket on ws_path: the app itself, started outside PM2. Not `port_conflict` (whose fix kills the holder: the
    site would go down) and not "the app is down": a warning that PM2 does not supervise it."""
    r = s.get("port.conflict")
    if not s.failed("port.conflict") or r is None or not s.failed("pm2.status"):
        return
    if not (s.ok("http.local") and s.ok("ws.local")):
        return
    t = s.target
    holders = [h for h in r.details.get("foreign") or [] if isinstance(h, dict)]
    who: str | Msg = ", ".join(f"{h['name']} (pid {h['pid']}, user {h.get('user', '?')})" for h in holders) \
        or msg("cause.another_process")
    pids = " ".join(str(h["pid"]) for h in holders)
    start = _pm2(t, "resurrect") if s.detail("pm2.saved", "saved_not_running") else _start_cmd(t)
    s.add("app_outside_pm2", msg("cause.app_outside_pm2", who=who, port=t.app_port, app=t.pm2_app),
          "port.conflict", ("pm2.status", "port.listen", "port.match", "pm2.saved", "pm2.logs", "pm2.restarts",
                            "host.fds"),
          [msg("fix.confirm_port_holder", port=t.app_port),
           msg("fix.move_under_pm2", pids=pids or "?"), start, _pm2(t, "save")])


def _port_conflict(s: _State) -> None:
    r = s.get("port.conflict")
    if not s.failed("port.conflict") or r is None:
        return
    t = s.target
    holders = r.details.get("foreign") or []
    names = ", ".join(f"{h['name']} (pid {h['pid']})" for h in holders if isinstance(h, dict))
    who: str | Msg = names or msg("cause.another_process")
    pids = [str(h["pid"]) for h in holders if isinstance(h, dict)]
    fix: list[str | Msg] = [msg("fix.confirm_port_holder", port=t.app_port)]
    if pids:
        fix.append(msg("fix.kill", pids=" ".join(pids)))
    fix += [_pm2(t, "restart", t.pm2_app), _pm2(t, "save")]
    s.add("port_conflict", msg("cause.port_conflict", port=t.app_port, who=who, app=t.pm2_app),
          "port.conflict", _APP_DOWN_EFFECTS, fix)


def _build_missing(s: _State) -> None:
    r = s.get("next.build")
    if not s.failed("next.build") or r is None:
        return
    t = s.target
    s.add("next_build_missing", msg("cause.next_build_missing", app_dir=t.app_dir, app=t.pm2_app),
          "next.build", _APP_DOWN_EFFECTS,
          [f"cd {t.app_dir} && npm run build", _pm2(t, "restart", t.pm2_app), _pm2(t, "save")])


def _pm2_crash_loop(s: _State) -> None:
    r = s.get("pm2.status")
    if not s.failed("pm2.status") or r is None or not r.details.get("crash_loop"):
        return
    t = s.target
    s.add("pm2_crash_loop", r.message, "pm2.status", _APP_DOWN_EFFECTS,
          [_pm2(t, "logs", t.pm2_app, "--err", "--lines", "100", "--nostream"), _pm2(t, "restart", t.pm2_app)])


def _pm2_not_online(s: _State) -> None:
    r = s.get("pm2.status")
    if r is not None and r.status is Status.WARN and r.details.get("partial") and r.id not in s.consumed:
        # Some instances do not serve, the others do: a warning (no incident). In fork mode the app was started
        # twice: the copy cannot bind the port the first one holds, so the fix deletes it; else restart that one.
        t = s.target
        culprit = r.details.get("culprit")
        which = str(culprit) if isinstance(culprit, int) else t.pm2_app
        count = len(r.details.get("instances") or [])
        if r.details.get("duplicates") and isinstance(culprit, int):
            summary: Msg = msg("cause.pm2_duplicate", app=t.pm2_app, count=count, pm_id=culprit, port=t.app_port)
            fix: list[str | Msg] = [_pm2(t, "delete", which), _pm2(t, "save")]
        else:
            summary = r.message
            fix = [_pm2(t, "restart", which), _pm2(t, "logs", t.pm2_app, "--lines", "50", "--nostream")]
        s.add("pm2_not_online", summary, "pm2.status", ("pm2.restarts",), fix, severity=Status.WARN)
        return
    if not s.failed("pm2.status") or r is None:
        return
    t = s.target
    summary = r.message
    if "known_apps" in r.details and s.detail("pm2.saved", "saved_not_running"):
        # PM2 runs without the app, which its saved list has: restarted without resurrecting (A2).
        summary = msg("cause.pm2_saved_not_running", app=t.pm2_app, dump=str(s.detail("pm2.saved", "dump")))
        fix = [_pm2(t, "resurrect"), _pm2(t, "startup"), msg("fix.pm2_startup")]
    elif "known_apps" in r.details:
        fix = [_start_cmd(t), _pm2(t, "save")]
    else:
        fix = [_pm2(t, "restart", t.pm2_app), _pm2(t, "logs", t.pm2_app, "--lines", "50", "--nostream")]
    s.add("pm2_not_online", summary, "pm2.status", _APP_DOWN_EFFECTS, fix)


def _port_mismatch(s: _State) -> None:
    r = s.get("port.match")
    if r is None or r.id in s.consumed:
        return
    t = s.target
    side = r.details.get("side")
    effects: tuple[str, ...] = ("port.listen", "http.local", "ws.local", "http.proxy", "ws.proxy")
    if r.status is Status.WARN and side == "config":
        s.add("app_port_misconfigured", r.message, "port.match", effects,
              [msg("fix.set_app_port", port=(r.details.get("nginx_ports") or ["?"])[0], target=t.name)])
        return
    if r.status is not Status.FAIL:
        return
    fix: list[str | Msg]
    if side == "app":
        fix = [_pm2(t, "restart", t.pm2_app, "--update-env", env={"PORT": str(t.app_port)}), _pm2(t, "save")]
    else:
        # No location at all (no server for the public host, nothing proxies to the app): the dump's first file.
        file, files = r.details.get("file"), [str(f) for f in r.details.get("files") or []]
        where: str | Msg = f"{file}:{r.details.get('line')}" if file else files[0] if files \
            else msg("fix.the_nginx_config")
        fix = [msg("fix.edit_proxy_pass", where=where, port=t.app_port), *_nginx_apply(t)]
        effects += _same_route("nginx.websocket", s, "no_server")  # the same finding, not a second cause
    s.add("port_mismatch", r.message, "port.match", effects, fix)


def _app_not_listening(s: _State) -> None:
    if not s.failed("port.listen"):
        return
    pm2 = s.get("pm2.status")
    if pm2 is not None and pm2.status in BAD:
        return
    t = s.target
    # "although the app is online" only when pm2.status ran and said so.
    key = "cause.app_not_listening" if s.ran("pm2.status") else "cause.app_not_listening_pm2_unknown"
    s.add("app_not_listening", msg(key, summary=s.results["port.listen"].message, app=t.pm2_app),
          "port.listen", ("http.local", "ws.local", "http.proxy", "ws.proxy", "port.match"),
          [_pm2(t, "logs", t.pm2_app, "--lines", "50", "--nostream"), _pm2(t, "restart", t.pm2_app)])


def _nginx_not_running(s: _State) -> None:
    r = s.get("http.proxy")
    if not s.failed("http.proxy") or r is None or not r.details.get("refused"):
        return
    s.add("nginx_not_running", msg("cause.nginx_not_running", url=s.target.public_url), "http.proxy", ("ws.proxy",),
          [_Cmd(cmd.display(cmd.nginx_test(s.target)), "nginx"), msg("fix.restart_nginx")])


def _upgrade_missing(s: _State) -> None:
    r = s.get("nginx.websocket")
    if not s.failed("nginx.websocket") or r is None or "missing" not in r.details:
        return
    lines = r.details.get("add_lines") or []
    where = f"{r.details.get('file')}:{r.details.get('line')}"
    fix: list[str | Msg] = [msg("fix.add_to_location", location=str(r.details.get("location")), where=where),
           *[f"    {ln}" for ln in lines if isinstance(ln, str)], *_nginx_apply(s.target)]
    s.add("nginx_upgrade_headers_missing", r.message, "nginx.websocket", ("ws.proxy",), fix)


def _app_ws_missing(s: _State) -> None:
    if not s.failed("ws.local"):
        return
    http = s.get("http.local")
    if http is None or http.status is not Status.OK:
        return
    t = s.target
    s.add("app_websocket_missing", msg("cause.app_websocket_missing", app=t.pm2_app, ws_path=t.ws_path),
          "ws.local", ("ws.proxy",),
          [msg("fix.check_ws_path", ws_path=t.ws_path), _pm2(t, "logs", t.pm2_app, "--lines", "50", "--nostream")])


def _ws_path_rewritten(s: _State) -> None:
    """nginx's route reaches the app, but a URI part in proxy_pass hands it another path than ws_path, and the
    evidence says that is the fault: the app answers the WebSocket on ws_path directly (ws.local ok) while the
    public handshake gets an answer that is not 101 (not a redirect, not TLS, not silence). A rewrite the app
    expects (its WebSocket really on the rewritten path) shows as ws.proxy ok and is never named.

    Not while a reload is pending: then nginx may run another config than the one the route was read from."""
    r = s.get("nginx.websocket")
    if r is None or r.status not in (Status.OK, Status.WARN) or not s.failed("ws.proxy") or not s.ok("ws.local"):
        return
    path, upstream = r.details.get("path"), r.details.get("upstream_path")
    if not isinstance(upstream, str) or not isinstance(path, str) or upstream == path:
        return
    probe = s.get("ws.proxy")
    if probe is None or any(probe.details.get(k) for k in ("redirect", "tls_error", "no_answer", "refused")) \
            or not isinstance(probe.details.get("status"), int):
        return
    reload = s.get("nginx.reload")
    if reload is not None and reload.details.get("pending"):
        return
    where = f"{r.details.get('file')}:{r.details.get('line')}"
    proxy_pass = str(r.details.get("proxy_pass") or "")
    parts = split_proxy_pass(proxy_pass)
    kept = parts[0] if parts is not None else proxy_pass
    s.add("ws_path_routing_mismatch",
          msg("cause.ws_path_routing_mismatch", path=path, upstream_path=upstream,
              location=str(r.details.get("location")), where=where, proxy_pass=proxy_pass,
              status=probe.details.get("status")),
          "nginx.websocket", ("ws.proxy",),
          [msg("fix.proxy_pass_keep_path", where=where, proxy_pass=kept, path=path), *_nginx_apply(s.target)])


def _ws_timeout(s: _State) -> None:
    r = s.get("nginx.websocket")
    if r is None or r.status is not Status.WARN or "read_timeout" not in (r.details.get("weak") or []):
        return
    where = f"{r.details.get('file')}:{r.details.get('line')}"
    s.add("nginx_ws_timeout_short", r.message, "nginx.websocket", (),
          [msg("fix.add_to_location", location=str(r.details.get("location")), where=where),
           "    proxy_read_timeout 86400;",
           "    proxy_send_timeout 86400;", *_nginx_apply(s.target)])


# -- wt-tls: TLS and redirects ----------------------------------------------------------------------------------

#: The public probes whose failure a TLS finding explains, when they failed at the handshake.
_PUBLIC_PROBES = ("http.proxy", "ws.proxy")


def _tls_explained(s: _State) -> list[str]:
    return [c for c in _PUBLIC_PROBES if s.failed(c) and s.detail(c, "tls_error")]


def _renew(s: _State, names: str) -> list[str | Msg]:
    """certbot's renewal when certbot is on the target (a read-only `stat` found it), else the sentence."""
    certbot = s.detail("tls.certificate", "certbot")
    if isinstance(certbot, str) and certbot:
        return [cmd.display([*(["sudo"] if s.target.sudo else []), certbot, "renew"])]
    return [msg("fix.tls_renew", names=names)]


def _tls_not_reloaded(s: _State) -> None:
    """Renewed on disk, never reloaded: the fix is a reload (not a renewal), even when the served one expired."""
    r = s.get("tls.certificate")
    stale = r.details.get("not_reloaded") if r is not None else None
    if r is None or not isinstance(stale, dict) or r.id in s.consumed or r.status not in (Status.WARN, Status.FAIL):
        return
    cert = r.details.get("cert") or {}
    s.add("tls_certificate_not_reloaded",
          msg("cause.tls_certificate_not_reloaded", path=stale.get("path"), served=str(cert.get("not_after", ""))[:10],
              serial=cert.get("serial", "?"), disk=str(stale.get("not_after", ""))[:10],
              disk_serial=stale.get("serial", "?"), where=f"{stale.get('file')}:{stale.get('line')}"),
          "tls.certificate", _tls_explained(s), _nginx_apply(s.target),
          severity=Status.FAIL if r.status is Status.FAIL else Status.WARN)


def _tls_invalid(s: _State) -> None:
    """A certificate the browser refuses. TLS answered, so this is never `nginx_not_running`."""
    r = s.get("tls.certificate")
    if not s.failed("tls.certificate") or r is None or r.details.get("verify_error") not in CERT_INVALID_KINDS:
        return
    kind = str(r.details.get("verify_error"))
    cert = r.details.get("cert") or {}
    names = ", ".join(cert.get("sans") or []) or str(cert.get("subject", "?"))
    host = str(r.details.get("host", ""))
    fix: list[str | Msg]
    if kind == "untrusted":
        fix = [msg("fix.tls_chain", issuer=str(cert.get("issuer", "?"))), msg("fix.tls_ca_file", target=s.target.name)]
    elif kind == "wrong_name":
        fix = [msg("fix.tls_name", host=host, names=names), *_renew(s, host)]
    else:
        fix = _renew(s, names)
    s.add("tls_certificate_invalid",
          msg("cause.tls_certificate_invalid", url=s.target.public_url, why=msg(WHY_KEYS[kind]), names=names,
              not_after=str(cert.get("not_after", ""))[:10], issuer=str(cert.get("issuer", "?")),
              serial=str(cert.get("serial", "?"))),
          "tls.certificate", _tls_explained(s), [*fix, *_nginx_apply(s.target)])


def _tls_expiring(s: _State) -> None:
    r = s.get("tls.certificate")
    if r is None or r.id in s.consumed or r.status is not Status.WARN or not r.details.get("expiring"):
        return
    cert = r.details.get("cert") or {}
    names = ", ".join(cert.get("sans") or []) or str(cert.get("subject", "?"))
    s.add("tls_certificate_expiring",
          msg("cause.tls_certificate_expiring", names=names, days=int(float(str(r.details.get("days_left", 0)))),
              not_after=str(cert.get("not_after", ""))[:10], limit=r.details.get("expiry_warning_days", 14)),
          "tls.certificate", (), [*_renew(s, names), *_nginx_apply(s.target)])


def _ws_redirected(s: _State) -> None:
    """A 3xx to the upgrade: browsers and `ws` do not follow it, so the chat never connects.

    Seen by the probe (ws.proxy, with the Location it got), or, when ws.proxy did not run, by the route model
    alone (nginx.websocket: nginx's own route for ws_path ends in a redirect)."""
    r = s.get("ws.proxy")
    nginx = s.get("nginx.websocket")
    # nginx's own route for ws_path ends in a redirect: in the block it picks (`redirect`), or in another block
    # than the app's when that one redirects (`wrong_server` with `redirect`, e.g. certbot's port-80 block).
    static = nginx is not None and s.failed("nginx.websocket") and (
        nginx.details.get("reason") == "redirect"
        or (nginx.details.get("reason") == "wrong_server" and bool(nginx.details.get("redirect"))))
    if s.failed("ws.proxy") and r is not None and r.details.get("redirect"):
        sent_by = r.details.get("sent_by") if isinstance(r.details.get("sent_by"), dict) else None
        where = str((sent_by or {}).get("location") or (sent_by or {}).get("server") or "")
        location = str(r.details.get("location") or "-")
        url, status, to_https = str(r.details.get("url")), r.details.get("status"), bool(r.details.get("to_https"))
        trigger, explains = "ws.proxy", ["nginx.websocket"] if static else []
    elif static and nginx is not None and not s.ran("ws.proxy"):
        location = str(nginx.details.get("location_header") or "-")
        where = f"{nginx.details.get('file')}:{nginx.details.get('line')}" if nginx.details.get("file") else ""
        url, status = str(nginx.details.get("request")), nginx.details.get("status")
        to_https = s.target.public_url.startswith("http://") and location.startswith("https://")
        trigger, explains = "nginx.websocket", []
    else:
        return
    fix: list[str | Msg]
    if to_https:
        summary = msg("cause.ws_upgrade_redirected_https", url=url, status=status, location=location,
                      where=where or "-")
        fix = [msg("fix.ws_use_wss", url=s.target.public_url.replace("http://", "https://", 1), target=s.target.name)]
    else:
        summary = msg("cause.ws_upgrade_redirected", url=url, status=status, location=location, where=where or "-")
        fix = [msg("fix.ws_no_redirect", ws_path=s.target.ws_path, where=where or msg("fix.the_nginx_config")),
               *_nginx_apply(s.target)]
    s.add("ws_upgrade_redirected", summary, trigger, explains, fix)


# -- wt-host (issue 12): bind address, hung app, reboot survival ---------------------------------------------------

_PROBES = ("http.local", "ws.local", "http.proxy", "ws.proxy")


def _address_mismatch(s: _State) -> None:
    """port.match found the ports equal and the addresses apart: the app is up, nginx dials where it is not."""
    r = s.get("port.match")
    if r is None or r.id in s.consumed or r.status not in (Status.FAIL, Status.WARN) \
            or r.details.get("side") != "address":
        return
    # It says the app is up and listening: a report that proves it down, or nginx reaching it, contradicts that.
    pm2, listen = s.get("pm2.status"), s.get("port.listen")
    if (pm2 is not None and pm2.status is Status.FAIL) or (listen is not None and listen.status is Status.FAIL):
        return
    missed = [str(a) for a in r.details.get("missed") or []]
    dialed = [str(a) for a in r.details.get("dialed") or []]
    proxies = [s.results[c] for c in ("http.proxy", "ws.proxy") if c in s.results]
    if not missed or (set(missed) >= set(dialed) and proxies and all(p.status is Status.OK for p in proxies)):
        return
    t = s.target
    bind = "::" if any(":" in a for a in missed) else "0.0.0.0"
    addrs = [str(a) for a in r.details.get("listen_addrs") or []]
    address = addrs[0].rsplit(":", 1)[0] if addrs else "127.0.0.1"
    where = f"{r.details.get('file')}:{r.details.get('line')}"
    # "::" when nginx dials an IPv6 address: on Linux a socket on :: also accepts IPv4 (IPV6_V6ONLY is off).
    fix: list[str | Msg] = [msg("fix.bind_all", bind=bind),
                            _pm2(t, "restart", t.pm2_app, "--update-env", env={"HOSTNAME": bind}), _pm2(t, "save"),
                            msg("fix.proxy_pass_address", where=where, address=address, port=t.app_port),
                            *_nginx_apply(t)]
    s.add("app_listen_address_mismatch", msg("cause.app_listen_address_mismatch", summary=r.message),
          "port.match", [c for c in _PROBES if s.failed(c)], fix, severity=r.status)


def _timed_out(r: CheckResult | None) -> bool:
    return r is not None and r.status is Status.FAIL and bool(r.details.get("no_answer"))


def _app_unresponsive(s: _State) -> None:
    """Online, listening, accepting — and silent on both protocols: a hung process, not a missing one.

    Every piece must be seen: pm2.status and port.listen ok, both local probes timed out (not refused, not an
    error status), and nginx (when probed) timed out too or said 504. A proxy that answered contradicts it."""
    pm2, listen = s.get("pm2.status"), s.get("port.listen")
    if pm2 is None or pm2.status is not Status.OK or listen is None or listen.status is not Status.OK:
        return
    local = ("http.local", "ws.local")
    if not all(_timed_out(s.get(c)) and c not in s.consumed for c in local):
        return
    proxies = [c for c in ("http.proxy", "ws.proxy") if c in s.results]
    for cid in proxies:
        r = s.results[cid]
        if not (_timed_out(r) or (r.status is Status.FAIL and r.details.get("status") == 504)):
            return
    t = s.target
    said = [f"{c}: " + ("504" if s.results[c].details.get("status") == 504 else "timeout") for c in proxies]
    proxy: str | Msg = msg("cause.app_unresponsive_proxy", what=", ".join(said)) if said else ""
    timeout = float(str(s.results["http.local"].details.get("timeout") or 5.0))
    s.add("app_unresponsive", msg("cause.app_unresponsive", app=t.pm2_app, port=t.app_port, timeout=timeout,
                                  proxy=proxy),
          local, proxies,
          [_pm2(t, "restart", t.pm2_app), _pm2(t, "save"),
           _pm2(t, "logs", t.pm2_app, "--lines", "100", "--nostream")])


def _pm2_not_saved(s: _State) -> None:
    r = s.get("pm2.saved")
    if r is None or r.status is not Status.WARN or r.id in s.consumed:
        return
    pm2 = s.get("pm2.status")
    if pm2 is not None and "known_apps" in pm2.details:  # "runs but is not saved" needs it to be in PM2's list
        return
    s.add("pm2_not_saved", msg("cause.pm2_not_saved", summary=r.message), "pm2.saved", (),
          [_pm2(s.target, "save")])


def _pm2_startup_missing(s: _State) -> None:
    r = s.get("pm2.startup")
    if r is None or r.status is not Status.WARN or r.id in s.consumed:
        return
    t = s.target
    s.add("pm2_startup_missing", msg("cause.pm2_startup_missing", summary=r.message), "pm2.startup", (),
          [_pm2(t, "startup"), msg("fix.pm2_startup"), _pm2(t, "save")])
# -- wt-host2: the host under the app, PM2 restarting an online app, standalone assets --------------------------


#: Below this MemAvailable + free swap (MB), the host itself is short of memory.
_LOW_MEMORY_MB = 256


def _host_out_of_memory(s: _State) -> None:
    """A recent kernel OOM kill or V8 heap OOM. It explains the app being down only when the victim is the app
    (a node/next/npm process, or the app's own heap message); another victim is named, and explains nothing else."""
    r = s.get("host.memory")
    if not s.failed("host.memory") or r is None:
        return
    t = s.target
    app_hit = r.details.get("kind") == "heap" or any(
        isinstance(k, dict) and k.get("app") for k in r.details.get("oom_kills") or [])
    # The heap limit is the app's own (V8), not the host's: more host memory is the fix only when the kernel
    # killed, or when the host is short as well.
    heap = r.details.get("kind") == "heap"
    short = int(r.details.get("mem_available_mb") or 0) + int(r.details.get("swap_free_mb") or 0) < _LOW_MEMORY_MB
    fix: list[str | Msg] = [msg("fix.oom_heap")] if heap else []
    if not heap or short:
        fix.append(msg("fix.oom_memory"))
    fix.append(_pm2(t, "logs", t.pm2_app, "--err", "--lines", "100", "--nostream"))
    s.add("host_out_of_memory", r.message, "host.memory", _APP_DOWN_EFFECTS if app_hit else (), fix)


def _host_disk_full(s: _State) -> None:
    r = s.get("host.disk")
    if r is None or r.id in s.consumed or r.status not in (Status.FAIL, Status.WARN):
        return
    t = s.target
    fss = [fs for fs in r.details.get("filesystems") or [] if isinstance(fs, dict)]
    mount = str(max(fss, key=lambda fs: int(fs.get("use_percent") or 0)).get("mount")) if fss else "/"
    fix: list[str | Msg] = [msg("fix.disk_free", mount=mount), _pm2(t, "flush", t.pm2_app),
                            _pm2(t, "install", "pm2-logrotate"), _pm2(t, "set", "pm2-logrotate:max_size", "50M"),
                            _pm2(t, "set", "pm2-logrotate:retain", "7")]
    explains = ("pm2.logs",) if r.details.get("enospc") else ()
    s.add("host_disk_full", r.message, "host.disk", explains, fix, severity=r.status)


def _process_fd_exhausted(s: _State) -> None:
    r = s.get("host.fds")
    if not s.failed("host.fds") or r is None:
        return
    t = s.target
    s.add("process_fd_exhausted", r.message, "host.fds",
          ("pm2.logs", "http.local", "ws.local", "http.proxy", "ws.proxy"),
          [msg("fix.fd_limit"), _pm2(t, "restart", t.pm2_app)])


def _next_static_missing(s: _State) -> None:
    r = s.get("next.static")
    if not s.failed("next.static") or r is None:
        return
    t = s.target
    root = str(r.details.get("server") or "").rsplit("/", 1)[0]
    base = t.app_dir.rstrip("/")
    s.add("next_static_assets_missing", r.message, "next.static", ("http.proxy", "http.local"),
          [msg("fix.static_copy"), f"    cp -r {shlex.quote(base + '/public')} {shlex.quote(root + '/')}",
           f"    cp -r {shlex.quote(base + '/.next/static')} {shlex.quote(root + '/.next/')}",
           _pm2(t, "restart", t.pm2_app), _pm2(t, "save")])


def _pm2_restart_loop_online(s: _State) -> None:
    """The restart count climbs while PM2 says online (pm2.restarts: against the previous look, or PM2's own
    restart lines of the last minutes). The app's intermittent 502s and refused probes are its effects."""
    r = s.get("pm2.restarts")
    if not s.failed("pm2.restarts") or r is None or not r.details.get("loop"):
        return
    if s.detail("pm2.status", "partial") and s.detail("pm2.status", "culprit") is not None:
        return  # one instance of several loops while the others serve: _pm2_not_online's warning says which
    t = s.target
    kind = r.details.get("kind")
    fix: list[str | Msg] = []
    limit, memory = r.details.get("max_memory_restart"), r.details.get("memory")
    if kind == "memory" or (isinstance(limit, int) and limit > 0):
        fix.append(msg("fix.restart_loop_memory", memory=(memory or 0) // 1048576 if isinstance(memory, int) else "?",
                       limit=limit // 1048576 if isinstance(limit, int) else "?"))
    if kind == "watch" or r.details.get("watch"):
        fix.append(msg("fix.restart_loop_watch"))
    fix += [_pm2(t, "logs", t.pm2_app, "--lines", "100", "--nostream"), _pm2(t, "save")]
    # PM2 stamps created_at at every restart (God/ActionMethods.js), so a looping app always looks changed since
    # the last `pm2 save` (pm2.saved "stale"): the loop explains that, it is not a second cause.
    saved = s.get("pm2.saved")
    stale = ("pm2.saved",) if saved is not None and saved.details.get("reason") == "stale" else ()
    s.add("pm2_restart_loop_online", r.message, "pm2.restarts", (*_APP_DOWN_EFFECTS, *stale), fix)


# -- wt-nginxrt: routing, reloads and the error log ------------------------------------------------------------


_CONNECTION_LINE = "proxy_set_header Connection 'upgrade';"


def _block_label(block: object) -> str:
    """`server a b (file:line)` from the route details (data, so it reads the same in every language)."""
    if not isinstance(block, dict):
        return "?"
    names = " ".join(str(n) for n in block.get("names") or [] if n) or '""'
    return f"server {names} ({block.get('file')}:{block.get('line')})"


def _same_route(check_id: str, s: _State, reason: str) -> tuple[str, ...]:
    """`check_id` when it failed on the very same route finding (port.match asks for the same location)."""
    r = s.get(check_id)
    return (check_id,) if r is not None and r.details.get("reason") == reason else ()


def _nginx_wrong_server(s: _State) -> None:
    """The public host lands on a server block that does not proxy to the app, while another block does."""
    r = s.get("nginx.websocket")
    if not s.failed("nginx.websocket") or r is None or r.details.get("reason") != "wrong_server":
        return
    if r.details.get("redirect"):
        return  # e.g. the :80 block that sends everything to https: the live probe's redirect finding owns it
    picked, app = _block_label(r.details.get("server")), _block_label(r.details.get("app_server"))
    request = str(r.details.get("request"))
    _scheme, host, port = s.target.public_endpoint()
    if r.details.get("no_listen"):  # no block accepts the public address:port at all; the app's listens elsewhere
        listens = ", ".join(str(x) for x in r.details.get("listens") or [])
        s.add("nginx_wrong_server", msg("cause.nginx_wrong_server_no_listen", request=request, app=app,
                                        listens=listens),
              "nginx.websocket", ("ws.proxy", "http.proxy", *_same_route("port.match", s, "wrong_server")),
              [msg("fix.wrong_server_listen", app=app, port=port), *_nginx_apply(s.target)])
        return
    s.add("nginx_wrong_server", msg("cause.nginx_wrong_server", request=request, picked=picked, app=app),
          "nginx.websocket", ("ws.proxy", "http.proxy", *_same_route("port.match", s, "wrong_server")),
          [msg("fix.wrong_server", app=app, host=host, picked=picked), *_nginx_apply(s.target)])


def _nginx_ws_not_proxied(s: _State) -> None:
    """nginx answers ws_path itself (return of a non-redirect status, or static files).

    A redirect (3xx) is not claimed here: the live probe's `ws_upgrade_redirected` owns it (wt-tls)."""
    r = s.get("nginx.websocket")
    if not s.failed("nginx.websocket") or r is None or r.details.get("reason") != "not_proxied":
        return
    where = f"{r.details.get('file')}:{r.details.get('line')}" if r.details.get("file") else _block_label(
        r.details.get("server"))
    location = str(r.details.get("location") or "")
    what = msg("cause.static_files") if r.details.get("static") else msg("cause.status_code",
                                                                         status=r.details.get("status"))
    s.add("nginx_ws_not_proxied", msg("cause.nginx_ws_not_proxied", request=str(r.details.get("request")),
                                      location=location or "-", where=where, what=what),
          "nginx.websocket", ("ws.proxy", *_same_route("port.match", s, "not_proxied")),
          [msg("fix.add_to_location", location=f"location {location}".strip(), where=where),
           f"    proxy_pass http://127.0.0.1:{s.target.app_port};", "    proxy_http_version 1.1;",
           "    proxy_set_header Upgrade $http_upgrade;", f"    {_CONNECTION_LINE}",
           *_nginx_apply(s.target)])


def _capacity_exhausted(s: _State) -> None:
    """nginx logged `N worker_connections are not enough` (or EMFILE) since its last load: a cause of its own."""
    r = s.get("nginx.errors")
    if not s.failed("nginx.errors") or r is None:
        return
    limit = r.details.get("worker_connections")
    at = str(r.details.get("worker_connections_at") or "") or msg("fix.the_nginx_config")
    lines = [ln for ln in r.details.get("lines") or [] if isinstance(ln, dict)
             and ln.get("kind") in ("worker_connections", "too_many_open_files")]
    line = str(lines[-1]["text"]) if lines else ""
    s.add("connection_capacity_exhausted",
          msg("cause.connection_capacity_exhausted", count=len(lines), line=line,
              limit=limit if limit is not None else "?"),
          "nginx.errors", ("http.proxy", "ws.proxy"),
          [msg("fix.edit", where=at), "    worker_connections 4096;   # events { }",
           "    worker_rlimit_nofile 8192;   # main context", *_nginx_apply(s.target)])


def _reload_pending(s: _State) -> None:
    """A file `nginx -T` lists is newer than the last (re)load. A fail when the live behaviour contradicts the
    file on disk (nginx.websocket judges the disk config fine, the app answers WebSocket directly, yet the
    public WebSocket fails); a warning when nothing is seen failing yet."""
    r = s.get("nginx.reload")
    pending = r.details.get("pending") if r is not None else None
    if r is None or r.status is not Status.WARN or not pending or r.id in s.consumed:
        return
    first = pending[0] if isinstance(pending[0], dict) else {}
    disk_ok = s.ran("nginx.websocket") and not s.failed("nginx.websocket")
    contradiction = [c for c, direct in (("ws.proxy", "ws.local"), ("http.proxy", "http.local"))
                     if s.failed(c) and disk_ok and s.ok(direct)]
    key = "cause.nginx_reload_pending_live" if contradiction else "cause.nginx_reload_pending"
    summary = msg(key, file=str(first.get("file")), modified=str(first.get("modified")),
                  loaded=str(r.details.get("loaded")), more=len(pending) - 1, checks=", ".join(contradiction))
    s.add("nginx_reload_pending", summary, "nginx.reload", contradiction,
          [*_nginx_apply(s.target), msg("fix.reload_action", target=s.target.name)],
          severity=Status.FAIL if contradiction else Status.WARN)


#: Which classified error-log lines (checks/parsers/nginx_runtime.py kinds) support which causes. Ids of other
#: branches' causes are named by string (wt-host: the bind address; wt-tls: certificates): an id nobody produces
#: simply never matches.
_LOG_SUPPORTS: dict[str, frozenset[str]] = {
    "upstream_refused": frozenset({"port_conflict", "next_build_missing", "pm2_crash_loop", "pm2_not_online",
                                   "port_mismatch", "app_not_listening", "app_listen_address_mismatch"}),
    "upstream_timeout": frozenset({"pm2_crash_loop", "app_not_listening", "app_unresponsive"}),
    "upstream_closed": frozenset({"pm2_crash_loop", "pm2_not_online", "app_websocket_missing"}),
    "ssl_handshake": frozenset({"tls_certificate_invalid", "tls_certificate_not_reloaded"}),
}


def _log_evidence(s: _State) -> None:
    """Attach nginx.errors as evidence to the causes its classified lines support (data stays in its details)."""
    r = s.get("nginx.errors")
    if r is None:
        return
    counts = r.details.get("counts") or {}
    supported = {cause for kind, causes in _LOG_SUPPORTS.items() if counts.get(kind) for cause in causes}
    for i, cause in enumerate(s.causes):
        if cause.cause in supported and "nginx.errors" not in cause.evidence:
            s.causes[i] = cause.model_copy(update={"evidence": (*cause.evidence, "nginx.errors")})


# -- wt-sio: PM2 as the bot sees it, and Socket.IO ---------------------------------------------------------------

def _pm2_binary_not_found(s: _State) -> None:
    """`pm2` exit 127: the bot cannot ask PM2, which says nothing about the app (never "app down").

    It explains the checks that could not run for want of PM2's answer (errors), never a failing probe."""
    r = s.get("pm2.status")
    if r is None or r.status is not Status.ERROR or r.details.get("error_kind") != "missing_binary" \
            or r.id in s.consumed:
        return
    t = s.target
    paths = s.detail("pm2.daemon", "pm2_login_paths")
    found = [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []
    explains = [cid for cid, res in s.results.items() if cid != "pm2.status" and res.status is Status.ERROR
                and (res.details.get("error_kind") == "missing_binary" or res.details.get("see") == "pm2.status")]
    fix: list[str | Msg] = [msg("fix.set_pm2_bin", path=found[0], target=t.name)] if found \
        else [msg("fix.find_pm2_bin", target=t.name)]
    s.add("pm2_binary_not_found",
          msg("cause.pm2_binary_not_found", bin=t.pm2_bin,
              found=msg("cause.pm2_binary_found_at", path=found[0]) if found else ""),
          "pm2.status", explains, fix)


def _pm2_home_mismatch(s: _State) -> None:
    """The port's holder descends from another God Daemon: not a conflict, not a down app (research A14)."""
    r = s.get("pm2.daemon")
    if not s.failed("pm2.daemon") or r is None or not r.details.get("mismatch"):
        return
    holder = r.details.get("holder") or {}
    t = s.target
    s.add("pm2_home_mismatch", msg("cause.pm2_home_mismatch", summary=r.message, app=t.pm2_app),
          "pm2.daemon", _APP_DOWN_EFFECTS,
          [msg("fix.set_pm2_owner", user=holder.get("user", "?"), home=holder.get("home", "?"), target=t.name)])


def _socketio_no_sticky(s: _State) -> None:
    """400 "Session ID unknown" on a session's own polling requests, with more than one instance."""
    r = s.get("ws.sessions")
    if not s.failed("ws.sessions") or r is None or not r.details.get("session_unknown"):
        return
    instances = r.details.get("instances")
    if not isinstance(instances, int) or instances < 2:
        return  # one process forgetting its sessions is something else: left to `unknown`
    t = s.target
    s.add("socketio_no_sticky_sessions",
          msg("cause.socketio_no_sticky_sessions", app=t.pm2_app, instances=instances, summary=r.message),
          "ws.sessions", (),
          [msg("fix.sio_sticky"), msg("fix.sio_websocket_only"),
           msg("fix.sio_scale_one", command=_pm2(t, "scale", t.pm2_app, "1"))])


def _unknown(s: _State) -> None:
    left = [cid for cid, r in s.results.items() if r.status in BAD and cid not in s.consumed]
    if not left:
        return
    t = s.target
    failing = [cid for cid in left if s.results[cid].status is Status.FAIL]
    errored = [cid for cid in left if s.results[cid].status is Status.ERROR]
    # An `error` check did not run to a verdict: it is "could not run", never "failing".
    if not errored:
        summary = msg("cause.unknown", checks=", ".join(failing))
    elif not failing:
        summary = msg("cause.unknown_not_run", checks=", ".join(errored))
    else:
        summary = msg("cause.unknown_mixed", checks=", ".join(failing), errored=", ".join(errored))
    # Never an empty hand (wt-nginxrt): the most relevant recent nginx error lines travel with the summary.
    errors = s.get("nginx.errors")
    relevant = [str(x) for x in (errors.details.get("relevant") or [])][:3] if errors else []
    if relevant:
        summary = msg("cause.with_log", summary=summary, lines=" | ".join(relevant))
    logs = [str(x) for x in (errors.details.get("files") or [])] if errors else []
    s.add("unknown", summary, left, (),
          [_pm2(t, "logs", t.pm2_app, "--lines", "100", "--nostream"),
           cmd.display(cmd.tail_lines(logs[0] if logs else "/var/log/nginx/error.log", 50))],
          severity=s.results[left[0]].status)


RULES: tuple[Rule, ...] = (
    _unreachable,
    _pm2_binary_not_found,
    _nginx_invalid,
    _pm2_home_mismatch,
    _nginx_wrong_server,
    _nginx_ws_not_proxied,
    _capacity_exhausted,
    _app_outside_pm2,
    _port_conflict,
    _host_out_of_memory,  # wt-host2
    _host_disk_full,  # wt-host2
    _process_fd_exhausted,  # wt-host2
    _build_missing,
    _next_static_missing,  # wt-host2
    _pm2_crash_loop,
    _pm2_restart_loop_online,  # wt-host2
    _pm2_not_online,
    _address_mismatch,
    _port_mismatch,
    _app_unresponsive,
    _app_not_listening,
    _tls_not_reloaded,
    _tls_invalid,
    _tls_expiring,
    _nginx_not_running,
    _ws_redirected,
    _upgrade_missing,
    _app_ws_missing,
    _ws_path_rewritten,
    _socketio_no_sticky,
    _ws_timeout,
    _reload_pending,
    _pm2_not_saved,
    _pm2_startup_missing,
    _log_evidence,
    _unknown,
)


def diagnose(target: Target, results: Sequence[CheckResult], *, config_file: str = "") -> tuple[Cause, ...]:
    """Causes, root first. A healthy stack (no fail/error, no known warning) has none.

    `config_file` is the config the targets came from ("" = built-in default), passed in as data so
    that the `wscheck trust` hint works as printed."""
    state = _State(target=target, results={r.id: r for r in results}, config_file=config_file)
    for rule in RULES:
        rule(state)
    return tuple(state.causes)
