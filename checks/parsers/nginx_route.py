"""Route one request exactly as nginx does, or say that we cannot.

The check must judge the location nginx really uses for the public URL: a model that falls back to "some
location that proxies to the app" reports `ok` for a site nginx never serves. So every step here mirrors an
nginx source function (server selection by address:port, then server_name; the server rewrite phase; the
location tree; the location rewrite phase; try_files) and anything the config alone cannot decide (an `if`
on a file test, a variable we do not know) ends in `Uncertain` with the reason, never a guess.

Assumption (documented in docs/decisions.md): the path being routed is not a file on disk, so `try_files`
falls through to its last parameter. That holds for a WebSocket endpoint, which the app serves.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from checks.parsers.nginx import (
    LocationNode,
    NginxConfig,
    NginxDirective,
    NginxListen,
    NginxLocation,
    NginxServer,
    _find_in,
    _leading_wildcard,
    _normalize_host,
    _pcre,
    _trailing_wildcard,
)

#: nginx gives up with a 500 after this many URI changes (NGX_HTTP_MAX_URI_CHANGES).
MAX_URI_CHANGES = 10

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class ServerRef:
    file: str
    line: int
    names: tuple[str, ...]
    index: int


@dataclass(frozen=True, slots=True)
class LocationRef:
    file: str
    line: int
    modifier: str
    uri: str
    index: int


@dataclass(frozen=True, slots=True)
class Proxy:
    """nginx proxies the request; `location` carries the effective proxy settings."""

    proxy_pass: str
    upstream: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Return:
    """nginx answers itself: a status, or a redirect with its Location value (as configured)."""

    status: int
    location_header: str | None = None

    @property
    def redirect(self) -> bool:
        return self.status in _REDIRECT_CODES and self.location_header is not None


@dataclass(frozen=True, slots=True)
class Static:
    """No proxy_pass or return: nginx serves files from its root (404 for a path that is not a file)."""


@dataclass(frozen=True, slots=True)
class Uncertain:
    """The config alone cannot tell where nginx sends this request; `reason` is data, `where` file:line."""

    reason: str
    where: str | None = None


Outcome = Proxy | Return | Static | Uncertain


@dataclass(frozen=True, slots=True)
class Route:
    server: ServerRef | None
    location: LocationRef | None
    outcome: Outcome
    uri: str  # the URI after rewrites
    steps: tuple[str, ...] = field(default=())  # "file:line directive" that changed the route, in order


@dataclass(frozen=True, slots=True)
class Request:
    host: str
    port: int
    path: str
    scheme: str = "http"
    address: str | None = None  # the local address the client connects to; None = not known
    upgrade: bool = True  # a WebSocket handshake (Upgrade: websocket, Connection: Upgrade)


# ------------------------------------------------------------------------------------- server choice


def _addr_matches(listen: NginxListen, address: str | None) -> bool | None:
    """Whether a connection to `address` reaches this listen's socket; None when the address is unknown."""
    if listen.address == "*" or listen.address in ("0.0.0.0",):
        return address is None or ":" not in address or None
    if listen.address == "::":
        return None if address is None else ":" in address
    if address is None:
        return None
    try:
        return ipaddress.ip_address(listen.address) == ipaddress.ip_address(address)
    except ValueError:
        return None


def _wildcard(listen: NginxListen) -> bool:
    return listen.address in ("*", "0.0.0.0", "::")


def _candidates(config: NginxConfig, req: Request) -> tuple[list[tuple[NginxServer, NginxListen]], str | None]:
    """Servers of the address:port that accepts the connection (specific address beats the wildcard)."""
    listens = [(s, li) for s in config.servers for li in s.listen if not li.unix and li.port == req.port]
    specific = [(s, li) for s, li in listens if not _wildcard(li)]
    chosen: list[tuple[NginxServer, NginxListen]] = []
    for s, li in specific:
        hit = _addr_matches(li, req.address)
        if hit is None:
            return [], "address_unknown"
        if hit:
            chosen.append((s, li))
    if chosen:
        return chosen, None
    v6 = req.address is not None and ":" in req.address
    wild = [(s, li) for s, li in listens if _wildcard(li) and ((li.address == "::") == v6)]
    return wild, None


