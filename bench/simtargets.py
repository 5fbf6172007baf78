"""Simulated targets for bench/bench_scale.py: N SSH servers and one "nginx", all in ONE process.

    .venv/bin/python bench/simtargets.py serve --targets 500 --workdir DIR [--latency-scale 1]
    .venv/bin/python bench/simtargets.py canned [--out bench/simtargets_canned.json] [--mode healthy]
    .venv/bin/python bench/simtargets.py capture [--out bench/simtargets_canned.json] [--sandbox-workdir DIR]

`serve` listens on 127.0.0.1 only:

* N asyncssh servers (one port each, OS-chosen), sharing one host key; they accept one client key and answer
  the exact commands the checklist runs (`nginx -T -c …`, `env PM2_HOME=… pm2 jlist`, `ss -ltnpH`,
  `ps -eo pid=,ppid=,user=,comm=`, `stat -c %n|%Y|%s …`, `tail -n N FILE`) with outputs captured once from
  the real sandbox stack in its healthy state (bench/simtargets_canned.json), after the time the real
  command took there (`--latency-scale 0` answers at once). direct-tcpip channels to 127.0.0.1:APP_PORT
  are served in-process: HTTP/1.1 200 (Next.js-like headers) or the WebSocket handshake, a "welcome" text
  frame, pongs and the closing handshake (websockets' sans-I/O ServerProtocol). Anything else: refused.
* one aiohttp server playing nginx for every target's public_url: `Server: nginx/1.22.1`, 200 on any
  path, a WebSocket on /ws that says "welcome" and answers pings (aiohttp's autoping).

It writes into DIR: `id_ed25519` (the client key), `known_hosts` (`[127.0.0.1]:PORT` for each server),
`targets.json` (ports) and `wscheck.toml` (N targets `sim001`…), then prints `simtargets ready: …` on
stdout. On SIGTERM/SIGINT it prints `simtargets stats {json}` (commands served, unknown commands, channels).

`canned` (wt-perf; how bench/simtargets_canned.json is made now) converts the captured sandbox fixtures
(tests/fixtures/captured/modes/healthy.json, re-recorded whenever a command of the checklist changes), so the
simulated targets always answer the checklist's current commands; delays: DELAY_* below. `serve` also answers
the batches of checks.transport.batch (one channel, the commands in turn) and strips the `timeout -k K T` that
every command runs under.

`capture` (the older way) starts the sandbox (deploy/sandbox; or uses a running one), runs the real checklist
through the real SSH transport three times while recording every command and its output, and writes the JSON that
`serve` replays (sandbox paths replaced by @WORKDIR@, the nginx port by @HTTP_PORT@; `ps` and `ss`
reduced to the stack's own processes and ports plus the kernel threads).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncssh
from aiohttp import WSMsgType, web
from benchlib import load_sandbox, raise_nofile
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from checks.transport.batch import RENICE, batch_outputs, split_script

HERE = Path(__file__).resolve().parent
CANNED = HERE / "simtargets_canned.json"
FAKE_WORKDIR = "/srv/wscheck-sim"
NGINX_SERVER = "nginx/1.22.1"
HEAD_LIMIT = 64 * 1024
APP_BODY = ("<!DOCTYPE html><html><head><meta charSet=\"utf-8\"/><title>kathario-saas</title></head>"
            "<body><div id=\"__next\"><main><h1>kathario-saas</h1><p>chat</p></main></div></body></html>")
APP_BODY = APP_BODY + " " * max(0, 1384 - len(APP_BODY))  # the sandbox page's size


# == capture ================================================================================================


@dataclass
class Answer:
    exit_status: int
    stdout: str
    stderr: str
    delay: float  # seconds the real command took (median of the captures)


def _ps_subset(stdout: str, roots: set[int]) -> str:
    """Rows of the stack's own processes (trees under PM2's daemon, nginx and sshd), pid 1, kernel threads."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
            rows.append((int(parts[0]), int(parts[1]), line))
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in rows:
        children.setdefault(ppid, []).append(pid)
    keep = {1, 2} | set(roots)
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in keep:
                keep.add(child)
                todo.append(child)
    return "\n".join(line for pid, ppid, line in rows if pid in keep or ppid == 2) + "\n"


