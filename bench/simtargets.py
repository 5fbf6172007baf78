"""Simulated targets for bench/bench_scale.py: N SSH servers and one "nginx", all in ONE process.

    .venv/bin/python bench/simtargets.py serve --targets 500 --workdir DIR [--latency-scale 1]
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

`capture` starts the sandbox (deploy/sandbox; or uses a running one), runs the real checklist through the
real SSH transport three times while recording every command and its output, and writes the JSON that
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

    async def process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        answer = self.answers.get(command)
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
    cap = sub.add_parser("capture", help="record the checklist's commands on the sandbox into the canned JSON")
    cap.add_argument("--out", default=str(CANNED))
    cap.add_argument("--sandbox-workdir", default=None, help="use this running sandbox instead of starting one")
    cap.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "capture":
        capture(Path(args.out), Path(args.sandbox_workdir) if args.sandbox_workdir else None, args.rounds)
    else:
        if not re.fullmatch(r"/[A-Za-z0-9_./+@-]*", FAKE_WORKDIR):
            raise SystemExit("bad FAKE_WORKDIR")
        raise_nofile()
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(args, json.loads(Path(args.canned).read_text())))


if __name__ == "__main__":
    main()
