"""checks.parsers.nginx against real nginx 1.22 output (tests/fixtures/captured/nginx/, see capture.sh there)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.parsers import ParseError
from checks.parsers.nginx import (
    NginxConfig,
    NginxLocation,
    find_location,
    find_proxy_locations,
    parse_dump,
    parse_nginx_test,
    split_dump,
)
from tests.support.examples import examples

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "captured" / "nginx"
SITE = "/etc/nginx/sites-enabled/kathario-saas"


def captured_test(name: str) -> tuple[str, int]:
    return (CAPTURED / f"{name}.stderr").read_text(), int((CAPTURED / f"{name}.rc").read_text())


def captured_dump(name: str) -> str:
    return (CAPTURED / f"{name}.stdout").read_text()


def dump(*files: tuple[str, str]) -> str:
    """Build text in nginx -T's format: header, file bytes, one LF."""
    return "".join(f"# configuration file {path}:\n{content}\n" for path, content in files)


def one_site(site: str, http_extra: str = "") -> NginxConfig:
    main = f"events {{}}\nhttp {{\n{http_extra}\ninclude /etc/nginx/sites-enabled/*;\n}}\n"
    return parse_dump(dump(("/etc/nginx/nginx.conf", main), ("/etc/nginx/sites-enabled/site", site)))


def loc(config: NginxConfig, path: str, *, port: int = 80, host: str = "example.com") -> NginxLocation:
    found = find_location(config, listen_port=port, host=host, path=path)
    assert found is not None, f"no location for {host}:{port}{path}"
    return found


# ------------------------------------------------------------------------------------------ nginx -t


@pytest.mark.parametrize("name", ["nginx_t_ok", "nginx_t_ok_stderr_log"])
def test_success(name: str) -> None:
    result = parse_nginx_test(*captured_test(name))
    assert result.ok and result.kind == "ok" and result.syntax_ok
    assert result.message == "configuration file /etc/nginx/nginx.conf test is successful"
    assert result.warnings == ()
    assert result.file is None and result.line is None


def test_success_keeps_warnings() -> None:
    result = parse_nginx_test(*captured_test("nginx_t_warn_conflicting_server_name"))
    assert result.ok and result.kind == "ok"
    assert result.warnings == ('[warn] conflicting server name "91.99.75.135" on 0.0.0.0:80, ignored',)


def test_quiet_success_prints_nothing() -> None:
    assert parse_nginx_test("", 0).ok  # nginx -t -q


def test_non_fatal_alert_with_success_is_ok() -> None:
    stderr = (
        'nginx: [alert] could not open error log file: open() "/var/log/nginx/error.log" failed '
        "(13: Permission denied)\n"
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
        "nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
    )
    result = parse_nginx_test(stderr, 0)
    assert result.ok and result.kind == "ok" and result.warnings[0].startswith("[alert] could not open error log")


@pytest.mark.parametrize("name", ["nginx_t_unknown_directive", "nginx_t_unknown_directive_stderr_log"])
def test_unknown_directive_both_formats(name: str) -> None:
    result = parse_nginx_test(*captured_test(name))
    assert not result.ok and result.kind == "syntax" and not result.syntax_ok
    assert result.message == f'[emerg] unknown directive "proxy_pas" in {SITE}:10'
    assert (result.file, result.line) == (SITE, 10)


@pytest.mark.parametrize(
    ("name", "directive", "line"),
    [
        ("nginx_t_missing_semicolon", "proxy_http_version", 14),
        ("nginx_t_missing_semicolon_stderr_log", "proxy_http_version", 14),
        ("nginx_t_missing_semicolon_before_brace", "proxy_read_timeout", 31),
    ],
)
def test_missing_semicolon(name: str, directive: str, line: int) -> None:
    result = parse_nginx_test(*captured_test(name))
    assert result.kind == "syntax" and not result.ok
    assert result.message == f'[emerg] invalid number of arguments in "{directive}" directive in {SITE}:{line}'
    assert (result.file, result.line) == (SITE, line)


