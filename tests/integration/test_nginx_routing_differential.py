"""Differential test: the routing model against a real nginx, on >= 200 generated configurations.

Each configuration gets its own ports, so all of them run in one nginx process (one start, one check).
Every server and location stamps `add_header X-Loc <id> always`, proxied locations reach a tiny local
upstream that answers `X-Up: 1`, and the root is a directory that does not exist (static = 404, try_files
falls through; workers run as nobody, who cannot read pytest's tmp_path, so a real empty root would say 403).
For each sampled request (Host, address, port, path, with or without an Upgrade header) the model's route
must name the same server/location and the same outcome (proxy / status / redirect target).
"""

from __future__ import annotations

import http.client
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from checks.parsers.nginx import parse_dump
from checks.parsers.nginx_route import Proxy, Request, Return, Route, Static, Uncertain, route

CONFIGS = 220
REQUESTS_PER_CONFIG = 8
SEED = 20261206

NAMES = ["a.test", "b.test", "www.a.test", "*.a.test", ".b.test", "a.*", "~^w\\d+\\.a\\.test$",
         "~^(?<sub>.+)\\.c\\.test$", "_", ""]
HOSTS = ["a.test", "b.test", "x.a.test", "www.a.test", "w1.a.test", "a.org", "q.c.test", "nope.test",
         "B.TEST", "sub.b.test"]
PATHS = ["/ws", "/ws/chat", "/api/x", "/old/ws", "/", "/x.php", "/static/a.JPG", "/WS", "/w", "/loop/a", "/api",
         "/ws?x=1"]
