"""Understand what nginx says about itself: `nginx -t` verdicts and the `nginx -T` configuration dump.

Why this exists: the seed incident's checklist asks two nginx questions — "is the config valid?" and "does
the location that serves the chat really forward a WebSocket to the app's port?". Grepping the site file
answers neither reliably: the answer depends on includes, on which `server` nginx picks for the host, on
which `location` wins for the path, and on nginx's inheritance rules (the innermost level with *any*
`proxy_set_header` replaces the outer ones entirely, which silently drops `Upgrade`). So we parse the dump
nginx itself prints (`nginx -T`, exactly what it loaded, includes already expanded into files) and model
those rules here, as pure functions over text so they can be tested against captured real outputs.

Limits (callers must know):
* Only the `http` context is modelled; `stream`/`mail` servers are ignored.
* `if` and `limit_except` blocks are not evaluated: directives inside them (even `proxy_pass`) are ignored.
* `find_location` ignores the listen *address* (only the port counts); checks.parsers.nginx_route.route is the
  full model (address, `ssl`, rewrites, try_files, the `auto_redirect` of a proxied location named with a
  trailing "/"). Regex locations and regex server names are evaluated with Python's `re` (PCRE named groups
  `(?<n>...)` are translated), so exotic PCRE syntax is treated as "does not match".
* `headers` holds only what the config sets; nginx's implicit defaults (`Host: $proxy_host`,
  `Connection: close`) apply when a name is absent, and a header set to "" is not sent at all.
* `http_version` is never None (nginx's default "1.0" is filled in); `listen` on a location omits the
  implicit `*:80` of a server without `listen` (NginxServer.listen has it, marked `implicit`).
* Directives nginx would reject (bad arity, bad time value, bad port) raise ParseError: a dump comes from a
  config nginx accepted, so such text means we are not reading what we think we are.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict

from checks.parsers import ParseError
from checks.parsers.limits import MAX_NGINX_DUMP_BYTES, MAX_NGINX_STATEMENTS, TooLarge, statements_estimate

__all__ = [
    "LocationNode",
    "NginxConfig",
    "NginxListen",
    "NginxLocation",
    "NginxMap",
    "NginxServer",
    "NginxTest",
    "NginxUpstream",
    "find_location",
    "find_proxy_locations",
    "parse_dump",
    "parse_nginx_test",
    "split_dump",
]

# --------------------------------------------------------------------------------------------- nginx -t

TestKind = Literal["ok", "syntax", "permission", "missing_file", "other"]

# "2025/09/05 10:00:00 [emerg] 1234#1234: msg" (error-log format, printed once the log is stderr or open)
_LOG_LINE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(?P<level>[a-z]+)\] \d+#\d+: (?:\*\d+ )?(?P<msg>.*)$")
# "nginx: [emerg] msg" (the copy nginx writes to stderr when its log is a file)
_STDERR_LINE = re.compile(r"^nginx: \[(?P<level>[a-z]+)\] (?P<msg>.*)$")
_SYNTAX_OK = re.compile(r"^nginx: the configuration file .* syntax is ok$")
_TEST_OK = re.compile(r"^nginx: configuration file .* test is successful$")
_TEST_FAILED = re.compile(r"^nginx: configuration file .* test failed$")
_CONF_LOCATION = re.compile(r" in (?P<file>\S+):(?P<line>[0-9]{1,9})$")
_FAILED_PATH = re.compile(r'(?:open|mkdir|stat|fopen|opendir|chown|bind)\(\) (?:to )?"(?P<path>[^"]+)" failed')
_CERT_PATH = re.compile(r'cannot load certificate(?: key)? "(?P<path>[^"]+)"')
_ERROR_RANK = {"emerg": 0, "alert": 1, "crit": 2, "error": 3}
_PERMISSION_HINT = "permission problem, not a config error: nginx -t must run as root (enable sudo for this target)"


class NginxTest(BaseModel):
    """Verdict of `nginx -t`, classified so the operator gets the right next step (fix a typo vs. use sudo)."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    kind: TestKind
    message: str
    file: str | None = None
    line: int | None = None
    path: str | None = None  # the filesystem path nginx failed on (pid file, log, include, cert), if any
    syntax_ok: bool = False  # nginx printed "syntax is ok" (e.g. permission failures happen after parsing)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _LogMsg:
    level: str
    msg: str

    @property
    def text(self) -> str:
        return f"[{self.level}] {self.msg}"


def _log_message(line: str) -> _LogMsg | None:
    match = _LOG_LINE.match(line) or _STDERR_LINE.match(line)
    if match is None:
        return None
    return _LogMsg(match["level"], match["msg"])


def _classify(msg: str) -> TestKind:
    """Order matters: a missing/denied path inside an include is about the box, not about the syntax."""
    lowered = msg.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return "permission"
    if "no such file or directory" in lowered:
        return "missing_file"
    if lowered.startswith("host not found"):
        return "other"
    if _CONF_LOCATION.search(msg):
        return "syntax"
    return "other"


