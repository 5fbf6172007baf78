"""Parse `pm2 jlist` into the few facts the PM2 checks need.

`pm2 jlist` is PM2's machine-readable process list, but it is not clean JSON on stdout: when the daemon is
not running it first prints `[PM2] Spawning PM2 daemon ...` lines (coloured), and on a PM2_HOME that was
never used it prints a large ASCII banner before that. So the array is located rather than assumed.

Each entry carries the whole environment of the process (`pm2_env.env`, and PM2 copies it again to the top
level of `pm2_env`), which routinely holds database URLs and API keys. Only PORT and NODE_ENV are extracted;
nothing else of the environment is kept in the model, so nothing downstream can leak it by accident.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Mapping
from typing import Literal, TypeGuard

from pydantic import BaseModel, ConfigDict

from checks.parsers import ParseError
from checks.parsers.limits import MAX_JLIST_BYTES, TooLarge
from checks.redact import redact

Mode = Literal["dev", "production", "unknown"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Runners whose first argument is a package.json script name (`yarn dev`, `pnpm start`).
_SCRIPT_RUNNERS = frozenset({"npm", "yarn", "pnpm", "bun"})
_SCRIPT_SUFFIXES = (".js", ".cjs", ".mjs", ".cmd", ".exe")
_MAX_FALLBACK_STARTS = 64
#: raw_decode attempts at most (issue 13, 14): each may read deep into the text, so 200k lines of `[1,`
#: cost 35 s of CPU. PM2 prints its JSON within the first few lines; `[PM2]` lines are skipped for free.
_MAX_DECODE_ATTEMPTS = 64


class Pm2Process(BaseModel):
    """One entry of `pm2 jlist`; cluster mode gives one entry per instance, all with the same name."""

    model_config = ConfigDict(frozen=True)

    name: str
    pm_id: int
    pid: int  # 0 when not running; PM2 may keep a stale pid for `waiting restart`, so trust `status`
    status: str
    restart_time: int = 0
    unstable_restarts: int = 0
    pm_uptime: int | None = None
    created_at: int | None = None
    #: PM2's id of the process definition: kept by stop/start/restart, new after `pm2 delete` + `pm2 start`.
    unique_id: str | None = None
    exec_path: str | None = None
    args: tuple[str, ...] = ()
    interpreter: str | None = None
    exec_mode: str | None = None
    cwd: str | None = None
    out_log: str | None = None
    err_log: str | None = None
    port_env: str | None = None
    node_env: str | None = None
    autorestart: bool | None = None
    max_restarts: int | None = None
    restart_delay: int | None = None
    #: wt-host: where PM2 keeps its files (pids/, dump.pm2) and the user it runs as, for pm2.saved/pm2.startup.
    pid_path: str | None = None
    pm2_home_env: str | None = None
    username: str | None = None
    # wt-host2: what makes PM2 restart an `online` app by itself (pm2_restart_loop_online)
    max_memory_restart: int | None = None  # bytes
    watch: bool | None = None
    memory: int | None = None  # monit.memory, bytes

    @property
    def mode(self) -> Mode:
        """Whether the app runs Next.js in dev or production mode, judged from the command and NODE_ENV.

        The field note's stop-gap was `pm2 start npm -- run dev`; a dev server in production is a finding of
        its own, so dev signals win over production ones.
        """
        words = _command_words(self.exec_path, self.args)
        command = _command_mode(words)
        node_env = (self.node_env or "").strip().lower()
        if command == "dev" or node_env == "development":
            return "dev"
        if command == "production" or node_env == "production":
            return "production"
        return "unknown"


def _runner_name(path: str) -> str:
    """`/usr/lib/node_modules/npm/bin/npm-cli.js` -> `npm`; `node_modules/.bin/next` -> `next`."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for suffix in _SCRIPT_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if base.endswith("-cli"):
        base = base[: -len("-cli")]
    return base


def _command_words(exec_path: str | None, args: tuple[str, ...]) -> list[str]:
    """The command as words: the runner's name, then the arguments (an argument with spaces is split)."""
    words: list[str] = []
    if exec_path:
        first, *rest = exec_path.split() or [""]
        words.append(_runner_name(first))
        words.extend(rest)
    for arg in args:
        words.extend(arg.split())
    return [_runner_name(w) if "/" in w else w.lower() for w in words]


def _command_mode(words: list[str]) -> Mode:
    """dev: `run dev`, `next dev`, `yarn dev`...; production: `run start`, `npm start`, `next start`..."""
    for first, second in itertools.pairwise(words):
        if first == "run" or first == "next" or first in _SCRIPT_RUNNERS:
            if second == "dev":
                return "dev"
            if second == "start":
                return "production"
    return "unknown"