# "/ws/" and "/api/": a proxied location named with a trailing slash answers its name without it by a 301 to it
# (nginx's auto_redirect), before any regex location and before its own rewrite phase.
PREFIXES = ["/", "/ws", "/w", "/api", "/ws/chat", "/static", "/old", "/loop", "/ws/", "/api/"]
EXACT = ["/ws", "/", "/api/x", "/ws/chat", "/ws/"]
IF_TESTS = ["= websocket", "~* ^web", '= ""']
REGEX = [("~", "^/ws"), ("~", "\\.php$"), ("~", "^/api/(.*)$"), ("~", "chat"), ("~*", "^/WS"), ("~*", "\\.JPG$")]


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("X-Up", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class _Gen:
    rng: random.Random
    up_port: int
    lines: list[str] = field(default_factory=list)
    loc_id: int = 0

    def body(self, indent: str, server_idx: int, nested_ok: bool, in_named: bool = False) -> None:
        """One location body: a marker, then one routing behaviour."""
        r = self.rng
        self.lines.append(f'{indent}add_header X-Loc "s{server_idx}-l{self.loc_id}" always;')
        self.loc_id += 1
        if r.random() < 0.15:
            test = r.choice(IF_TESTS)
            self.lines.append(f"{indent}if ($http_upgrade {test}) {{ return {r.choice([426, 403])}; }}")
        kind = r.choice(["proxy", "proxy", "proxy", "return", "redirect", "static", "rewrite_last",
                         "rewrite_break", "rewrite_redirect", "try_files", "try_uri"])
        if in_named and kind in ("try_files", "try_uri"):
            kind = "proxy"
        if kind == "proxy":
            self.lines.append(f"{indent}proxy_pass http://127.0.0.1:{self.up_port};")
        elif kind == "return":
            self.lines.append(f'{indent}return {r.choice([200, 403, 410, 418])} "x";')
        elif kind == "redirect":
            self.lines.append(f"{indent}return {r.choice([301, 302, 307])} /moved{r.randint(0, 9)};")
        elif kind == "rewrite_last":
            self.lines.append(f"{indent}rewrite {r.choice(['^/old(.*)$ $1', '^(.*)$ /api$1', '^/loop(.*)$ /loop$1'])}"
                              " last;")
        elif kind == "rewrite_break":
            self.lines.append(f"{indent}rewrite ^/ws(.*)$ /ws2$1 break;")
            self.lines.append(f"{indent}proxy_pass http://127.0.0.1:{self.up_port};")
        elif kind == "rewrite_redirect":
            self.lines.append(f"{indent}rewrite ^/(.*)$ /r/$1 {r.choice(['redirect', 'permanent'])};")
        elif kind == "try_files":
            self.lines.append(f"{indent}try_files $uri $uri/ {r.choice(['@app', '@other'])};")
        elif kind == "try_uri":
            self.lines.append(f"{indent}try_files $uri {r.choice(['/api/x', '=404', '=410'])};")
        if nested_ok and r.random() < 0.25:
            self.nested(indent, server_idx)

    def nested(self, indent: str, server_idx: int) -> None:
        parent = self.current_prefix
        r = self.rng
        choice = r.choice(["prefix", "exact", "regex"])
        if choice == "prefix":
            head = f"location {parent.rstrip('/')}/chat"
        elif choice == "exact":
            head = f"location = {parent.rstrip('/')}/chat"
        else:
            head = "location ~ chat$"
        self.lines.append(f"{indent}{head} {{")
        self.body(indent + "    ", server_idx, nested_ok=False)
        self.lines.append(f"{indent}}}")

    current_prefix: str = "/"

    def server(self, idx: int, listens: list[str], names: list[str]) -> None:
        r = self.rng
        self.lines.append("server {")
        for listen in listens:
            self.lines.append(f"    listen {listen};")
        if names != ["<none>"]:
            self.lines.append("    server_name " + " ".join(f'"{n}"' if n == "" else n for n in names) + ";")
        self.lines.append(f'    add_header X-Loc "s{idx}-none" always;')
        roll = r.random()
        if roll < 0.05:
            self.lines.append("    return 301 /moved;")
        elif roll < 0.15:
            self.lines.append("    rewrite ^/old(.*)$ /ws$1 last;")
        elif roll < 0.2:
            self.lines.append('    if ($http_upgrade = "") { return 418; }')
        used: set[tuple[str, str]] = set()
        for _ in range(r.randint(1, 5)):
            kind = r.choice(["prefix", "prefix", "exact", "noregex", "regex"])
            if kind == "regex":
                mod, pattern = r.choice(REGEX)
                self.lines.append(f"    location {mod} {pattern} {{")
                self.body("        ", idx, nested_ok=False)
                self.lines.append("    }")
                continue
            path = r.choice(EXACT if kind == "exact" else PREFIXES)
            key = ("=" if kind == "exact" else "p", path)
            if key in used:
                continue
            used.add(key)
            mod = {"prefix": "", "exact": "= ", "noregex": "^~ "}[kind]
            self.lines.append(f"    location {mod}{path} {{")
            self.current_prefix = path
            self.body("        ", idx, nested_ok=kind != "exact")
            self.lines.append("    }")
        for named in ("@app", "@other"):
            self.lines.append(f"    location {named} {{")
            self.body("        ", idx, nested_ok=False, in_named=True)
            self.lines.append("    }")
        self.lines.append("}")


def _generate(rng: random.Random, ports: list[int], up_port: int) -> str:
    gen = _Gen(rng, up_port)
    defaults: set[str] = set()
    for idx in range(rng.randint(1, 4)):
        listens = []
        for port in rng.sample(ports, rng.randint(1, len(ports))):
            addr = rng.choice([f"{port}", f"{port}", f"127.0.0.1:{port}"])
            if addr not in defaults and rng.random() < 0.3:
                defaults.add(addr)
                listens.append(f"{addr} default_server")
            else:
                listens.append(addr)
        names = rng.sample(NAMES, rng.randint(1, 3)) if rng.random() < 0.9 else ["<none>"]
        gen.server(idx, listens, names)
    return "\n".join(gen.lines) + "\n"


def _expected(result: Route) -> tuple[object, ...]:
    if isinstance(result.outcome, Uncertain):
        if result.outcome.reason == "no_listen":
            return ("refused",)
        return ("uncertain", result.outcome.reason)
    assert result.server is not None
    marker = f"s{result.server.index}-" + ("none" if result.location is None else f"l{_loc_marker(result)}")
    if isinstance(result.outcome, Proxy):
        return (marker, "proxy", 200, None)
    if isinstance(result.outcome, Return):
        target = urlsplit(result.outcome.location_header).path if result.outcome.redirect else None
        return (marker, "status", result.outcome.status, target)
    assert isinstance(result.outcome, Static)
    return (marker, "status", 404, None)


def _loc_marker(result: Route) -> int:
    assert result.location is not None
    return result.location.index


def _observe(address: str, port: int, host: str, path: str, upgrade: bool) -> tuple[object, ...]:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    headers = {"Host": host}
    if upgrade:
        headers |= {"Upgrade": "websocket", "Connection": "Upgrade"}
    try:
        conn.request("GET", path, headers=headers)
    except ConnectionRefusedError:
        return ("refused",)
    response = conn.getresponse()
    response.read()
    conn.close()
    kind = "proxy" if response.getheader("X-Up") else "status"
    location = response.getheader("Location")
    return (response.getheader("X-Loc"), kind, response.status, urlsplit(location).path if location else None)


def _free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_model_routes_like_real_nginx(tmp_path: Path, upstream: int) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    rng = random.Random(SEED)
    ports = _free_ports(CONFIGS * 2)
    (tmp_path / "www").mkdir()
    configs: list[tuple[list[int], str]] = []
    for i in range(CONFIGS):
        own = ports[2 * i : 2 * i + 2]
        configs.append((own, _generate(rng, own, upstream)))
    temp = "\n".join(f"    {k}_temp_path {tmp_path}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n    access_log off;\n{temp}\n    root /nonexistent/wscheck-routing;\n"
        "    server_names_hash_bucket_size 128;\n"
        + "".join(text for _, text in configs)
        + "}\n"
    )
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log"),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        pidfile = tmp_path / "nginx.pid"  # `nginx -t` writes it too: wait for our process's own pid
        while not (pidfile.exists() and pidfile.read_text().strip() == str(proc.pid)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.02)
        mismatches: list[str] = []
        checked = 0
        for i, (own, text) in enumerate(configs):
            model = parse_dump(f"# configuration file /c{i}.conf:\nhttp {{\n{text}}}\n")
            for _ in range(REQUESTS_PER_CONFIG):
                host, path = rng.choice(HOSTS), rng.choice(PATHS)
                port, address, upgrade = rng.choice(own), rng.choice(["127.0.0.1", "127.0.0.2"]), rng.random() < 0.5
                want = _expected(route(model, Request(host=host, port=port, path=path, address=address,
                                                      upgrade=upgrade)))
                got = _observe(address, port, host, path, upgrade)
                checked += 1
                if want != got:
                    mismatches.append(f"config {i} {address}:{port} Host={host} {path} upgrade={upgrade}: "
                                      f"model {want} nginx {got}\n{text}")
        assert proc.poll() is None, (tmp_path / "error.log").read_text()[-2000:]
        assert checked >= CONFIGS * REQUESTS_PER_CONFIG
        assert not mismatches, f"{len(mismatches)} mismatches; first:\n" + "\n".join(mismatches[:3])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