def _effective_names(servers: Sequence[NginxServer]) -> list[tuple[NginxServer, list[str]]]:
    """Names nginx keeps per address:port: the first server to claim a name wins, later ones are "ignored".

    `.x` claims both the exact name `x` and `*.x`; when `x` is already taken (by an exact name or another
    `.x`), nginx drops the whole `.x` name ("conflicting server name"), so it matches nothing.
    """
    exact: set[str] = set()
    wild: set[str] = set()
    out: list[tuple[NginxServer, list[str]]] = []
    for server in servers:
        kept: list[str] = []
        for raw in server.server_names:
            n = raw.lower()
            if n.startswith("~"):
                kept.append(raw)
            elif n.startswith("."):
                if n[1:] in exact or "*" + n in wild:
                    continue
                exact.add(n[1:])
                wild.add("*" + n)
                kept.append(n)
            elif "*" in n:
                if n in wild:
                    continue
                wild.add(n)
                kept.append(n)
            else:
                if n in exact:
                    continue
                exact.add(n)
                kept.append(n)
        out.append((server, kept))
    return out


def _by_name(servers: Sequence[NginxServer], name: str) -> NginxServer | None:
    """nginx's order: exact, longest leading wildcard, longest trailing wildcard, first regex (config order)."""
    table = _effective_names(servers)
    for server, names in table:
        for n in names:
            if not n.startswith(("~", ".")) and "*" not in n and n == name:
                return server
    for server, names in table:
        for n in names:
            if n.startswith(".") and n[1:] == name:
                return server
    for is_match in (_leading_wildcard, _trailing_wildcard):
        best: tuple[int, NginxServer] | None = None
        for server, names in table:
            for n in names:
                if is_match(n.lower(), name) and (best is None or len(n) > best[0]):
                    best = (len(n), server)
        if best is not None:
            return best[1]
    for server, names in table:
        for n in names:
            if n.startswith("~"):
                regex = _pcre(n[1:], caseless=False)
                if regex is not None and regex.search(name):
                    return server
    return None


def choose_server(config: NginxConfig, req: Request) -> tuple[NginxServer | None, NginxListen | None, str | None]:
    pairs, problem = _candidates(config, req)
    if problem is not None:
        return None, None, problem
    if not pairs:
        return None, None, "no_listen"
    servers: list[NginxServer] = []
    for s, _ in pairs:
        if s not in servers:
            servers.append(s)
    default = next((s for s, li in pairs if li.default_server), pairs[0][0])
    listen = next(li for s, li in pairs if s is default)
    server = _by_name(servers, _normalize_host(req.host)) or default
    return server, listen, None


# --------------------------------------------------------------------------------- rewrite evaluation