def _ss_subset(stdout: str, ports: set[int]) -> str:
    kept = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3].rsplit(":", 1)[-1].isdigit() and int(parts[3].rsplit(":", 1)[-1]) in ports:
            kept.append(line)
    return "\n".join(kept) + "\n"


async def _record(target: Any, rounds: int) -> dict[str, list[tuple[int, str, str, float]]]:
    from checks.runner import run_checks
    from checks.transport.base import ByteStream, CommandResult, Transport
    from checks.transport.ssh import SSHTransport

    seen: dict[str, list[tuple[int, str, str, float]]] = {}

    class Recording(Transport):
        kind = "ssh"

        def __init__(self, inner: SSHTransport) -> None:
            self.inner = inner

        async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
            result = await self.inner.run(argv, timeout=timeout)
            seen.setdefault(shlex.join(argv), []).append(
                (result.exit_status, result.stdout, result.stderr, result.duration_ms / 1000))
            return result

        async def open_tcp(self, host: str, port: int, *, timeout: float) -> ByteStream:
            return await self.inner.open_tcp(host, port, timeout=timeout)

        async def aclose(self) -> None:
            await self.inner.aclose()

    transport = Recording(SSHTransport(target))
    try:
        await run_checks(target, transport)  # connect, warm up
        seen.clear()
        for _ in range(rounds):
            report = await run_checks(target, transport)
            if report.status.value != "ok":
                raise SystemExit(f"the sandbox is not healthy: {report.to_json_dict()}")
    finally:
        await transport.aclose()
    return seen


def capture(out: Path, sandbox_workdir: Path | None, rounds: int) -> None:
    from checks.config import load_targets

    module = load_sandbox()
    own = sandbox_workdir is None
    workdir = sandbox_workdir or Path(tempfile.mkdtemp(prefix="wscheck-capture-", dir="/tmp"))
    workdir.chmod(0o755)
    box = module.Sandbox(workdir)
    if own:
        box.up()
    try:
        config = workdir / "wscheck-capture.toml"
        config.write_text(box.target_toml())
        (target,) = load_targets(config).targets
        seen = asyncio.run(_record(target, rounds))
        pm2_pid = int((box.pm2_home / "pm2.pid").read_text().strip())
        roots = {pm2_pid, box.nginx_master_pid(), box.sshd_pid}
        ports = {box.app_port, box.http_port, box.ssh_port}
    finally:
        if own:
            box.down()
    wd = str(workdir)

    def clean(text: str) -> str:
        return text.replace(wd, "@WORKDIR@").replace(f"127.0.0.1:{box.http_port}", "127.0.0.1:@HTTP_PORT@")

    commands: dict[str, dict[str, Any]] = {}
    for key, results in seen.items():
        status, stdout, stderr, _ = results[-1]
        if key.startswith("ps "):
            stdout = _ps_subset(stdout, roots)
        elif key.startswith("ss "):
            stdout = _ss_subset(stdout, ports).replace(f"127.0.0.1:{box.ssh_port} ", "127.0.0.1:22 ")
        commands[clean(key)] = {"exit_status": status, "stdout": clean(stdout), "stderr": clean(stderr),
                                "delay": round(statistics.median(r[3] for r in results), 4)}
    fields = target.model_dump()
    data = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "outputs of the wscheck checklist's commands on the healthy sandbox (deploy/sandbox), captured by "
                "bench/simtargets.py capture; @WORKDIR@ = the sandbox directory, @HTTP_PORT@ = nginx's port",
        "target": {k: clean(str(fields[k])) if isinstance(fields[k], str) else fields[k]
                   for k in ("user", "pm2_app", "app_port", "app_dir", "ws_path", "http_path", "pm2_bin",
                             "pm2_home", "nginx_bin", "nginx_conf")},
        "commands": commands,
    }
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"captured {len(commands)} commands into {out}", file=sys.stderr)