def test_unexpected_eof() -> None:
    result = parse_nginx_test(*captured_test("nginx_t_unexpected_eof"))
    assert result.kind == "syntax" and (result.file, result.line) == (SITE, 33)


def test_missing_include() -> None:
    result = parse_nginx_test(*captured_test("nginx_t_missing_include"))
    assert result.kind == "missing_file" and not result.ok
    assert result.path == "/etc/nginx/snippets/websocket.conf"
    assert (result.file, result.line) == (SITE, 9)
    assert result.message.startswith('[emerg] open() "/etc/nginx/snippets/websocket.conf" failed (2: No such')


def test_host_not_found_is_other() -> None:
    result = parse_nginx_test(*captured_test("nginx_t_host_not_found"))
    assert result.kind == "other" and (result.file, result.line) == (SITE, 10)
    assert "kathario-app" in result.message


@pytest.mark.parametrize(
    ("name", "path", "syntax_ok"),
    [
        ("nginx_t_perm_pid", "/run/nginx.pid", True),
        ("nginx_t_perm_system", "/run/nginx.pid", True),
        ("nginx_t_perm_error_log", "/var/log/nginx/error.log", True),
        ("nginx_t_perm_temp_path", None, True),
        ("nginx_t_perm_cert_key", "/etc/nginx/ssl/kathario.key", False),
    ],
)
def test_permission_is_not_a_syntax_error(name: str, path: str | None, syntax_ok: bool) -> None:
    result = parse_nginx_test(*captured_test(name))
    assert not result.ok and result.kind == "permission"
    assert result.syntax_ok is syntax_ok
    assert "Permission denied" in result.message
    assert "not a config error" in result.message and "sudo" in result.message
    if path is not None:
        assert result.path == path
    else:
        assert result.path is not None and result.path.endswith("/rootonly/proxy")
    assert result.message.startswith("[emerg] ")
    assert any('"user" directive' in warning for warning in result.warnings)