class _Unknown(Exception):
    def __init__(self, reason: str, where: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where


def _variable(name: str, req: Request, uri: str, d: NginxDirective) -> str:
    key = name.strip("{}").lower()
    ws = req.upgrade
    known = {
        "http_upgrade": "websocket" if ws else "",
        "http_connection": "Upgrade" if ws else "",
        "host": _normalize_host(req.host),
        "http_host": req.host,
        "uri": uri,
        "document_uri": uri,
        "request_uri": req.path,
        "scheme": req.scheme,
        "https": "on" if req.scheme == "https" else "",
        "server_port": str(req.port),
        "request_method": "GET",
        "args": "",
        "query_string": "",
        "is_args": "",
    }
    if key not in known:
        raise _Unknown(f"variable ${key} is only known at request time", f"{d.file}:{d.line}")
    return known[key]


def _expand(text: str, req: Request, uri: str, d: NginxDirective, captures: Sequence[str] = ()) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name.isdigit():
            n = int(name)
            return captures[n] if n < len(captures) else ""
        return _variable(name, req, uri, d)

    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", one, text)


def _condition(d: NginxDirective, req: Request, uri: str) -> bool:
    args = list(d.args)
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:]
        args[-1] = args[-1][:-1]
    args = [a for a in args if a != ""]
    where = f"{d.file}:{d.line}"
    if not args:
        raise _Unknown("if condition not understood", where)
    if args[0].startswith(("-", "!-")):
        raise _Unknown(f"if ({' '.join(args)}) tests the file system", where)
    if not args[0].startswith("$"):
        raise _Unknown("if condition not understood", where)
    value = _expand(args[0], req, uri, d)
    if len(args) == 1:
        return value not in ("", "0")
    if len(args) != 2 + 0 and len(args) != 3:
        raise _Unknown("if condition not understood", where)
    op, operand = args[1], _expand(args[2], req, uri, d) if len(args) == 3 else ""
    if op == "=":
        return value == operand
    if op == "!=":
        return value != operand
    if op in ("~", "~*", "!~", "!~*"):
        regex = _pcre(args[2], caseless=op.endswith("*"))
        if regex is None:
            raise _Unknown("regex not supported", where)
        hit = regex.search(value) is not None
        return hit if not op.startswith("!") else not hit
    raise _Unknown(f"if operator {op} not understood", where)


@dataclass(slots=True)
class _State:
    uri: str
    steps: list[str]
    changes: int = 0


@dataclass(frozen=True, slots=True)
class _Stop:
    """What a rewrite phase ended with: an answer, a URI change (re-search), or `break` (stay)."""

    kind: str  # "return", "research", "break", "continue"
    answer: Return | None = None


def _return(d: NginxDirective, req: Request, uri: str) -> Return:
    args = d.args
    if len(args) == 1 and not args[0].isdigit():
        return Return(302, _expand(args[0], req, uri, d))
    status = int(args[0])
    text = _expand(args[1], req, uri, d) if len(args) > 1 else None
    if status in _REDIRECT_CODES:
        return Return(status, text)
    return Return(status)


def _rewrite(d: NginxDirective, req: Request, state: _State) -> _Stop | None:
    pattern, replacement = d.args[0], d.args[1]
    flag = d.args[2] if len(d.args) > 2 else None
    regex = _pcre(pattern, caseless=False)
    where = f"{d.file}:{d.line}"
    if regex is None:
        raise _Unknown("rewrite regex not supported", where)
    match = regex.search(state.uri)
    if match is None:
        return None
    captures = [match.group(0), *[g or "" for g in match.groups()]]
    target = _expand(replacement, req, state.uri, d, captures)
    state.steps.append(f"{where} rewrite")
    if flag in ("redirect", "permanent") or target.startswith(("http://", "https://", "$scheme")):
        return _Stop("return", Return(301 if flag == "permanent" else 302, target))
    target = target.split("?", 1)[0]
    state.uri = target
    if flag == "last":
        return _Stop("research")
    if flag == "break":
        return _Stop("break")
    return _Stop("continue")


def _run(directives: Sequence[NginxDirective], req: Request, state: _State) -> _Stop:
    """ngx_http_rewrite_handler: run in order; returns how the phase ended ("continue" = fell off the end)."""
    changed = False
    for d in directives:
        if d.name == "return":
            state.steps.append(f"{d.file}:{d.line} return")
            return _Stop("return", _return(d, req, state.uri))
        if d.name == "break":
            return _Stop("research" if changed else "break")
        if d.name == "rewrite":
            stop = _rewrite(d, req, state)
            if stop is None:
                continue
            if stop.kind == "continue":
                changed = True
                continue
            return stop
        if d.name == "if" and _condition(d, req, state.uri):
            body = d.block or ()
            if any(b.name not in ("return", "rewrite", "break", "set", "if") for b in body):
                raise _Unknown("if block changes the location's configuration", f"{d.file}:{d.line}")
            stop = _run(body, req, state)
            if stop.kind == "continue":
                continue
            return stop
        # `set` only matters to variables we already refuse to guess; try_files runs later
    return _Stop("research" if changed else "continue")