# == canned data from the captured sandbox fixtures (wt-perf) ================================================

FIXTURES = HERE.parent / "tests" / "fixtures" / "captured" / "modes"
#: The fixtures carry outputs, not timings. A command on its own channel answers after DELAY_OTHER, `pm2 jlist`
#: after DELAY_JLIST, and a batch (checks.transport.batch) answers its commands one after another, BATCH_STEP
#: each. Measured on the sandbox (bench/timeline.py, wt-perf): jlist 86-120 ms warm; a command on its own
#: channel 7-15 ms; the first-round batch of 16 commands ~70 ms, ~4.4 ms a command.
DELAY_JLIST = 0.100
DELAY_OTHER = 0.010
BATCH_STEP = 0.0045


def _god_and_nginx_roots(commands: list[dict[str, Any]], target: dict[str, Any]) -> set[int]:
    """The app's PM2 God Daemon (above the pid `pm2 jlist` gives the app) and nginx's master (its pid file)."""
    ps = next(c["stdout"] for c in commands if c["argv"][:2] == ["ps", "-eo"])
    parent = {}
    comm = {}
    for line in ps.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
            parent[int(parts[0])] = int(parts[1])
            comm[int(parts[0])] = parts[3] if len(parts) == 4 else ""
    roots: set[int] = set()
    jlist = next(c["stdout"] for c in commands if c["argv"][-1] == "jlist")
    for proc in json.loads(jlist):
        if proc.get("name") == target["pm2_app"] and proc.get("pid"):
            pid = int(proc["pid"])
            while pid in parent and not comm.get(pid, "").startswith("PM2 v"):
                pid = parent[pid]
            if pid in parent:
                roots.add(pid)
    pid_file = next((c["stdout"].strip() for c in commands if c["argv"][:3] == ["head", "-c", "32"]), "")
    if pid_file.isdigit():
        roots.add(int(pid_file))
    return roots