def test_permission_on_a_build_whose_log_is_a_file() -> None:
    # Ubuntu's nginx-core logs to /var/log/nginx/error.log by default, so a non-root `nginx -t` first gets an
    # [alert] for the log, then the fatal [emerg]; the [emerg] is the line that matters.
    stderr = (
        'nginx: [alert] could not open error log file: open() "/var/log/nginx/error.log" failed '
        "(13: Permission denied)\n"
        '2025/09/05 10:00:00 [warn] 4242#4242: the "user" directive makes sense only if the master process '
        "runs with super-user privileges, ignored in /etc/nginx/nginx.conf:1\n"
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
        '2025/09/05 10:00:00 [emerg] 4242#4242: open() "/run/nginx.pid" failed (13: Permission denied)\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )
    result = parse_nginx_test(stderr, 1)
    assert result.kind == "permission" and result.path == "/run/nginx.pid" and result.syntax_ok


@pytest.mark.parametrize(
    ("stderr", "status", "message"),
    [
        ("sudo: a password is required\r\n", 1, "sudo: a password is required"),
        ("bash: line 1: nginx: command not found\n", 127, "bash: line 1: nginx: command not found"),
        ("", 1, "nginx -t failed with exit status 1 and no output"),
    ],
)
def test_no_nginx_verdict_is_other(stderr: str, status: int, message: str) -> None:
    result = parse_nginx_test(stderr, status)
    assert (result.ok, result.kind, result.message) == (False, "other", message)


def test_absurd_line_number_does_not_crash() -> None:
    result = parse_nginx_test(f'nginx: [emerg] unknown directive "x" in /a:{"9" * 5000}', 1)
    assert result.kind == "other" and result.line is None


def test_exit_status_wins_over_text() -> None:
    stderr, _ = captured_test("nginx_t_ok")
    assert not parse_nginx_test(stderr, 1).ok


# -------------------------------------------------------------------------------------------- split_dump


KATHARIO_FILES = [
    "/etc/nginx/nginx.conf",
    "/etc/nginx/mime.types",
    "/etc/nginx/conf.d/websocket-map.conf",
    "/etc/nginx/sites-enabled/chat",
    "/etc/nginx/snippets/proxy-headers.conf",
    "/etc/nginx/sites-enabled/kathario-saas",
]


def test_split_dump_real() -> None:
    files = split_dump(captured_dump("nginx_T_kathario"))
    assert [path for path, _ in files] == KATHARIO_FILES
    contents = dict(files)
    assert contents["/etc/nginx/conf.d/websocket-map.conf"].endswith("''      close;\n}\n")
    site = contents["/etc/nginx/sites-enabled/kathario-saas"]
    assert site.startswith("# /etc/nginx/sites-available/kathario-saas\nserver {\n")
    assert site.endswith("        proxy_send_timeout 86400;\n    }\n}\n")
    assert "proxy_set_header Connection 'upgrade';" in site


def test_split_dump_with_stderr_merged() -> None:
    merged = split_dump(captured_dump("nginx_T_kathario_merged"))
    assert merged == split_dump(captured_dump("nginx_T_kathario"))


def test_split_dump_drops_trailing_nginx_lines() -> None:
    text = dump(("/etc/nginx/nginx.conf", "events {}\n"))
    noisy = text + "nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
    assert split_dump(noisy) == [("/etc/nginx/nginx.conf", "events {}")]
    assert split_dump(text) == [("/etc/nginx/nginx.conf", "events {}\n")]


@pytest.mark.parametrize("text", ["", "events {}\n", 'nginx: [emerg] unknown directive "x" in /a:1\n'])
def test_split_dump_needs_a_header(text: str) -> None:
    with pytest.raises(ParseError):
        split_dump(text)


# ---------------------------------------------------------------------------------- parse_dump: the seed


@pytest.fixture(scope="module")
def kathario() -> NginxConfig:
    return parse_dump(captured_dump("nginx_T_kathario"))


@pytest.fixture(scope="module")
def routing() -> NginxConfig:
    return parse_dump(captured_dump("nginx_T_routing"))


def test_seed_site(kathario: NginxConfig) -> None:
    site = loc(kathario, "/", host="91.99.75.135")
    assert (site.file, site.line, site.modifier, site.path) == (SITE, 9, "", "/")
    assert site.server_names == ("91.99.75.135",) and site.listen == ("80", "[::]:80")
    assert site.proxy_pass == "http://127.0.0.1:3003"
    assert site.upstream == (("127.0.0.1", 3003),)
    assert site.http_version == "1.1"
    assert site.headers["upgrade"] == "$http_upgrade"
    assert site.headers["connection"] == "upgrade"
    assert site.headers["x-forwarded-port"] == "$server_port" and len(site.headers) == 8
    assert site.read_timeout_s == 86400 and site.send_timeout_s == 86400
    assert site.buffering is False
    assert site.connection_upgrade_map is False  # a literal 'upgrade', not the map
    assert kathario.files == tuple(KATHARIO_FILES) and kathario.missing_includes == ()


def test_seed_site_any_host_falls_back_to_first_server_on_port(kathario: NginxConfig) -> None:
    assert loc(kathario, "/_next/webpack-hmr", host="kathario.example").line == 9


def test_upgrade_map_and_upstream_block(kathario: NginxConfig) -> None:
    socket = loc(kathario, "/socket/io", port=8080, host="chat.kathario.example")
    assert socket.path == "/socket" and socket.file == "/etc/nginx/sites-enabled/chat"
    assert socket.headers == {"upgrade": "$http_upgrade", "connection": "$connection_upgrade", "host": "$host"}
    assert socket.connection_upgrade_map is True
    assert socket.upstream == (("127.0.0.1", 3003), ("localhost", 3004))
    assert socket.http_version == "1.1"  # inherited from the server
    assert socket.read_timeout_s == 3600  # "1h", inherited from the server
    assert socket.send_timeout_s == 90 and socket.buffering is False
    (mapping,) = kathario.maps
    assert (mapping.source, mapping.variable, mapping.default) == ("$http_upgrade", "$connection_upgrade", "upgrade")
    assert mapping.entries == (("", "close"),)
    (group,) = kathario.upstreams
    assert group.name == "kathario_chat" and group.servers == (("127.0.0.1", 3003), ("localhost", 3004))


def test_relative_include_splices_headers(kathario: NginxConfig) -> None:
    root = loc(kathario, "/", port=8080, host="chat.kathario.example")
    assert root.headers == {
        "host": "$host",
        "x-real-ip": "$remote_addr",
        "x-forwarded-for": "$proxy_add_x_forwarded_for",
        "x-forwarded-proto": "$scheme",
    }
    assert root.connection_upgrade_map is False and root.buffering is True


def test_find_proxy_locations(kathario: NginxConfig, routing: NginxConfig) -> None:
    assert [(x.file.rsplit("/", 1)[1], x.path) for x in find_proxy_locations(kathario, app_port=3003)] == [
        ("chat", "/"),
        ("chat", "/socket"),
        ("kathario-saas", "/"),
    ]
    assert [x.path for x in find_proxy_locations(kathario, app_port=3004)] == ["/", "/socket"]  # via localhost
    assert find_proxy_locations(kathario, app_port=3000) == []
    on_3003 = find_proxy_locations(routing, app_port=3003)
    assert [(x.modifier, x.path) for x in on_3003] == [
        ("=", "/"),
        ("", "/"),
        ("", "/ws"),
        ("^~", "/static/"),
        ("", "/"),
    ]
    assert on_3003[-1].upstream == (("0.0.0.0", 3003),)
    assert [x.upstream for x in find_proxy_locations(routing, app_port=3005)] == [(("::1", 3005),)]


# ------------------------------------------------------------------------------ parse_dump: inheritance


def test_inner_proxy_set_header_replaces_outer_ones(routing: NginxConfig) -> None:
    root = loc(routing, "/index.html", host="app.kathario.example")
    assert (root.modifier, root.path) == ("", "/")
    assert root.headers == {"host": "$host"}  # the server's Upgrade/Connection are gone: nginx's real rule
    ws = loc(routing, "/ws", host="app.kathario.example")
    assert ws.headers == {"upgrade": "$http_upgrade", "connection": "upgrade"}  # inherited whole
    assert root.http_version == ws.http_version == "1.1"


def test_nested_location_inherits_from_its_parent() -> None:
    config = one_site(
        """server {
            listen 80;
            proxy_read_timeout 2m;
            location /app/ {
                proxy_send_timeout 5s;
                proxy_set_header Upgrade $http_upgrade;
                location /app/ws { proxy_pass http://127.0.0.1:3003; proxy_buffering off; }
            }
        }""",
        http_extra="proxy_http_version 1.1; proxy_set_header X-From-Http 1;",
    )
    nested = loc(config, "/app/ws/chat")
    assert nested.path == "/app/ws" and nested.parent is not None
    assert config.locations[nested.parent].path == "/app/"
    assert (nested.read_timeout_s, nested.send_timeout_s, nested.buffering) == (120, 5, False)
    assert nested.headers == {"upgrade": "$http_upgrade"} and nested.http_version == "1.1"
    assert (
        find_location(config, listen_port=80, host="", path="/other") is None
    )  # no location matches: nginx would serve from the server level


def test_http_level_defaults() -> None:
    config = one_site("server { location / { proxy_pass http://backend.internal; } }")
    root = loc(config, "/")
    assert root.http_version == "1.0" and root.headers == {}
    assert (root.read_timeout_s, root.send_timeout_s, root.buffering) == (60, 60, True)
    assert root.upstream == (("backend.internal", 80),) and root.listen == ()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600),
        ("90s", 90),
        ("86400", 86400),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("1d", 86400),
        ("1h30", 3630),
        ("1w", 604800),
        ("1s500ms", 1.5),
    ],
)
def test_time_units(value: str, seconds: float) -> None:
    config = one_site(f"server {{ location / {{ proxy_read_timeout {value}; proxy_send_timeout {value}; }} }}")
    assert loc(config, "/").read_timeout_s == pytest.approx(seconds)
    assert loc(config, "/").send_timeout_s == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["1x", "s", "30s1m", "1ms5s", "-1", "1y", "1M", "1H", "1h1h", "²", "9" * 5000])
