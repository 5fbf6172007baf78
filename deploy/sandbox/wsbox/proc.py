"""Small process / network helpers of the sandbox (waits, probes, pids, free ports)."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .consts import SandboxError, T

# --------------------------------------------------------------------------------------------------------
# small process / network helpers
# --------------------------------------------------------------------------------------------------------


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; raise SandboxError naming `what` after `timeout` s.

    Readiness is always a real signal (a pid file, a TCP accept, an HTTP answer, PM2's own status), never a
    fixed sleep, so a slow machine only waits longer and a broken one fails with a sentence, not a hang.
    `detail` adds context (a log tail) to the error.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = probe()
        except (OSError, SandboxError, ValueError, subprocess.SubprocessError) as exc:
            result, last_exc = None, exc
        if result:
            return result
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc})"
            if detail is not None:
                with contextlib.suppress(Exception):
                    msg += "\n" + detail()
            raise SandboxError(msg)
        time.sleep(interval)


def tcp_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0) -> int | None:
    """Status code of a GET, or None when the connection fails (refused, reset, timeout)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def http_body(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """The body of a GET (the first 64 KB), or "" when there is no answer."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().read(65536).decode(errors="replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return ""


def ws_handshake_status(
    port: int, path: str = "/ws", host: str = "127.0.0.1", timeout: float = 5.0
) -> int | None:
    """Status code of a hand-written WebSocket upgrade request (101 when the upgrade goes through)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, session id) from /proc, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def pid_alive(pid: int | None) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    if not pid:
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def session_members(sid: int) -> set[int]:
    """Live processes whose session id is `sid`.

    nginx's master calls setsid() when it daemonizes, so its workers keep the master's pid as their session
    id even after the master is gone (kill -9): this is how its orphaned workers are still found.
    """
    found: set[int] = set()
    if sid <= 1:
        return found
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == sid and stat[0] not in ("Z", "X"):
            found.add(pid)
    return found


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live descendant of `roots` (not the roots themselves), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _pids_with_env(name: str, value: str, uid: int) -> set[int]:
    """Processes of `uid` whose initial environment holds name=value (the sandbox's marker)."""
    needle = f"{name}={value}".encode()
    found: set[int] = set()
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.add(pid)
        except OSError:
            continue
    return found


def kill_and_wait(pids: Iterable[int], *, sig: int = signal.SIGTERM, timeout: float = 5.0) -> set[int]:
    """Send `sig`, wait up to `timeout` s, SIGKILL the survivors; return the pids still alive after that."""
    targets = {p for p in pids if p and p != os.getpid() and pid_alive(p)}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = {p for p in targets if pid_alive(p)}
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(pid_alive(p) for p in survivors) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {p for p in survivors if pid_alive(p)}


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port free on 127.0.0.1 right now.

    Ports are drawn below the kernel's ephemeral range when there is room there: a port from that range
    (what binding port 0 returns) can be taken at any moment as the source port of some outgoing
    connection, which would make a later `listen` by nginx or the app fail for no visible reason. The
    caller still retries on "Address already in use", since a free port can be taken before it is bound.
    """
    excluded = set(exclude)
    low, _high = _ephemeral_range()
    lo, hi = (20000, low - 1) if low > 21000 else (1025, 65535)
    for _ in range(200):
        port = random.randint(lo, hi) if lo < hi else 0
        if port in excluded:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(sock.getsockname()[1])
        if chosen not in excluded:
            return chosen
    raise SandboxError("could not find a free TCP port on 127.0.0.1")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _days(days: float) -> datetime.timedelta:
    return datetime.timedelta(days=days)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])