def canned_from_fixtures(fixtures: Path = FIXTURES, mode: str = "healthy") -> dict[str, Any]:
    """The canned answers from the captured sandbox mode (tests/fixtures/captured/modes/MODE.json, re-recorded
    by `python -m tests.fixtures.captured.modes.capture` whenever a command changes), so the simulated targets
    answer exactly the commands the checklist runs now. Only the stack's own processes and ports are kept in
    the process and socket tables (the capture machine runs other sandboxes too)."""
    import tomllib
    from urllib.parse import urlsplit

    (target,) = tomllib.loads((fixtures / "target.toml").read_text())["targets"]
    data = json.loads((fixtures / f"{mode}.json").read_text())
    commands = data["commands"]
    wd = target["pm2_home"].rsplit("/", 1)[0]
    http_port = urlsplit(target["public_url"]).port
    roots = _god_and_nginx_roots(commands, target)
    nginx_pids = {r for r in roots if any(c["argv"][:3] == ["head", "-c", "32"] and c["stdout"].strip() == str(r)
                                          for c in commands)}

    def clean(text: str) -> str:
        return text.replace(wd, "@WORKDIR@").replace(f"127.0.0.1:{http_port}", "127.0.0.1:@HTTP_PORT@")

    out: dict[str, dict[str, Any]] = {}
    for c in commands:
        argv, stdout = c["argv"], c["stdout"]
        if argv[:2] == ["ps", "-eo"]:
            stdout = _ps_subset(stdout, roots)
        elif argv[0] == "ss":
            stdout = _ss_subset(stdout, {int(target["app_port"]), int(http_port or 0)})
        elif argv[:2] == ["ps", "-C"]:  # nginx's master and workers: this stack's only
            stdout = "".join(ln + "\n" for ln in stdout.splitlines()
                             if ln.split()[:2] and ({int(w) for w in ln.split()[:2] if w.isdigit()} & nginx_pids))
        elif argv[:2] == ["sh", "-c"] and "God Daemon (" in argv[2]:
            stdout = "".join(ln + "\n" for ln in stdout.splitlines() if ln.split()[:1] and ln.split()[0].isdigit()
                             and int(ln.split()[0]) in roots)
        delay = DELAY_JLIST if argv[-1] == "jlist" else DELAY_OTHER
        out[clean(shlex.join(argv))] = {"exit_status": c["exit_status"], "stdout": clean(stdout),
                                        "stderr": clean(c["stderr"]), "delay": delay}
    return {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": f"generated by bench/simtargets.py canned from tests/fixtures/captured/modes/{mode}.json (the "
                "captured sandbox); @WORKDIR@ = the sandbox directory, @HTTP_PORT@ = nginx's port; delays are "
                "simtargets.py's DELAY_* (the fixtures carry no timings)",
        "target": {k: clean(str(target[k])) if isinstance(target[k], str) else target[k]
                   for k in ("user", "pm2_app", "app_port", "app_dir", "ws_path", "http_path", "pm2_bin",
                             "pm2_home", "nginx_bin", "nginx_conf")},
        "commands": out,
    }


# == serve ==================================================================================================


class Sim:
    def __init__(self, canned: dict[str, Any], *, workdir: str, latency_scale: float) -> None:
        self.latency_scale = latency_scale
        self.workdir = workdir
        self.raw = canned
        self.target: dict[str, Any] = {}
        self.answers: dict[str, Answer] = {}
        self.app_port = int(canned["target"]["app_port"])
        self.stats: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    def bind(self, http_port: int) -> None:
        def sub(text: str) -> str:
            return text.replace("@WORKDIR@", self.workdir).replace("@HTTP_PORT@", str(http_port))

        self.target = {k: sub(v) if isinstance(v, str) else v for k, v in self.raw["target"].items()}
        self.answers = {sub(k): Answer(int(v["exit_status"]), sub(v["stdout"]), sub(v["stderr"]), float(v["delay"]))
                        for k, v in self.raw["commands"].items()}

    # -- SSH exec channels ---------------------------------------------------------------------------------

    def answer(self, argv: list[str]) -> Answer | None:
        """The canned answer of a command, with or without the `timeout -k K T` every command runs under."""
        if argv[:2] == ["timeout", "-k"] and len(argv) > 4:
            argv = argv[4:]
        return self.answers.get(shlex.join(argv))

    async def batch(self, process: asyncssh.SSHServerProcess[str], script: str) -> None:
        """A checks.transport.batch script: each command answered in turn, with the markers `sh` would print."""
        self.stats["batches"] += 1
        nonce, argvs = split_script(script)
        for i, argv in enumerate(argvs):
            answer = self.answer(argv)
            if answer is None:
                self.unknown[shlex.join(argv)[:200]] += 1
                answer = Answer(127, "", f"sh: 1: {argv[0]}: not found\n", 0.0)
            self.stats["exec"] += 1
            if self.latency_scale > 0:
                await asyncio.sleep(BATCH_STEP * self.latency_scale)
            out, err = batch_outputs(nonce, [(answer.exit_status, answer.stdout, answer.stderr)])
            process.stdout.write(out.replace(f"{nonce} 0 ", f"{nonce} {i} "))
            process.stderr.write(err.replace(f"{nonce} 0", f"{nonce} {i}"))
        process.exit(0)

    async def process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        if words[:2] == ["timeout", "-k"] and len(words) > 4:
            words = words[4:]  # the batch runs under one `timeout`, like a single command
        if len(words) == 3 and words[:2] == ["sh", "-c"] and words[2].startswith(RENICE):
            await self.batch(process, words[2])
            return
        answer = self.answer(words)
        if answer is None:
            self.unknown[command[:200]] += 1
            process.stderr.write(f"sh: 1: {command.split(' ', 1)[0]}: not found\n")
            process.exit(127)
            return
        self.stats["exec"] += 1
        if self.latency_scale > 0 and answer.delay > 0:
            await asyncio.sleep(answer.delay * self.latency_scale)
        if answer.stdout:
            process.stdout.write(answer.stdout)
        if answer.stderr:
            process.stderr.write(answer.stderr)
        process.exit(answer.exit_status)

    # -- direct-tcpip to the "app" -------------------------------------------------------------------------

    async def app_stream(self, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
        self.stats["tcpip"] += 1
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                if not chunk:
                    return
                head += chunk
            if b"upgrade: websocket" in head.lower():
                await self._app_ws(head, reader, writer)
            else:
                self.stats["app_http"] += 1
                writer.write(self._http_answer())
        except (TimeoutError, OSError, asyncssh.Error):
            self.stats["tcpip_aborted"] += 1  # the bot closes the channel right after the pong: normal
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _http_answer() -> bytes:
        body = APP_BODY.encode()
        etag = base64.b32encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode().lower()[:13]
        head = (f"HTTP/1.1 200 OK\r\nETag: \"{etag}\"\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nVary: Accept-Encoding\r\nDate: {formatdate(usegmt=True)}\r\n"
                "Connection: close\r\n\r\n")
        return head.encode() + body

    async def _app_ws(self, head: bytes, reader: asyncssh.SSHReader[bytes],
                      writer: asyncssh.SSHWriter[bytes]) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(head)
        request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
        if request is None:
            return
        response = protocol.accept(request)
        protocol.send_response(response)
        if protocol.state is State.OPEN:
            self.stats["app_ws"] += 1
            protocol.send_text(b"welcome")
        for chunk in protocol.data_to_send():
            writer.write(chunk)
        while protocol.state is State.OPEN or protocol.state is State.CLOSING:
            data = await asyncio.wait_for(reader.read(65536), 60)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.PING:
                    self.stats["app_pings"] += 1
            for chunk in protocol.data_to_send():
                if chunk:
                    writer.write(chunk)
                else:
                    writer.write_eof()
            if not data:
                break


class SimServer(asyncssh.SSHServer):
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.sim.stats["ssh_connections"] += 1

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        if dest_host in ("127.0.0.1", "localhost") and dest_port == self.sim.app_port:
            return self.sim.app_stream
        self.sim.stats["tcpip_refused"] += 1
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "Connection refused")


async def nginx_app(sim: Sim) -> web.AppRunner:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws" and request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(autoping=True, heartbeat=None)
            await ws.prepare(request)
            sim.stats["nginx_ws"] += 1
            await ws.send_str("welcome")
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
            return ws
        sim.stats["nginx_http"] += 1
        return web.Response(body=APP_BODY.encode(), content_type="text/html", charset="utf-8",
                            headers={"Server": NGINX_SERVER, "Vary": "Accept-Encoding"})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    return runner


def _toml(sim: Sim, ports: list[int], *, http_port: int, workdir: Path) -> str:
    t = sim.target
    out = ["# generated by bench/simtargets.py serve", ""]
    for i, port in enumerate(ports, start=1):
        out += [
            "[[targets]]",
            f'name = "sim{i:03d}"',
            'host = "127.0.0.1"',
            f"port = {port}",
            f'user = "{t["user"]}"',
            f'identity_file = "{workdir / "id_ed25519"}"',
            f'known_hosts = "{workdir / "known_hosts"}"',
            f'pm2_app = "{t["pm2_app"]}"',
            f"app_port = {t['app_port']}",
            f'app_dir = "{t["app_dir"]}"',
            f'public_url = "http://127.0.0.1:{http_port}/"',
            f'ws_path = "{t["ws_path"]}"',
            f'http_path = "{t["http_path"]}"',
            f'pm2_bin = "{t["pm2_bin"]}"',
            f'pm2_home = "{t["pm2_home"]}"',
            f'nginx_bin = "{t["nginx_bin"]}"',
            f'nginx_conf = "{t["nginx_conf"]}"',
            "",
        ]
    return "\n".join(out)


async def serve(args: argparse.Namespace, canned: dict[str, Any]) -> None:
    workdir = Path(args.workdir)
    sim = Sim(canned, workdir=FAKE_WORKDIR, latency_scale=args.latency_scale)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner = await nginx_app(sim)
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    http_port = int(runner.addresses[0][1])
    sim.bind(http_port)

    host_key = asyncssh.generate_private_key("ssh-ed25519", comment="wscheck-simtargets-host")
    client_key = asyncssh.generate_private_key("ssh-ed25519", comment="wscheck-simtargets-client")
    identity = workdir / "id_ed25519"
    identity.unlink(missing_ok=True)
    client_key.write_private_key(str(identity))
    identity.chmod(0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    acceptors: list[asyncssh.SSHAcceptor] = []
    for _ in range(args.targets):
        acceptors.append(await asyncssh.listen(
            "127.0.0.1", 0, server_factory=lambda: SimServer(sim), server_host_keys=[host_key],
            authorized_client_keys=authorized, process_factory=sim.process, encoding="utf-8",
            allow_pty=False, line_editor=False, agent_forwarding=False, x11_forwarding=False, allow_scp=False,
            backlog=128, reuse_address=True))
    ports = [a.get_port() for a in acceptors]
    host_pub = host_key.export_public_key().decode().split()
    (workdir / "known_hosts").write_text("".join(f"[127.0.0.1]:{p} {host_pub[0]} {host_pub[1]}\n" for p in ports))
    (workdir / "targets.json").write_text(json.dumps({"nginx_port": http_port, "ssh_ports": ports,
                                                      "pid": os.getpid()}) + "\n")
    (workdir / "wscheck.toml").write_text(_toml(sim, ports, http_port=http_port, workdir=workdir))
    print(f"simtargets ready: {len(ports)} SSH servers on 127.0.0.1:{ports[0]}…, nginx on 127.0.0.1:{http_port}, "
          f"config {workdir / 'wscheck.toml'}", flush=True)
    await stop.wait()
    stats = {**sim.stats, "unknown_commands": dict(sim.unknown.most_common(10))}
    print("simtargets stats " + json.dumps(stats), flush=True)
    for acceptor in acceptors:
        acceptor.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runner.cleanup(), 3)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="serve N simulated targets")
    srv.add_argument("--targets", type=int, default=50)
    srv.add_argument("--workdir", required=True, help="where the key, known_hosts and wscheck.toml are written")
    srv.add_argument("--canned", default=str(CANNED))
    srv.add_argument("--latency-scale", type=float, default=1.0,
                     help="answer each command after SCALE x the time it took on the sandbox (0: at once)")
    gen = sub.add_parser("canned", help="write the canned JSON from the captured sandbox fixtures (the default)")
    gen.add_argument("--out", default=str(CANNED))
    gen.add_argument("--mode", default="healthy")
    cap = sub.add_parser("capture", help="record the checklist's commands on the sandbox into the canned JSON")
    cap.add_argument("--out", default=str(CANNED))
    cap.add_argument("--sandbox-workdir", default=None, help="use this running sandbox instead of starting one")
    cap.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "canned":
        data = canned_from_fixtures(mode=args.mode)
        Path(args.out).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {len(data['commands'])} commands into {args.out}", file=sys.stderr)
    elif args.command == "capture":
        capture(Path(args.out), Path(args.sandbox_workdir) if args.sandbox_workdir else None, args.rounds)
    else:
        if not re.fullmatch(r"/[A-Za-z0-9_./+@-]*", FAKE_WORKDIR):
            raise SystemExit("bad FAKE_WORKDIR")
        raise_nofile()
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(args, json.loads(Path(args.canned).read_text())))


if __name__ == "__main__":
    main()