def test_bad_time_is_a_parse_error(value: str) -> None:
    with pytest.raises(ParseError, match=r"sites-enabled/site:1"):
        one_site(f"server {{ location / {{ proxy_read_timeout {value}; }} }}")


# -------------------------------------------------------------------------------- parse_dump: upstreams


@pytest.mark.parametrize(
    ("proxy_pass", "upstream"),
    [
        ("http://127.0.0.1:3003/app/", (("127.0.0.1", 3003),)),
        ("http://localhost", (("localhost", 80),)),
        ("https://localhost", (("localhost", 443),)),
        ("http://[::1]:3003", (("::1", 3003),)),
        ("http://unix:/run/app.sock:/ws", (("unix:/run/app.sock", 0),)),
        ("http://127.0.0.1:3003$request_uri", (("127.0.0.1", 3003),)),
        ("http://$backend", ()),
        ("http://127.0.0.1:30$port", ()),
        ("http://127.0.0.1:3003${uri}$is_args$args", (("127.0.0.1", 3003),)),
        ("http://app_pool", (("127.0.0.1", 3003), ("10.0.0.2", 80), ("unix:/run/a.sock", 0))),
        ("http://APP_POOL/x", (("127.0.0.1", 3003), ("10.0.0.2", 80), ("unix:/run/a.sock", 0))),
    ],
)
def test_upstream_resolution(proxy_pass: str, upstream: tuple[tuple[str, int], ...]) -> None:
    pool = """upstream app_pool {
        zone app 64k;
        server 127.0.0.1:3003 weight=5;
        server 10.0.0.2;
        server 10.0.0.3:3003 down;
        server unix:/run/a.sock backup;
        keepalive 4;
    }"""
    config = one_site(f"server {{ location / {{ proxy_pass {proxy_pass}; }} }}", http_extra=pool)
    assert loc(config, "/").upstream == upstream
    assert loc(config, "/").proxy_pass == proxy_pass