# ------------------------------------------------------------------------------------------- routing


def _find(config: NginxConfig, nodes: Sequence[LocationNode], uri: str) -> tuple[NginxLocation | None, bool]:
    """The location for `uri`, and whether nginx answers it with its auto-redirect (a 301 to the location's name)."""
    found = _find_in(config, nodes, uri, None)
    return (None if found.index is None else config.locations[found.index]), found.rc == "redirect"


def _auto_redirect(config: NginxConfig, sref: ServerRef, loc: NginxLocation, req: Request, state: _State) -> Route:
    """ngx_http_core_find_config_phase on NGX_DONE: 301 to the location's name, the request's arguments kept; the
    location's own rewrite phase never runs."""
    query = req.path.partition("?")[2].partition("#")[0]
    state.steps.append(f"{loc.file}:{loc.line} location {loc.path} (auto-redirect)")
    return Route(sref, _loc_ref(config, loc), Return(301, loc.path + (f"?{query}" if query else "")), state.uri,
                 tuple(state.steps))


def _named(config: NginxConfig, server: NginxServer, name: str) -> NginxLocation | None:
    for node in server.locations:
        loc = config.locations[node.index]
        if loc.path == name:
            return loc
    return None


def _server_ref(config: NginxConfig, server: NginxServer) -> ServerRef:
    return ServerRef(server.file, server.line, server.server_names, config.servers.index(server))


def _loc_ref(config: NginxConfig, loc: NginxLocation) -> LocationRef:
    return LocationRef(loc.file, loc.line, loc.modifier, loc.path, config.locations.index(loc))


def route(config: NginxConfig, req: Request) -> Route:
    """Where nginx sends `req`: the server, the location, and what it does there."""
    server, listen, problem = choose_server(config, req)
    path = re.split(r"[?#]", req.path, maxsplit=1)[0] or "/"
    if server is None or listen is None:
        return Route(None, None, Uncertain(problem or "no_listen"), path)
    sref = _server_ref(config, server)
    state = _State(uri=path, steps=[])
    if req.scheme == "https" and not listen.ssl:
        return Route(sref, None, Uncertain("not_ssl", f"{server.file}:{server.line}"), path)
    if req.scheme == "http" and listen.ssl:
        return Route(sref, None, Return(400), path)  # "The plain HTTP request was sent to HTTPS port"
    try:
        stop = _run(server.directives, req, state)
        if stop.kind == "return":
            assert stop.answer is not None
            return Route(sref, None, stop.answer, state.uri, tuple(state.steps))
        loc, redirect = _find(config, server.locations, state.uri)
        while True:
            if state.changes > MAX_URI_CHANGES:  # "rewrite or internal redirection cycle"
                where = None if loc is None else _loc_ref(config, loc)
                return Route(sref, where, Return(500), state.uri, tuple(state.steps))
            if loc is None:
                return Route(sref, None, Static(), state.uri, tuple(state.steps))
            if redirect:
                return _auto_redirect(config, sref, loc, req, state)
            stop = _run(loc.directives, req, state)
            if stop.kind == "return":
                assert stop.answer is not None
                return Route(sref, _loc_ref(config, loc), stop.answer, state.uri, tuple(state.steps))
            if stop.kind == "research":
                state.changes += 1
                if state.changes > MAX_URI_CHANGES:
                    return Route(sref, _loc_ref(config, loc), Return(500), state.uri, tuple(state.steps))
                loc, redirect = _find(config, server.locations, state.uri)
                continue
            try_files = [d for d in loc.directives if d.name == "try_files"]
            if try_files:
                last = try_files[-1]
                fallback = last.args[-1]
                state.steps.append(f"{last.file}:{last.line} try_files")
                if fallback.startswith("="):
                    return Route(sref, _loc_ref(config, loc), Return(int(fallback[1:])), state.uri,
                                 tuple(state.steps))
                if fallback.startswith("@"):
                    named = _named(config, server, fallback)
                    if named is None:
                        return Route(sref, _loc_ref(config, loc), Return(500), state.uri, tuple(state.steps))
                    state.changes += 1  # ngx_http_named_location counts as a URI change too
                    if state.changes > MAX_URI_CHANGES:  # fails while still in the try_files location
                        return Route(sref, _loc_ref(config, loc), Return(500), state.uri, tuple(state.steps))
                    loc = named
                    stop = _run(loc.directives, req, state)
                    if stop.kind == "return":
                        assert stop.answer is not None
                        return Route(sref, _loc_ref(config, loc), stop.answer, state.uri, tuple(state.steps))
                    if stop.kind == "research":
                        state.changes += 1
                        if state.changes > MAX_URI_CHANGES:  # post_rewrite fails while still in the named one
                            return Route(sref, _loc_ref(config, loc), Return(500), state.uri, tuple(state.steps))
                        loc, redirect = _find(config, server.locations, state.uri)
                        continue
                    return _content(config, sref, loc, state)
                state.uri = _expand(fallback, req, state.uri, last).split("?", 1)[0]
                state.changes += 1
                if state.changes > MAX_URI_CHANGES:
                    return Route(sref, _loc_ref(config, loc), Return(500), state.uri, tuple(state.steps))
                stop = _run(server.directives, req, state)  # an internal redirect re-runs the server phase
                if stop.kind == "return":
                    assert stop.answer is not None
                    return Route(sref, None, stop.answer, state.uri, tuple(state.steps))
                loc, redirect = _find(config, server.locations, state.uri)
                continue
            return _content(config, sref, loc, state)
    except _Unknown as unknown:
        return Route(sref, None, Uncertain(unknown.reason, unknown.where), state.uri, tuple(state.steps))