def _as_int(value: object) -> int | None:
    """PM2 writes numbers as JSON numbers, but hand-edited ecosystem files give strings; accept both."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", value):
        return int(value)
    return None


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _redact_args(args: list[str]) -> tuple[str, ...]:
    """Arguments can carry secrets (`--db-password x`): redact each, and the word after a secret flag."""
    out: list[str] = []
    prev: str | None = None
    for arg in args:
        masked = redact(arg)
        if prev is not None and prev.startswith("-") and "=" not in prev:
            joined = redact(f"{prev} {arg}")
            if joined.startswith(prev + " "):
                masked = redact(joined[len(prev) + 1 :])
        out.append(masked)
        prev = arg
    return tuple(out)


def _as_args(value: object) -> tuple[str, ...]:
    """`pm2_env.args` is a list, but ecosystem files may give one string; always a tuple of words."""
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = value.split()
        return _redact_args(parts)
    if isinstance(value, list):
        return _redact_args([s for s in (_as_str(v) for v in value) if s is not None])
    return ()


def _env_value(env: Mapping[str, object], top: Mapping[str, object], key: str) -> str | None:
    """PORT/NODE_ENV from `pm2_env.env`, else from `pm2_env` itself where PM2 copies the environment."""
    for source in (env, top):
        value = _as_str(source.get(key))
        if value is not None:
            return value
    return None


def _process(entry: object) -> Pm2Process:
    if not isinstance(entry, dict):
        raise ParseError("pm2 jlist entry is not an object")
    raw_env = entry.get("pm2_env")
    pm2_env: dict[str, object] = raw_env if isinstance(raw_env, dict) else {}
    raw_proc_env = pm2_env.get("env")
    proc_env: dict[str, object] = raw_proc_env if isinstance(raw_proc_env, dict) else {}

    name = _as_str(entry.get("name")) or _as_str(pm2_env.get("name"))
    pm_id = _as_int(entry.get("pm_id"))
    if pm_id is None:
        pm_id = _as_int(pm2_env.get("pm_id"))
    if name is None or pm_id is None:
        raise ParseError("pm2 jlist entry has no name or pm_id")
    return Pm2Process(
        name=name,
        pm_id=pm_id,
        pid=max(_as_int(entry.get("pid")) or 0, 0),
        status=_as_str(pm2_env.get("status")) or "unknown",
        restart_time=_as_int(pm2_env.get("restart_time")) or 0,
        unstable_restarts=_as_int(pm2_env.get("unstable_restarts")) or 0,
        pm_uptime=_as_int(pm2_env.get("pm_uptime")),
        created_at=_as_int(pm2_env.get("created_at")),
        unique_id=_as_str(pm2_env.get("unique_id")),
        exec_path=_as_str(pm2_env.get("pm_exec_path")),
        args=_as_args(pm2_env.get("args")),
        interpreter=_as_str(pm2_env.get("exec_interpreter")) or _as_str(pm2_env.get("interpreter")),
        exec_mode=_as_str(pm2_env.get("exec_mode")),
        cwd=_as_str(pm2_env.get("pm_cwd")),
        out_log=_as_str(pm2_env.get("pm_out_log_path")),
        err_log=_as_str(pm2_env.get("pm_err_log_path")),
        port_env=_env_value(proc_env, pm2_env, "PORT"),
        node_env=_env_value(proc_env, pm2_env, "NODE_ENV"),
        autorestart=_as_bool(pm2_env.get("autorestart")),
        max_restarts=_as_int(pm2_env.get("max_restarts")),
        restart_delay=_as_int(pm2_env.get("restart_delay")),
        pid_path=_as_str(pm2_env.get("pm_pid_path")),
        pm2_home_env=_as_str(pm2_env.get("PM2_HOME")),
        username=_as_str(pm2_env.get("username")),
        max_memory_restart=_as_int(pm2_env.get("max_memory_restart")),
        watch=_as_bool(pm2_env.get("watch")) if not isinstance(pm2_env.get("watch"), list) else True,
        memory=_as_int((entry.get("monit") or {}).get("memory")) if isinstance(entry.get("monit"), dict) else None,
    )


def _looks_like_jlist(value: object) -> TypeGuard[list[object]]:
    return isinstance(value, list) and all(
        isinstance(item, dict) and ("pm2_env" in item or "pm_id" in item) for item in value
    )


def _find_array(text: str) -> list[object]:
    """The JSON array of processes in `pm2 jlist` output.

    Banner and `[PM2] ...` lines also start with `[`, so every line-start `[` is tried with raw_decode, and
    anything after the array (a later warning) is ignored. A non-empty process list glued to the end of a
    message line is found too. An empty `[]` counts only on a line of its own: `[]` inside an error message
    must not read as "no processes".
    """
    decoder = json.JSONDecoder()
    clean = _ANSI.sub("", text)
    line_starts = [m.end() - 1 for m in re.finditer(r"^[ \t]*\[", clean, re.MULTILINE)]
    seen = set(line_starts)
    # Bounded so that garbage full of brackets stays cheap.
    others = [m.start() for m in itertools.islice(re.finditer(r"\[", clean), _MAX_FALLBACK_STARTS)]
    candidates = [(start, True) for start in line_starts] + [(s, False) for s in others if s not in seen]
    attempts = 0
    for start, at_line_start in candidates:
        if clean.startswith("[PM2]", start):
            continue
        attempts += 1
        if attempts > _MAX_DECODE_ATTEMPTS:
            break
        try:
            value, end = decoder.raw_decode(clean, start)
        except (ValueError, RecursionError):
            continue
        if not _looks_like_jlist(value):
            continue
        if value or (at_line_start and not clean[end:].split("\n", 1)[0].strip()):
            return value
    raise ParseError("no PM2 process list (JSON array) in pm2 jlist output")


def parse_jlist(text: str) -> list[Pm2Process]:
    """Processes from `pm2 jlist` output, in PM2's order.

    `[]` is valid: no process under this PM2_HOME/user (usually the wrong user or PM2_HOME, not "app down").
    """
    if len(text) > MAX_JLIST_BYTES:
        raise TooLarge("pm2 jlist output", size=len(text), limit=MAX_JLIST_BYTES, unit="bytes")
    return [_process(entry) for entry in _find_array(text)]


def find_app(processes: list[Pm2Process], name: str) -> list[Pm2Process]:
    """All entries named `name` (one per instance in cluster mode), ordered by pm_id."""
    return sorted((p for p in processes if p.name == name), key=lambda p: p.pm_id)