def test_upgrade_map_variants() -> None:
    maps = """
        map $http_upgrade $connection_upgrade { default upgrade; '' close; }
        map $http_upgrade $conn_regex { default close; ~*^websocket$ Upgrade; }
        map $http_upgrade $conn_wrong { default close; '' upgrade; }
        map $http_host $not_upgrade { default upgrade; }
    """
    site = """server {
        location /a { proxy_set_header Connection $connection_upgrade; }
        location /b { proxy_set_header Connection ${conn_regex}; }
        location /c { proxy_set_header Connection $conn_wrong; }
        location /d { proxy_set_header Connection $not_upgrade; }
        location /e { proxy_set_header Connection $undefined; }
    }"""
    config = one_site(site, http_extra=maps)
    assert [loc(config, p).connection_upgrade_map for p in ("/a", "/b", "/c", "/d", "/e")] == [
        True,
        True,
        False,
        False,
        False,
    ]


# ---------------------------------------------------------------------------------- parse_dump: includes


def test_glob_include_order_components_and_missing() -> None:
    main = """events {}
    http {
        include conf.d/*.conf;
        include /etc/nginx/sites-enabled/*;
        include snippets/absent.conf;
    }"""
    text = dump(
        ("/etc/nginx/nginx.conf", main),
        ("/etc/nginx/sites-enabled/b", "server { server_name b; location / { proxy_pass http://127.0.0.1:2; } }"),
        ("/etc/nginx/sites-enabled/a", "server { server_name a; location / { proxy_pass http://127.0.0.1:1; } }"),
        ("/etc/nginx/sites-enabled/.hidden", "server { server_name hidden; }"),
        ("/etc/nginx/sites-enabled/sub/c", "server { server_name c; }"),
        ("/etc/nginx/conf.d/up.conf", "upstream x { server 127.0.0.1:9; }"),
    )
    config = parse_dump(text)
    assert [s.server_names for s in config.servers] == [("a",), ("b",)]  # sorted like glob(3), one level deep
    assert [u.name for u in config.upstreams] == ["x"]
    assert config.missing_includes == ("/etc/nginx/nginx.conf:5 snippets/absent.conf",)
    # with no default_server, the first server on the port in config order is the fallback
    assert loc(config, "/", host="zzz").upstream == (("127.0.0.1", 1),)