def parse_nginx_test(stderr: str, exit_status: int) -> NginxTest:
    """Classify `nginx -t` output (both stderr formats); the exit status is the final word on success.

    `nginx -t -q` prints nothing on success, so exit 0 without an error line is ok. Never raises: whatever
    text came back (sudo prompts, "command not found") becomes kind "other" with that text as the message.
    """
    lines = [raw.strip() for raw in stderr.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    syntax_ok = any(_SYNTAX_OK.match(line) for line in lines)
    test_ok = any(_TEST_OK.match(line) for line in lines)
    warnings: list[str] = []
    errors: list[_LogMsg] = []
    for line in lines:
        parsed = _log_message(line)
        if parsed is None:
            continue
        if parsed.level == "warn":
            warnings.append(parsed.text)
        elif parsed.level in _ERROR_RANK:
            errors.append(parsed)

    failed = any(_TEST_FAILED.match(line) for line in lines)
    if exit_status == 0 and not failed and (test_ok or not errors):
        # non-fatal alerts (e.g. an unopenable error log when the pid path is fine) do not fail the test
        success = next((line for line in lines if _TEST_OK.match(line)), None)
        message = success.removeprefix("nginx: ") if success else "configuration test is successful"
        notes = tuple(warnings) + tuple(err.text for err in errors)
        return NginxTest(ok=True, kind="ok", message=message, syntax_ok=syntax_ok or test_ok, warnings=notes)

    if not errors:
        other = [line for line in lines if not (_TEST_FAILED.match(line) or _SYNTAX_OK.match(line))]
        text = other[-1] if other else (lines[-1] if lines else "")
        message = text.removeprefix("nginx: ") or f"nginx -t failed with exit status {exit_status} and no output"
        return NginxTest(ok=False, kind="other", message=message, syntax_ok=syntax_ok, warnings=tuple(warnings))

    worst = min(errors, key=lambda err: _ERROR_RANK[err.level])  # min() keeps the first of the worst level
    kind = _classify(worst.msg)
    where = _CONF_LOCATION.search(worst.msg)
    path_match = _FAILED_PATH.search(worst.msg) or _CERT_PATH.search(worst.msg)
    message = worst.text
    if kind == "permission":
        message = f"{message} — {_PERMISSION_HINT}"
    return NginxTest(
        ok=False,
        kind=kind,
        message=message,
        file=where["file"] if where else None,
        line=int(where["line"]) if where else None,
        path=path_match["path"] if path_match else None,
        syntax_ok=syntax_ok,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------------- nginx -T

_DUMP_HEADER_LINE = re.compile(r"^# configuration file (?P<path>[^\n]+):$", re.MULTILINE)


def split_dump(text: str) -> list[tuple[str, str]]:
    """Cut `nginx -T` stdout into (path, content) in dump order.

    nginx writes "# configuration file PATH:" LF, the file's bytes, then one LF of its own; we take that
    LF back off so each content is the file as it is on disk. Lines before the first header (stderr merged
    in with 2>&1, e.g. "syntax is ok") are dropped, and so are nginx's own status/log lines after the last
    file — nothing else could put them there.
    """
    text = text.replace("\r\n", "\n")
    headers = list(_DUMP_HEADER_LINE.finditer(text))
    if not headers:
        raise ParseError("not an nginx -T dump: no '# configuration file PATH:' header found")
    result: list[tuple[str, str]] = []
    for number, header in enumerate(headers):
        last = number + 1 == len(headers)
        chunk = text[header.end() + 1 : len(text) if last else headers[number + 1].start()]
        if last:
            chunk = _drop_trailing_status(chunk)
        result.append((header["path"], chunk.removesuffix("\n")))  # the LF nginx adds after each file
    return result


def _drop_trailing_status(chunk: str) -> str:
    """Cut nginx's own stderr lines (merged in after the dump) off the end of the last file."""
    lines = chunk.split("\n")
    content_end = max(
        (i for i, line in enumerate(lines) if line.strip() and not _is_nginx_status_line(line)), default=-1
    )
    noise = [i for i, line in enumerate(lines) if i > content_end and _is_nginx_status_line(line)]
    return "\n".join(lines[: noise[0]]) if noise else chunk


def _is_nginx_status_line(line: str) -> bool:
    stripped = line.strip()
    return bool(
        _SYNTAX_OK.match(stripped) or _TEST_OK.match(stripped) or _TEST_FAILED.match(stripped) or _log_message(stripped)
    )


# ------------------------------------------------------------------------------------------ the models


class NginxListen(BaseModel):
    """One `listen` of a server; `port` 0 with `unix` set for unix sockets (never matched by port)."""

    model_config = ConfigDict(frozen=True)

    raw: str  # the directive's arguments joined by spaces, "*:80" for the implicit listen
    address: str  # "*" for any, "::" / "127.0.0.1" / a hostname, or "unix:/path"
    port: int
    default_server: bool = False
    ssl: bool = False
    http2: bool = False
    unix: bool = False
    implicit: bool = False  # the server had no listen directive: nginx listens on *:80


class NginxDirective(BaseModel):
    """A rewrite-phase directive kept in config order (return, rewrite, if, break, set, try_files), for routing."""

    model_config = ConfigDict(frozen=True)

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[NginxDirective, ...] | None = None  # the body of an `if`


class NginxLocation(BaseModel):
    """One location with nginx's inheritance (http -> server -> location -> nested) already applied."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    server_index: int  # index into NginxConfig.servers
    parent: int | None  # index into NginxConfig.locations of the enclosing location, for nested ones
    server_names: tuple[str, ...]
    listen: tuple[str, ...]  # raw listen arguments of the server ("80", "[::]:80", "443 ssl http2")
    modifier: str  # "", "=", "~", "~*", "^~" (named locations: "" with a path starting "@")
    path: str
    proxy_pass: str | None
    upstream: tuple[tuple[str, int], ...]
    http_version: str | None
    headers: dict[str, str]
    read_timeout_s: float
    send_timeout_s: float
    buffering: bool
    connection_upgrade_map: bool
    directives: tuple[NginxDirective, ...] = ()  # rewrite-phase directives and try_files, in order
    header_list: tuple[tuple[str, str], ...] = ()  # every effective proxy_set_header, repeats kept
    http_version_set: bool = False  # proxy_http_version is in the config (else nginx's default applies)
    #: A prefix or exact location whose name ends in "/" and that hands requests to an upstream (proxy_pass and
    #: its kin, in the location itself): nginx answers its name without the slash with a 301 to it
    #: (ngx_http_proxy_pass sets clcf->auto_redirect; ngx_http_core_find_static_location returns NGX_DONE).
    auto_redirect: bool = False


#: The directives that set a location's auto_redirect (each module's *_pass handler).
_AUTO_REDIRECT_PASSES = frozenset({"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "memcached_pass",
                                   "grpc_pass"})


class LocationNode(BaseModel):
    """Nesting of locations inside a server, for routing; `index` points into NginxConfig.locations."""

    model_config = ConfigDict(frozen=True)

    index: int
    children: tuple[LocationNode, ...] = ()


class NginxServer(BaseModel):
    """An http `server` block: how requests reach it (listen, server_name) and its location tree."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    server_names: tuple[str, ...]
    listen: tuple[NginxListen, ...]
    locations: tuple[LocationNode, ...]  # top-level locations in config order
    directives: tuple[NginxDirective, ...] = ()  # server-level rewrite-phase directives, in order


class NginxUpstream(BaseModel):
    """An `upstream NAME { server ...; }` block; `servers` skips the ones marked `down`."""

    model_config = ConfigDict(frozen=True)

    name: str
    file: str
    line: int
    servers: tuple[tuple[str, int], ...]


class NginxMap(BaseModel):
    """An http `map SOURCE $VARIABLE { ... }` block (includes spliced in)."""

    model_config = ConfigDict(frozen=True)

    source: str
    variable: str
    default: str
    entries: tuple[tuple[str, str], ...]  # (key, value) in config order, without default/hostnames/volatile
    file: str
    line: int


class NginxConfig(BaseModel):
    """Everything parse_dump extracted from one `nginx -T` dump."""

    model_config = ConfigDict(frozen=True)

    files: tuple[str, ...]
    locations: tuple[NginxLocation, ...]
    servers: tuple[NginxServer, ...]
    upstreams: tuple[NginxUpstream, ...] = ()
    maps: tuple[NginxMap, ...] = ()
    missing_includes: tuple[str, ...] = ()  # "FILE:LINE PATTERN" for explicit includes absent from the dump


# ------------------------------------------------------------------------------ lexing and include splice


@dataclass(frozen=True, slots=True)
class _Stmt:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[_Stmt, ...] | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


_MAX_STATEMENTS = MAX_NGINX_STATEMENTS  # a splice budget: includes of includes can multiply, a real config never does


def _tokens(content: str, path: str) -> list[tuple[str, int, bool]]:
    """crossplane's lexer (quotes removed, escapes kept, brace balance checked) turned into a list.

    Its failure modes on arbitrary text are not documented (the Lua extension raises its own errors), so
    any exception from it becomes a ParseError naming the file.
    """
    import crossplane  # imported here: a slow import the nginx -t path does not need

    try:
        return [(str(tok), int(line), bool(quoted)) for tok, line, quoted in crossplane.lex_string(content, path)]
    except Exception as exc:
        line = getattr(exc, "lineno", None)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        where = f"{path}:{line}" if line is not None else path
        raise ParseError(f"cannot parse {where}: {reason}") from exc


def _build(tokens: list[tuple[str, int, bool]], path: str) -> tuple[_Stmt, ...]:
    """Turn tokens into a statement tree, with nginx's own complaints for what it would have refused."""
    pos = 0

    def block(depth: int) -> tuple[_Stmt, ...]:
        nonlocal pos
        out: list[_Stmt] = []
        while pos < len(tokens):
            tok, line, quoted = tokens[pos]
            pos += 1
            if not quoted and tok.startswith("#"):
                continue
            if not quoted and tok == "}":
                if depth == 0:
                    raise ParseError(f'cannot parse {path}:{line}: unexpected "}}"')
                return tuple(out)
            if not quoted and tok in ("{", ";"):
                raise ParseError(f'cannot parse {path}:{line}: unexpected "{tok}"')
            args: list[str] = []
            while True:
                if pos >= len(tokens):
                    raise ParseError(f'cannot parse {path}:{line}: unexpected end of file, expecting ";" or "}}"')
                arg, arg_line, arg_quoted = tokens[pos]
                pos += 1
                if arg_quoted:
                    args.append(arg)
                elif arg.startswith("#"):
                    continue
                elif arg == ";":
                    out.append(_Stmt(tok, tuple(args), path, line, None))
                    break
                elif arg == "{":
                    inner = block(depth + 1)
                    out.append(_Stmt(tok, tuple(args), path, line, inner))
                    break
                elif arg == "}":
                    raise ParseError(f'cannot parse {path}:{arg_line}: unexpected "}}"')
                else:
                    args.append(arg)
        if depth > 0:
            raise ParseError(f'cannot parse {path}: unexpected end of file, expecting "}}"')
        return tuple(out)

    return block(0)


def _glob_match(pattern: str, path: str) -> bool:
    """glob(3) semantics: `*` stays inside one path component and does not match a leading dot."""
    pat_parts = pattern.split("/")
    path_parts = path.split("/")
    if len(pat_parts) != len(path_parts):
        return False
    for pat, part in zip(pat_parts, path_parts, strict=True):
        if part.startswith(".") and not pat.startswith("."):
            return False
        if not fnmatchcase(part, pat):
            return False
    return True


class _Splicer:
    """Expands `include` against the dump's own file list, the way nginx did when it produced the dump."""

    def __init__(self, files: Sequence[tuple[str, str]]) -> None:
        self.contents: dict[str, str] = {}
        for path, content in files:
            self.contents.setdefault(path, content)
        self.normalized = {posixpath.normpath(path): path for path in self.contents}
        self.main = files[0][0]
        self.prefix = posixpath.dirname(self.main)
        self.parsed: dict[str, tuple[_Stmt, ...]] = {}
        self.missing: list[str] = []
        self.count = 0

    def file(self, path: str) -> tuple[_Stmt, ...]:
        if path not in self.parsed:
            self.parsed[path] = _build(_tokens(self.contents[path], path), path)
        return self.parsed[path]

    def resolve(self, stmt: _Stmt) -> list[str]:
        if len(stmt.args) != 1:
            raise ParseError(f'invalid number of arguments in "include" directive in {stmt.where}')
        pattern = stmt.args[0]
        if not pattern.startswith("/"):
            pattern = posixpath.join(self.prefix, pattern)
        if any(ch in pattern for ch in "*?["):
            # nginx dumps glob results under the pattern's own spelling ("../", "./"); compare normalized
            wanted = posixpath.normpath(pattern)
            return sorted(path for path in self.contents if _glob_match(wanted, posixpath.normpath(path)))
        if pattern in self.contents:
            return [pattern]
        normalized = self.normalized.get(posixpath.normpath(pattern))
        if normalized is not None:
            return [normalized]
        self.missing.append(f"{stmt.where} {stmt.args[0]}")
        return []

    def splice(self, stmts: Iterable[_Stmt], stack: tuple[str, ...]) -> tuple[_Stmt, ...]:
        out: list[_Stmt] = []
        for stmt in stmts:
            self.count += 1
            if self.count > _MAX_STATEMENTS:
                raise TooLarge("configuration", size=self.count, limit=_MAX_STATEMENTS, unit="statements")
            if stmt.name == "include" and stmt.block is None:
                for path in self.resolve(stmt):
                    if path in stack:
                        raise ParseError(f"include cycle: {path} includes itself via {stmt.where}")
                    out.extend(self.splice(self.file(path), (*stack, path)))
            elif stmt.block is not None:
                inner = self.splice(stmt.block, stack)
                out.append(_Stmt(stmt.name, stmt.args, stmt.file, stmt.line, inner))
            else:
                out.append(stmt)
        return tuple(out)


# ------------------------------------------------------------------------------------ directive values

_TIME_PART = re.compile(r"([0-9]{1,18})(ms|w|d|h|m|s)? *")  # nginx refuses values that overflow too
# proxy_*_timeout are msec slots: ngx_parse_time(value, 0) accepts w, d, h, m, s, ms (not y/M), in this order
_TIME_UNITS: dict[str, float] = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("w", "d", "h", "m", "s", "ms")
_DEFAULT_TIMEOUT_S = 60.0


def _parse_time(value: str) -> float | None:
    """nginx's ngx_parse_time for msec slots: "1h30m", "90s", "500ms", "1h30"; a bare number means seconds.

    Units must come in descending order, each at most once, and a bare number only last — as in nginx.
    """
    if not value or not value[0].isdigit():
        return None
    total = 0.0
    rank = -1
    pos = 0
    while pos < len(value):
        match = _TIME_PART.match(value, pos)
        if match is None:
            return None
        unit = match[2]
        if unit is None:
            if match.end() != len(value):
                return None  # a bare number is only allowed last
            total += int(match[1])
        else:
            unit_rank = _UNIT_ORDER.index(unit)
            if unit_rank <= rank:
                return None
            rank = unit_rank
            total += int(match[1]) * _TIME_UNITS[unit]
        pos = match.end()
    return total


@dataclass(frozen=True, slots=True)
class _Level:
    """The proxy settings one level (http, server, location) sets itself; None = inherit."""

    http_version: str | None = None
    headers: tuple[tuple[str, str], ...] | None = None
    read_timeout_s: float | None = None
    send_timeout_s: float | None = None
    buffering: bool | None = None

    def under(self, outer: _Level) -> _Level:
        """nginx's merge: the inner value if set, else the outer one — whole arrays, never merged."""
        return _Level(
            http_version=self.http_version if self.http_version is not None else outer.http_version,
            headers=self.headers if self.headers is not None else outer.headers,
            read_timeout_s=self.read_timeout_s if self.read_timeout_s is not None else outer.read_timeout_s,
            send_timeout_s=self.send_timeout_s if self.send_timeout_s is not None else outer.send_timeout_s,
            buffering=self.buffering if self.buffering is not None else outer.buffering,
        )


def _one_arg(stmt: _Stmt) -> str:
    if len(stmt.args) != 1:
        raise ParseError(f'invalid number of arguments in "{stmt.name}" directive in {stmt.where}')
    return stmt.args[0]


def _time_arg(stmt: _Stmt) -> float:
    value = _parse_time(_one_arg(stmt))
    if value is None:
        raise ParseError(f'invalid time value "{stmt.args[0]}" in "{stmt.name}" directive in {stmt.where}')
    return value


def _level(block: Iterable[_Stmt]) -> _Level:
    """Collect the settings a block sets directly; position inside the block does not matter to nginx."""
    http_version: str | None = None
    headers: list[tuple[str, str]] | None = None
    read: float | None = None
    send: float | None = None
    buffering: bool | None = None
    for stmt in block:
        if stmt.name == "proxy_http_version":
            http_version = _one_arg(stmt)
        elif stmt.name == "proxy_set_header":
            if len(stmt.args) != 2:
                raise ParseError(f'invalid number of arguments in "proxy_set_header" directive in {stmt.where}')
            headers = [] if headers is None else headers
            headers.append((stmt.args[0].lower(), stmt.args[1]))
        elif stmt.name == "proxy_read_timeout":
            read = _time_arg(stmt)
        elif stmt.name == "proxy_send_timeout":
            send = _time_arg(stmt)
        elif stmt.name == "proxy_buffering":
            flag = _one_arg(stmt).lower()
            if flag not in ("on", "off"):
                raise ParseError(f'invalid value "{stmt.args[0]}" in "proxy_buffering" directive in {stmt.where}')
            buffering = flag == "on"
    return _Level(http_version, None if headers is None else tuple(headers), read, send, buffering)


def _port(text: str, stmt: _Stmt) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise ParseError(f'invalid port "{text}" in "{stmt.name}" directive in {stmt.where}')
    return int(text)


def _host_port(authority: str, stmt: _Stmt) -> tuple[str, int | None]:
    """Split "host[:port]" / "[v6][:port]"; the port is None when absent (the caller picks the default)."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ParseError(f'invalid IPv6 address "{authority}" in "{stmt.name}" directive in {stmt.where}')
        host, rest = authority[1:end], authority[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ParseError(f'invalid address "{authority}" in "{stmt.name}" directive in {stmt.where}')
        return host, _port(rest[1:], stmt)
    if authority.count(":") > 1:
        raise ParseError(f'invalid address "{authority}" in "{stmt.name}" directive in {stmt.where}')
    host, sep, port = authority.partition(":")
    if not host:
        raise ParseError(f'no host in "{authority}" in "{stmt.name}" directive in {stmt.where}')
    return host, _port(port, stmt) if sep else None


def _upstream(stmt: _Stmt) -> NginxUpstream:
    if len(stmt.args) != 1:
        raise ParseError(f'invalid number of arguments in "upstream" directive in {stmt.where}')
    servers: list[tuple[str, int]] = []
    for inner in stmt.block or ():
        if inner.name != "server":
            continue
        if not inner.args:
            raise ParseError(f'invalid number of arguments in "server" directive in {inner.where}')
        if "down" in inner.args[1:]:
            continue
        address = inner.args[0]
        if address.lower().startswith("unix:"):
            servers.append((address, 0))
            continue
        host, port = _host_port(address, inner)
        servers.append((host, 80 if port is None else port))  # nginx: upstream servers default to 80
    return NginxUpstream(name=stmt.args[0], file=stmt.file, line=stmt.line, servers=tuple(servers))


def _map(stmt: _Stmt) -> NginxMap:
    if len(stmt.args) != 2:
        raise ParseError(f'invalid number of arguments in "map" directive in {stmt.where}')
    default = ""
    entries: list[tuple[str, str]] = []
    for inner in stmt.block or ():
        if inner.name in ("hostnames", "volatile") and not inner.args:
            continue
        if len(inner.args) != 1:
            raise ParseError(f"invalid number of the map parameters in {inner.where}")
        if inner.name == "default":
            default = inner.args[0]
        else:
            entries.append((inner.name, inner.args[0]))
    return NginxMap(
        source=stmt.args[0],
        variable=stmt.args[1],
        default=default,
        entries=tuple(entries),
        file=stmt.file,
        line=stmt.line,
    )


def _pcre(pattern: str, *, caseless: bool) -> re.Pattern[str] | None:
    """Compile an nginx (PCRE) regex with Python's re; None when re cannot express it."""
    translated = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    translated = re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", translated)
    try:
        return re.compile(translated, re.IGNORECASE if caseless else 0)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


_UPGRADING_SAMPLE = "websocket"  # what a browser sends in `Upgrade:` for a WebSocket


def _map_value(mapping: NginxMap, value: str) -> str:
    """The map's result for one source value: exact strings (caseless), then regexes in order, then default."""
    for key, result in mapping.entries:
        if not key.startswith("~") and key.removeprefix("\\").lower() == value.lower():
            return result
    for key, result in mapping.entries:
        if key.startswith("~"):
            caseless = key.startswith("~*")
            regex = _pcre(key[2:] if caseless else key[1:], caseless=caseless)
            if regex is not None and regex.search(value):
                return result
    return mapping.default


def _is_upgrade_map(variable: str, maps: Sequence[NginxMap]) -> bool:
    """True when `$VAR` is the docs' `map $http_upgrade $VAR` that yields "upgrade" for a WebSocket."""
    name = variable
    if name.startswith("${") and name.endswith("}"):
        name = "$" + name[2:-1]
    if not re.fullmatch(r"\$\w+", name):
        return False
    for mapping in maps:
        if mapping.variable == name and mapping.source.lower() == "$http_upgrade":
            return _map_value(mapping, _UPGRADING_SAMPLE).lower() == "upgrade"
    return False


def _targets(stmt: _Stmt, upstreams: dict[str, NginxUpstream]) -> tuple[tuple[str, int], ...]:
    """Where a proxy_pass sends requests; () when the host or port comes from a variable (runtime only)."""
    raw = stmt.args[0]
    match = re.match(r"(?i)^(https?)://(.*)$", raw)
    if match is None:
        return ()
    scheme, rest = match[1].lower(), match[2]
    if rest.lower().startswith("unix:"):
        socket = rest[5:].split(":", 1)[0]
        return () if "$" in socket or not socket else (("unix:" + socket, 0),)
    authority = re.split(r"[/?$]", rest, maxsplit=1)[0]
    after = rest[len(authority) :]
    if after.startswith("$") and not _URI_VARIABLE.match(after):
        return ()  # the variable may be part of the host or port: only known at request time
    host, port = _host_port(authority, stmt)
    if port is None:
        group = upstreams.get(host.lower())
        if group is not None:
            return group.servers
        port = 443 if scheme == "https" else 80
    return ((host, port),)


# variables whose value starts with "/" or "?", so `http://host:port$request_uri` still has a static target
_URI_VARIABLE = re.compile(r"^\$\{?(request_uri|uri|document_uri|is_args|args|query_string)\b")

_LOCATION_MODIFIERS = ("=", "~", "~*", "^~")


def _location_args(stmt: _Stmt) -> tuple[str, str]:
    """Mirror ngx_http_core_location: "= /x", "=/x", "~ re", "~re", "~* re", "~*re", "^~ /x", "/x", "@n"."""
    if len(stmt.args) == 2:
        if stmt.args[0] not in _LOCATION_MODIFIERS:
            raise ParseError(f'invalid location modifier "{stmt.args[0]}" in {stmt.where}')
        return stmt.args[0], stmt.args[1]
    if len(stmt.args) != 1:
        raise ParseError(f'invalid number of arguments in "location" directive in {stmt.where}')
    name = stmt.args[0]
    if name.startswith("="):
        return "=", name[1:]
    if name.startswith("~*"):
        return "~*", name[2:]
    if name.startswith("~"):
        return "~", name[1:]
    return "", name


def _listen(stmt: _Stmt) -> NginxListen:
    if not stmt.args:
        raise ParseError(f'invalid number of arguments in "listen" directive in {stmt.where}')
    address = stmt.args[0]
    params = set(stmt.args[1:])
    raw = " ".join(stmt.args)
    flags = {
        "default_server": "default_server" in params or "default" in params,
        "ssl": "ssl" in params,
        "http2": "http2" in params,
    }
    if address.lower().startswith("unix:"):
        return NginxListen(raw=raw, address=address, port=0, unix=True, **flags)
    if re.fullmatch(r"[0-9]+", address):
        return NginxListen(raw=raw, address="*", port=_port(address, stmt), **flags)
    host, port = _host_port(address, stmt)
    return NginxListen(raw=raw, address=host, port=80 if port is None else port, **flags)


# ---------------------------------------------------------------------------------------- parse_dump

_ROUTING_DIRECTIVES = frozenset({"return", "rewrite", "if", "break", "set", "try_files"})


def _directives(block: Iterable[_Stmt]) -> tuple[NginxDirective, ...]:
    """The directives that can change where a request goes, kept in order; `if` bodies keep everything."""
    out: list[NginxDirective] = []
    for stmt in block:
        if stmt.name not in _ROUTING_DIRECTIVES:
            continue
        body = None
        if stmt.name == "if" and stmt.block is not None:
            body = tuple(
                NginxDirective(name=s.name, args=s.args, file=s.file, line=s.line) if s.name != "if"
                else _directives((s,))[0]
                for s in stmt.block
            )
        out.append(NginxDirective(name=stmt.name, args=stmt.args, file=stmt.file, line=stmt.line, block=body))
    return tuple(out)



class _Builder:
    """Walks the spliced tree once, producing locations in config order with inheritance applied."""

    def __init__(self, upstreams: dict[str, NginxUpstream], maps: Sequence[NginxMap]) -> None:
        self.upstreams = upstreams
        self.maps = maps
        self.locations: list[NginxLocation] = []
        self.servers: list[NginxServer] = []

    def server(self, stmt: _Stmt, http: _Level) -> None:
        block = stmt.block or ()
        listens = tuple(_listen(inner) for inner in block if inner.name == "listen")
        if not listens:
            listens = (NginxListen(raw="*:80", address="*", port=80, implicit=True),)
        names: list[str] = []
        for inner in block:
            if inner.name == "server_name":
                names.extend(inner.args)
        if not any(inner.name == "server_name" for inner in block):
            names = [""]  # nginx's default server_name is ""
        index = len(self.servers)
        level = _level(block).under(http)
        self.servers.append(NginxServer(file=stmt.file, line=stmt.line, server_names=(), listen=(), locations=()))
        nodes = tuple(
            self.location(inner, level, index, tuple(names), listens, None)
            for inner in block
            if inner.name == "location" and inner.block is not None
        )
        self.servers[index] = NginxServer(
            file=stmt.file, line=stmt.line, server_names=tuple(names), listen=listens, locations=nodes,
            directives=_directives(block),
        )

    def location(
        self,
        stmt: _Stmt,
        outer: _Level,
        server_index: int,
        names: tuple[str, ...],
        listens: tuple[NginxListen, ...],
        parent: int | None,
    ) -> LocationNode:
        block = stmt.block or ()
        modifier, path = _location_args(stmt)
        level = _level(block).under(outer)
        passes = [inner for inner in block if inner.name == "proxy_pass"]
        proxy_pass: str | None = None
        upstream: tuple[tuple[str, int], ...] = ()
        if passes:
            proxy_pass = _one_arg(passes[-1])
            upstream = _targets(passes[-1], self.upstreams)
        headers = dict(level.headers or ())
        connection = headers.get("connection")
        index = len(self.locations)
        self.locations.append(
            NginxLocation(
                file=stmt.file,
                line=stmt.line,
                server_index=server_index,
                parent=parent,
                server_names=names,
                listen=tuple(listen.raw for listen in listens if not listen.implicit),
                modifier=modifier,
                path=path,
                proxy_pass=proxy_pass,
                upstream=upstream,
                http_version=level.http_version or "1.0",
                headers=headers,
                read_timeout_s=_DEFAULT_TIMEOUT_S if level.read_timeout_s is None else level.read_timeout_s,
                send_timeout_s=_DEFAULT_TIMEOUT_S if level.send_timeout_s is None else level.send_timeout_s,
                buffering=True if level.buffering is None else level.buffering,
                connection_upgrade_map=connection is not None and _is_upgrade_map(connection, self.maps),
                directives=_directives(block),
                header_list=tuple((k, v) for k, v in level.headers or () if v != ""),
                http_version_set=level.http_version is not None,
                auto_redirect=modifier in ("", "=", "^~") and path.endswith("/")
                and any(inner.name in _AUTO_REDIRECT_PASSES for inner in block),
            )
        )
        children = tuple(
            self.location(inner, level, server_index, names, listens, index)
            for inner in block
            if inner.name == "location" and inner.block is not None
        )
        return LocationNode(index=index, children=children)


def parse_dump(text: str) -> NginxConfig:
    """Model an `nginx -T` dump: includes resolved against the dump itself, every http location flattened.

    Includes are resolved here rather than by crossplane because the files live on the remote box; the
    dump already holds every file nginx read, so matching include patterns against the dumped paths
    (relative to the main file's directory, globs in sorted order) reproduces what nginx loaded.
    """
    if len(text) > MAX_NGINX_DUMP_BYTES:
        raise TooLarge("configuration", size=len(text), limit=MAX_NGINX_DUMP_BYTES, unit="bytes")
    if (estimate := statements_estimate(text)) > MAX_NGINX_STATEMENTS:
        # Said before lexing: a 5 MB geo list would otherwise cost seconds of CPU and ~350 MB first.
        raise TooLarge("configuration", size=estimate, limit=MAX_NGINX_STATEMENTS, unit="statements")
    files = split_dump(text)
    splicer = _Splicer(files)
    try:
        tree = splicer.splice(splicer.file(splicer.main), (splicer.main,))
        for path in splicer.contents:  # report syntax errors in files no include reached, too
            splicer.file(path)
        http_blocks = [stmt for stmt in tree if stmt.name == "http" and stmt.block is not None]
        http_stmts = [inner for http in http_blocks for inner in http.block or ()]
        upstream_list = [_upstream(s) for s in http_stmts if s.name == "upstream" and s.block is not None]
        upstreams: dict[str, NginxUpstream] = {}
        for group in upstream_list:
            upstreams.setdefault(group.name.lower(), group)
        maps = [_map(s) for s in http_stmts if s.name == "map" and s.block is not None]
        builder = _Builder(upstreams, maps)
        http_level = _level(http_stmts)
        for stmt in http_stmts:
            if stmt.name == "server" and stmt.block is not None:
                builder.server(stmt, http_level)
    except RecursionError as exc:
        raise ParseError("configuration nested too deeply to model") from exc
    return NginxConfig(
        files=tuple(splicer.contents),
        locations=tuple(builder.locations),
        servers=tuple(builder.servers),
        upstreams=tuple(upstream_list),
        maps=tuple(maps),
        missing_includes=tuple(splicer.missing),
    )


# -------------------------------------------------------------------------------------------- routing


def _normalize_host(host: str) -> str:
    """What nginx compares server names with: lowercase, no port, no trailing dot."""
    value = host.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        value = value[: end + 1] if end >= 0 else value
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _server_for(servers: Sequence[NginxServer], host: str) -> NginxServer | None:
    """nginx's order: exact name, longest `*.x`/`.x` wildcard, longest `x.*` wildcard, first regex."""
    name = _normalize_host(host)
    for server in servers:
        for n in server.server_names:
            if not n.startswith(("~", ".")) and "*" not in n and n.lower() == name:
                return server
    for is_match in (_leading_wildcard, _trailing_wildcard):
        best: tuple[int, NginxServer] | None = None
        for server in servers:
            for n in server.server_names:
                if is_match(n.lower(), name) and (best is None or len(n) > best[0]):
                    best = (len(n), server)
        if best is not None:
            return best[1]
    for server in servers:
        for n in server.server_names:
            if n.startswith("~"):
                regex = _pcre(n[1:], caseless=True)
                if regex is not None and regex.search(name):
                    return server
    return None


def _leading_wildcard(pattern: str, name: str) -> bool:
    """`*.example.com` matches sub.example.com; `.example.com` also matches example.com itself."""
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    if pattern.startswith("."):
        return name == pattern[1:] or (name.endswith(pattern) and len(name) > len(pattern))
    return False


def _trailing_wildcard(pattern: str, name: str) -> bool:
    """`example.*` matches example.org, example.co.uk."""
    if pattern.endswith(".*") and not pattern.startswith(("~", "*", ".")):
        return name.startswith(pattern[:-1]) and len(name) > len(pattern) - 1
    return False


@dataclass(frozen=True, slots=True)
class _Found:
    index: int | None
    #: "redirect": nginx answers 301 to the location's own name (auto_redirect), before its rewrite phase.
    rc: Literal["ok", "again", "declined", "redirect"]


def _find_in(config: NginxConfig, nodes: Sequence[LocationNode], uri: str, current: int | None) -> _Found:
    """ngx_http_core_find_location: exact/longest prefix (recursing into it), then this level's regexes."""
    best: LocationNode | None = None
    for node in nodes:
        loc = config.locations[node.index]
        if loc.modifier == "=" and uri == loc.path:
            return _Found(node.index, "ok")
    # The static lookup meets `uri + "/"` only when no static location is named `uri` itself (that one would end
    # it first: exact -> NGX_OK, prefix -> NGX_AGAIN); NGX_DONE then skips the regexes too.
    static = [(node, config.locations[node.index]) for node in nodes
              if config.locations[node.index].modifier in ("", "=", "^~")
              and not config.locations[node.index].path.startswith("@")]
    if not any(loc.path == uri for _, loc in static):
        for node, loc in static:
            if loc.auto_redirect and loc.path == uri + "/":
                return _Found(node.index, "redirect")
    for node in nodes:
        loc = config.locations[node.index]
        if (
            loc.modifier in ("", "^~")
            and not loc.path.startswith("@")
            and uri.startswith(loc.path)
            and (best is None or len(loc.path) > len(config.locations[best.index].path))
        ):
            best = node
    found = _Found(current, "declined")
    noregex = False
    if best is not None:
        noregex = config.locations[best.index].modifier == "^~"
        found = _find_in(config, best.children, uri, best.index)
        if found.rc in ("ok", "redirect"):
            return found
        found = _Found(found.index, "again")
    if not noregex:
        for node in nodes:
            loc = config.locations[node.index]
            if loc.modifier in ("~", "~*"):
                regex = _pcre(loc.path, caseless=loc.modifier == "~*")
                if regex is not None and regex.search(uri):
                    inner = _find_in(config, node.children, uri, node.index)
                    return _Found(inner.index, "ok")
    return found


def _listens_on(server: NginxServer, port: int) -> bool:
    return any(not listen.unix and listen.port == port for listen in server.listen)


def find_location(config: NginxConfig, *, listen_port: int, host: str, path: str) -> NginxLocation | None:
    """The location nginx would use for `http://host:listen_port/path`, or None (no server/location).

    Server: the one listening on the port whose server_name matches, else the port's default_server, else
    the first server on the port. Location: nginx's algorithm, nested locations included.
    """
    on_port = [server for server in config.servers if _listens_on(server, listen_port)]
    if not on_port:
        return None
    server = _server_for(on_port, host)
    if server is None:
        defaults = [s for s in on_port if any(li.default_server and li.port == listen_port for li in s.listen)]
        server = defaults[0] if defaults else on_port[0]
    uri = re.split(r"[?#]", path, maxsplit=1)[0] or "/"
    found = _find_in(config, server.locations, uri, None)
    return None if found.index is None else config.locations[found.index]


def _is_local(host: str) -> bool:
    """Loopback or "any" addresses: where a proxy_pass reaches an app on this same box."""
    lowered = host.lower()
    if lowered in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "*"):
        return True
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def find_proxy_locations(config: NginxConfig, *, app_port: int) -> list[NginxLocation]:
    """Locations (config order) that proxy to this box's `app_port` — the seed's 3003-vs-3000 question."""
    return [loc for loc in config.locations if any(port == app_port and _is_local(host) for host, port in loc.upstream)]
