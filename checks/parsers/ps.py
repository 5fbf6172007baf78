"""Parse `ps -eo pid=,ppid=,user=,comm=` into a process table, and walk it.

PM2 reports the pid it spawned, which for `pm2 start npm -- run dev` is npm, not the Node process that
listens: the real tree is PM2 -> npm -> sh -> node -> next-server. Matching a listening socket's pid (from
ss) to a PM2 app therefore needs the descendants of the PM2 pid, or the ancestors of the socket's pid.

comm is the last column because it may contain spaces (`next-server (v1`, `PM2 v7.0.4: God`, `nginx:
worker p`); the kernel cuts it to 15 characters, so never compare it with a full name.
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict

from checks.parsers import ParseError


class ProcInfo(BaseModel):
    """One row of ps."""

    model_config = ConfigDict(frozen=True)

    pid: int
    ppid: int
    user: str
    comm: str


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def _parse_line(line: str) -> ProcInfo | None:
    parts = line.strip().split(None, 3)
    if len(parts) < 3:
        return None
    pid, ppid = _int(parts[0]), _int(parts[1])
    if pid is None or ppid is None:
        return None
    comm = parts[3].rstrip() if len(parts) == 4 else ""
    return ProcInfo(pid=pid, ppid=ppid, user=parts[2], comm=comm)


def parse_ps(text: str) -> dict[int, ProcInfo]:
    """pid -> ProcInfo. Header and malformed lines are skipped; ParseError if nothing at all looks like ps."""
    procs: dict[int, ProcInfo] = {}
    for line in text.splitlines():
        info = _parse_line(line)
        if info is not None:
            procs[info.pid] = info
    if not procs and text.strip():
        raise ParseError("no process line in ps output")
    return procs


def descendants(procs: dict[int, ProcInfo], root: int) -> set[int]:
    """`root` and every process below it. A cycle in corrupt input cannot loop: each pid is visited once."""
    children: dict[int, list[int]] = {}
    for info in procs.values():
        if info.pid != info.ppid:
            children.setdefault(info.ppid, []).append(info.pid)
    found = {root}
    queue = deque([root])
    while queue:
        for child in children.get(queue.popleft(), ()):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def ancestors(procs: dict[int, ProcInfo], pid: int) -> list[int]:
    """`pid`, its parent, and so on up to 1 (or the first pid not in the table). Stops on a cycle."""
    chain = [pid]
    seen = {pid}
    current = pid
    while current != 1:
        info = procs.get(current)
        if info is None or info.ppid <= 0 or info.ppid in seen:
            break
        current = info.ppid
        chain.append(current)
        seen.add(current)
    return chain