def test_dot_segments_in_include_paths() -> None:
    # nginx 1.22 dumps an included file under the spelling of its include ("/etc/nginx/./conf.d/a.conf")
    main = "events {}\nhttp {\n include ./conf.d/*.conf;\n include ../nginx/extra/x.conf;\n}\n"
    text = dump(
        ("/etc/nginx/nginx.conf", main),
        ("/etc/nginx/./conf.d/a.conf", "server { listen 8123; location / { proxy_pass http://127.0.0.1:3003; } }"),
        ("/etc/nginx/../nginx/extra/x.conf", "map $http_upgrade $u { default upgrade; }"),
    )
    config = parse_dump(text)
    assert [x.file for x in config.locations] == ["/etc/nginx/./conf.d/a.conf"]
    assert [m.variable for m in config.maps] == ["$u"] and config.missing_includes == ()


def test_include_cycle_is_a_parse_error() -> None:
    text = dump(
        ("/etc/nginx/nginx.conf", "http { include a.conf; }"),
        ("/etc/nginx/a.conf", "include b.conf;"),
        ("/etc/nginx/b.conf", "include a.conf;"),
    )
    with pytest.raises(ParseError, match="include cycle"):
        parse_dump(text)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("http { server { listen 80; }", "site:1"),
        ("http { server { listen 80 } }", "site:1"),
        ("http {\n\n  server_name 'unterminated;\n}", "site:3"),
        ("http { }\n}", "site:2"),
        ("http {\n listen 80", "site"),
    ],
)
def test_crossplane_errors_name_file_and_line(content: str, where: str) -> None:
    with pytest.raises(ParseError, match=where):
        parse_dump(dump(("/etc/nginx/site", content)))


# -------------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("path", "modifier", "location"),
    [
        ("/", "=", "/"),  # exact beats the "/" prefix
        ("/?q=1", "=", "/"),
        ("/dashboard", "", "/"),
        ("/ws", "", "/ws"),  # longest prefix beats "/"
        ("/ws/socket?EIO=4", "", "/ws"),
        ("/static/app.js", "^~", "/static/"),
        ("/static/logo.png", "^~", "/static/"),  # ^~ stops the png regex
        ("/static/app.js.map", "~", r"\.map$"),  # ... but not the nested regex inside it
        ("/img/logo.PNG", "~*", r"\.(png|jpg)$"),  # regex beats the "/" prefix, case-insensitively
        ("/ws/logo.png", "~*", r"\.(png|jpg)$"),  # regex beats a longer plain prefix too
        ("/api/v1/users", "~", "^/api/(v1|v2)/"),  # regexes in config order: first match wins
        ("/api/v3/users", "~", "^/api/"),
        ("/var/x", "", "/var"),
    ],
)
def test_location_routing(routing: NginxConfig, path: str, modifier: str, location: str) -> None:
    found = loc(routing, path, host="app.kathario.example")
    assert (found.modifier, found.path) == (modifier, location)


@pytest.mark.parametrize(
    ("port", "host", "target"),
    [
        (80, "app.kathario.example", ("127.0.0.1", 3003)),
        (80, "WWW.Kathario.Example:80", ("127.0.0.1", 3003)),  # case, port and the second name
        (80, "www.kathario.example.", ("127.0.0.1", 3003)),
        (80, "foo.kathario.example", ("127.0.0.1", 4000)),  # *.kathario.example
        (80, "acme.tenants.example", ("127.0.0.1", 4001)),  # ~regex with a PCRE named group
        (80, "kathario.io", ("127.0.0.1", 4002)),  # kathario.*
        (8081, "app.kathario.example", ("127.0.0.1", 3003)),  # listen 127.0.0.1:8081 ssl http2
        (8090, "first.example", ("0.0.0.0", 3003)),
        (8090, "second.example", ("127.0.0.1", 3009)),
        (8090, "unknown.example", ("0.0.0.0", 3003)),  # no default_server: the first server on the port
    ],
)
def test_server_selection(routing: NginxConfig, port: int, host: str, target: tuple[str, int]) -> None:
    found = loc(routing, "/dashboard", port=port, host=host)
    assert found.upstream == (target,)