def upstream_path(loc: NginxLocation, found: Route) -> str | None:
    """The path the upstream receives for a route that ends in `loc`'s proxy_pass (ngx_http_proxy_create_request),
    or None when the model cannot tell: variables in proxy_pass, a unix socket, a URI changed by `rewrite`.

    Without a URI part the request's URI goes as it is; with one (`proxy_pass http://127.0.0.1:3000/;`) the part
    that matched the location is replaced by it, so `location /ws` sends `/ws` to the app as `/` (A12 in
    shared/research/failure-modes.md)."""
    if not isinstance(found.outcome, Proxy) or not loc.proxy_pass or "$" in loc.proxy_pass:
        return None
    if any(step.endswith(" rewrite") for step in found.steps):
        return None
    parts = split_proxy_pass(loc.proxy_pass)
    if parts is None:
        return None
    uri = parts[1]
    if uri is None:
        return found.uri
    if loc.modifier not in ("", "=", "^~") or loc.path.startswith("@") or not found.uri.startswith(loc.path):
        return None  # nginx refuses a URI part in regex and named locations (`nginx -t`)
    return uri + found.uri[len(loc.path):]


def split_proxy_pass(proxy_pass: str) -> tuple[str, str | None] | None:
    """`scheme://host[:port]` and the URI part of a proxy_pass (None: it has none); None for a unix socket or a
    value without a scheme, which the model does not take apart."""
    scheme, sep, rest = proxy_pass.partition("://")
    if not sep or rest.startswith("unix:"):
        return None
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", (slash + path) if slash else None


def _content(config: NginxConfig, sref: ServerRef, loc: NginxLocation, state: _State) -> Route:
    outcome: Outcome = Proxy(loc.proxy_pass, loc.upstream) if loc.proxy_pass else Static()
    return Route(sref, _loc_ref(config, loc), outcome, state.uri, tuple(state.steps))