def test_default_server_fallback(routing: NginxConfig) -> None:
    for host in ("unknown.example", "", "91.99.75.135", "kathario"):
        found = loc(routing, "/", host=host)
        assert found.file == "/etc/nginx/sites-enabled/00-default" and found.proxy_pass is None
        assert found.server_names == ("_",)


def test_unknown_port(routing: NginxConfig) -> None:
    assert find_location(routing, listen_port=3003, host="app.kathario.example", path="/") is None


def test_server_tree(routing: NginxConfig) -> None:
    app = routing.servers[1]
    assert [li.raw for li in app.listen] == ["80", "127.0.0.1:8081 ssl http2"]
    assert (app.listen[1].address, app.listen[1].port, app.listen[1].ssl, app.listen[1].http2) == (
        "127.0.0.1",
        8081,
        True,
        True,
    )
    assert [routing.locations[n.index].path for n in app.locations][:4] == ["/", "/", "/ws", "/static/"]
    static = app.locations[3]
    assert [routing.locations[n.index].path for n in static.children] == [r"\.map$"]
    assert routing.servers[0].listen[1].address == "::" and routing.servers[0].listen[1].default_server


def test_location_modifier_forms() -> None:
    site = """server { listen 8080;
        location =/exact { }
        location ~*\\.css$ { }
        location ~ ^/re { }
        location @named { proxy_pass http://127.0.0.1:3003; }
    }"""
    config = one_site(site)
    assert [(x.modifier, x.path) for x in config.locations] == [
        ("=", "/exact"),
        ("~*", r"\.css$"),
        ("~", "^/re"),
        ("", "@named"),
    ]
    assert loc(config, "/exact", port=8080).modifier == "="
    assert loc(config, "/a.CSS", port=8080).modifier == "~*"
    assert find_location(config, listen_port=8080, host="x", path="@named") is None
    with pytest.raises(ParseError, match="invalid location modifier"):
        one_site("server { location ! /x { } }")


@pytest.mark.parametrize("listen", ["99999", "a:b", "[::1", "1:2:3", "0"])
def test_bad_listen_is_a_parse_error(listen: str) -> None:
    with pytest.raises(ParseError, match=r"listen"):
        one_site(f"server {{ listen {listen}; }}")


# ------------------------------------------------------------------------------------------- hypothesis

_WORDS = st.sampled_from(
    [
        "http", "server", "location", "upstream", "map", "include", "listen", "server_name", "proxy_pass",
        "proxy_set_header", "proxy_http_version", "proxy_read_timeout", "proxy_buffering", "default", "if",
        "80", "[::]:80", "127.0.0.1:3003", "http://127.0.0.1:3003", "http://up", "unix:/x", "=", "~", "~*", "^~",
        "/", "/ws", "1h", "500ms", "on", "off", "$http_upgrade", "$connection_upgrade", "upgrade", "''", "*",
        "*.conf", "a.conf", "/etc/nginx/a.conf", "\"q\"", "#c\n", "\\", "${", "(", "[", "~(?<n>x)",
    ]
)  # fmt: skip
_PIECES = st.one_of(_WORDS, st.sampled_from(["{", "}", ";", " ", "\n"]), st.text(max_size=5))


@st.composite
def nginx_like(draw: st.DrawFn) -> str:
    files = draw(st.lists(st.sampled_from(["/etc/nginx/nginx.conf", "/etc/nginx/a.conf", "/etc/x/b"]), min_size=1))
    return "".join(
        f"# configuration file {path}:\n{' '.join(draw(st.lists(_PIECES, max_size=40)))}\n" for path in files
    )


@settings(max_examples=examples(300), deadline=None)
@given(st.text(), st.integers())
def test_parse_nginx_test_never_raises(stderr: str, status: int) -> None:
    result = parse_nginx_test(stderr, status)
    assert result.ok == (result.kind == "ok")


@settings(max_examples=examples(300), deadline=None)
@given(st.one_of(st.text(), nginx_like()))
def test_split_and_parse_dump_only_raise_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        split_dump(text)
    try:
        config = parse_dump(text)
    except ParseError:
        return
    for port in (80, 8080):
        find_location(config, listen_port=port, host="a.example", path="/ws")
    find_proxy_locations(config, app_port=3003)


_ARGS = st.lists(st.one_of(_WORDS, st.text(alphabet="ab/:$*.~09 ", max_size=6)), max_size=3)
_STATEMENTS = st.recursive(
    st.tuples(_WORDS, _ARGS).map(lambda d: f"{d[0]} {' '.join(d[1])};"),
    lambda inner: st.tuples(_WORDS, _ARGS, st.lists(inner, max_size=5)).map(
        lambda d: f"{d[0]} {' '.join(d[1])} {{ {' '.join(d[2])} }}"
    ),
    max_leaves=30,
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(_STATEMENTS, max_size=8), st.lists(_STATEMENTS, max_size=4))
def test_parse_dump_of_balanced_random_configs(main: list[str], other: list[str]) -> None:
    text = dump(
        ("/etc/nginx/nginx.conf", "http { include a.conf; server { listen 80; " + " ".join(main) + " } }"),
        ("/etc/nginx/a.conf", " ".join(other)),
    )
    try:
        config = parse_dump(text)
    except ParseError:
        return
    for path in ("/", "/ws", "/a.png"):
        find_location(config, listen_port=80, host="a.example", path=path)
    find_proxy_locations(config, app_port=3003)


_JUNK = st.text(alphabet="ab/:$*.~09[]?{}()^\\|+ ", max_size=8)
_TARGET = st.one_of(
    st.sampled_from(["http://127.0.0.1:3003", "http://up", "https://[::1]", "http://unix:/s:/", "http://$x"]),
    _JUNK.map(lambda s: "http://" + s),
)
_PROXY_LEAF = st.one_of(
    _TARGET.map(lambda x: f"proxy_pass '{x}';"),
    st.tuples(_JUNK, _JUNK).map(lambda d: f"proxy_set_header '{d[0]}' '{d[1]}';"),
    st.sampled_from(["proxy_http_version 1.1;", "proxy_buffering off;", "proxy_read_timeout 1h;", "return 204;"]),
)
_LOCATIONS = st.recursive(
    _PROXY_LEAF,
    lambda inner: st.tuples(
        st.sampled_from(["", "=", "~", "~*", "^~"]),
        st.one_of(st.sampled_from(["/", "/ws", r"\.png$", "(?<n>x)", "[", "@x"]), _JUNK),
        st.lists(inner, max_size=4),
    ).map(lambda d: f"location {d[0]} '{d[1]}' {{ {' '.join(d[2])} }}"),
    max_leaves=20,
)
_SERVER_STMT = st.one_of(
    _LOCATIONS,
    st.sampled_from(["listen 80;", "listen [::]:80 default_server;", "listen unix:/x;", "listen 8080;"]),
    st.sampled_from(["server_name a.example;", "server_name *.example ~^(?<x>a) a.* .example '';", "server_name ~[;"]),
)
_HTTP_STMT = st.one_of(
    st.lists(_SERVER_STMT, max_size=6).map(lambda xs: "server { " + " ".join(xs) + " }"),
    st.sampled_from(
        [
            "upstream up { server 127.0.0.1:3003; server localhost down; server unix:/x; }",
            "map $http_upgrade $cu { default upgrade; '' close; ~*web Upgrade; }",
            "proxy_set_header Connection $cu;",
        ]
    ),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_HTTP_STMT, max_size=6), st.text(max_size=20), st.text(max_size=20))
def test_routing_on_random_servers_only_raises_parse_error(stmts: list[str], host: str, path: str) -> None:
    try:
        config = parse_dump(dump(("/etc/nginx/nginx.conf", "http { " + " ".join(stmts) + " }")))
    except ParseError:
        return
    for port in (80, 8080):
        found = find_location(config, listen_port=port, host=host, path=path)
        assert found is None or found in config.locations
    assert all(3003 in dict(x.upstream).values() for x in find_proxy_locations(config, app_port=3003))
