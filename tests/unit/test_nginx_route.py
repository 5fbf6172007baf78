"""Unit tests for each routing rule of checks/parsers/nginx_route.py (the differential test covers the mix)."""

from __future__ import annotations

from checks.facts import _route_error
from checks.items.nginx import _has_upgrade_token
from checks.models import Status
from checks.parsers.nginx import NginxConfig, parse_dump
from checks.parsers.nginx_route import Proxy, Request, Return, Static, Uncertain, route, upstream_path


def _config(http: str) -> NginxConfig:
    return parse_dump(f"# configuration file /etc/nginx/nginx.conf:\nhttp {{\n{http}\n}}\n")


def _go(config: NginxConfig, host: str = "chat.test", path: str = "/ws", **kw: object) -> object:
    return route(config, Request(host=host, port=kw.pop("port", 80), path=path, **kw))  # type: ignore[arg-type]


APP = "location /ws { proxy_pass http://127.0.0.1:3000; }"


def test_default_server_wins_over_first_for_unknown_host() -> None:
    cfg = _config(f"server {{ listen 80; server_name a.test; {APP} }}\n"
                  "server { listen 80 default_server; server_name other.test; return 404; }")
    r = route(cfg, Request(host="chat.test", port=80, path="/ws"))
    assert r.server is not None and r.server.names == ("other.test",)
    assert r.outcome == Return(404)


def test_implicit_default_is_first_server_on_the_port() -> None:
    cfg = _config("server { listen 80; server_name x.test; return 444; }\n"
                  f"server {{ listen 80; server_name a.test; {APP} }}")
    assert route(cfg, Request(host="chat.test", port=80, path="/ws")).outcome == Return(444)


def test_specific_address_listen_hides_wildcard_servers() -> None:
    cfg = _config(f"server {{ listen 80; server_name chat.test; {APP} }}\n"
                  "server { listen 127.0.0.1:80; server_name other.test; return 403; }")
    assert route(cfg, Request(host="chat.test", port=80, path="/ws", address="127.0.0.1")).outcome == Return(403)
    assert isinstance(route(cfg, Request(host="chat.test", port=80, path="/ws", address="10.0.0.1")).outcome, Proxy)
    assert route(cfg, Request(host="chat.test", port=80, path="/ws")).outcome == Uncertain("address_unknown")


def test_server_name_order_exact_then_leading_then_trailing_then_regex() -> None:
    cfg = _config("server { listen 80; server_name ~^www\\.; return 201; }\n"
                  "server { listen 80; server_name www.*; return 202; }\n"
                  "server { listen 80; server_name *.chat.test; return 203; }\n"
                  "server { listen 80; server_name www.chat.test; return 204; }")
    assert route(cfg, Request(host="www.chat.test", port=80, path="/")).outcome == Return(204)
    assert route(cfg, Request(host="api.chat.test", port=80, path="/")).outcome == Return(203)
    assert route(cfg, Request(host="www.other.test", port=80, path="/")).outcome == Return(202)


def test_dot_name_conflicting_with_earlier_exact_name_is_ignored() -> None:
    cfg = _config("server { listen 80; server_name b.test; return 201; }\n"
                  "server { listen 80; server_name .b.test; return 202; }")
    assert route(cfg, Request(host="sub.b.test", port=80, path="/")).outcome == Return(201)


def test_location_exact_prefix_noregex_regex_nested() -> None:
    cfg = _config("server { listen 80;\n"
                  "  location = /ws { return 201; }\n"
                  "  location ^~ /static { return 202; }\n"
                  "  location ~ \\.png$ { return 203; }\n"
                  "  location /api { return 204; location ~ chat$ { return 205; } }\n"
                  "}")
    assert _go(cfg, path="/ws").outcome == Return(201)  # type: ignore[attr-defined]
    assert _go(cfg, path="/static/a.png").outcome == Return(202)  # type: ignore[attr-defined]
    assert _go(cfg, path="/img/a.png").outcome == Return(203)  # type: ignore[attr-defined]
    assert _go(cfg, path="/api/chat").outcome == Return(205)  # type: ignore[attr-defined]
    assert _go(cfg, path="/ws/").outcome == Static()  # type: ignore[attr-defined]


def test_rewrite_last_researches_with_captures_and_cycles_end_in_500() -> None:
    cfg = _config("server { listen 80;\n"
                  "  location /old { rewrite ^/old(.*)$ /ws$1 last; }\n"
                  "  location /ws { proxy_pass http://127.0.0.1:3000; }\n"
                  "  location /loop { rewrite ^(.*)$ $1 last; }\n"
                  "}")
    r = _go(cfg, path="/old/chat")
    assert isinstance(r.outcome, Proxy) and r.uri == "/ws/chat"  # type: ignore[attr-defined]
    assert _go(cfg, path="/loop").outcome == Return(500)  # type: ignore[attr-defined]


def test_server_level_return_redirect_is_the_answer() -> None:
    cfg = _config(f"server {{ listen 80; return 301 https://$host$request_uri; {APP} }}")
    r = _go(cfg)
    assert r.outcome == Return(301, "https://chat.test/ws") and r.location is None  # type: ignore[attr-defined]


def test_try_files_hands_off_to_the_named_location_it_names() -> None:
    cfg = _config("server { listen 80;\n"
                  "  location @first { return 500; }\n"
                  "  location / { try_files $uri $uri/ @app; }\n"
                  "  location @app { proxy_pass http://127.0.0.1:3000; }\n"
                  "}")
    r = _go(cfg)
    assert isinstance(r.outcome, Proxy) and r.location is not None and r.location.uri == "@app"  # type: ignore[attr-defined]


def test_if_on_the_file_system_is_uncertain_upgrade_test_is_known() -> None:
    cfg = _config("server { listen 80; location /ws {\n"
                  "  if ($http_upgrade != websocket) { return 426; }\n"
                  "  if (-f $request_filename) { return 403; }\n"
                  "  proxy_pass http://127.0.0.1:3000; } }")
    assert _go(cfg, upgrade=False).outcome == Return(426)  # type: ignore[attr-defined]
    outcome = _go(cfg).outcome  # type: ignore[attr-defined]
    assert isinstance(outcome, Uncertain) and "file system" in outcome.reason


def test_https_on_a_listen_without_ssl_is_not_served() -> None:
    cfg = _config(f"server {{ listen 443; {APP} }}")
    assert _go(cfg, port=443, scheme="https").outcome.reason == "not_ssl"  # type: ignore[attr-defined]


def test_wrong_server_error_names_both_blocks() -> None:
    cfg = _config("server { listen 80 default_server; return 404; }\n"
                  f"server {{ listen 80; server_name app.test; {APP} }}")
    req = Request(host="chat.test", port=80, path="/ws")
    err = _route_error(cfg, route(cfg, req), req, 3000)
    assert err.status == Status.FAIL and err.details["reason"] == "wrong_server"
    assert err.details["server"]["line"] == 2 and err.details["app_server"]["line"] == 3


def test_redirect_and_not_proxied_are_findings_not_fallbacks() -> None:
    cfg = _config("server { listen 80; return 301 https://$host$request_uri; }\n"
                  f"server {{ listen 443 ssl; {APP} }}")
    req = Request(host="chat.test", port=80, path="/ws")
    err = _route_error(cfg, route(cfg, req), req, 3000)
    # wt-tls: the port-80 block that nginx picks answers the upgrade with a redirect itself: that redirect is the
    # finding (ws_upgrade_redirected, "use wss://"), not "wrong server" (the 443 block is meant for https)
    assert err.details["reason"] == "redirect" and err.details["location_header"] == "https://chat.test/ws"
    cfg = _config("server { listen 80; location / { return 301 /login; } }")
    err = _route_error(cfg, route(cfg, req), req, 3000)
    assert err.details["reason"] == "redirect" and err.details["status"] == 301


def test_connection_upgrade_token_anywhere_counts() -> None:
    assert _has_upgrade_token("keep-alive, Upgrade")
    assert _has_upgrade_token("'upgrade'")
    assert not _has_upgrade_token("keep-alive")


# -- nginx's auto_redirect: a proxied location named "/ws/" answers "/ws" with a 301 to "/ws/" ----------------------

SLASHED = "location /ws/ { proxy_pass http://127.0.0.1:3000; } location / { proxy_pass http://127.0.0.1:3000; }"


def test_a_proxied_location_with_a_trailing_slash_redirects_its_name_without_it() -> None:
    r = route(_config(f"server {{ listen 80; {SLASHED} }}"), Request(host="chat.test", port=80, path="/ws"))
    assert r.outcome == Return(301, "/ws/") and r.location is not None and r.location.uri == "/ws/"
    assert any("auto-redirect" in step for step in r.steps)
    with_args = route(_config(f"server {{ listen 80; {SLASHED} }}"),
                      Request(host="chat.test", port=80, path="/ws?room=1"))
    assert with_args.outcome == Return(301, "/ws/?room=1")


def test_auto_redirect_comes_before_regex_locations_and_the_location_s_own_rewrites() -> None:
    cfg = _config("server { listen 80; location ~ ^/ws$ { return 418; }"
                  " location /ws/ { return 410; proxy_pass http://127.0.0.1:3000; } }")
    assert route(cfg, Request(host="chat.test", port=80, path="/ws")).outcome == Return(301, "/ws/")


def test_no_auto_redirect_when_a_location_has_the_name_itself_or_nothing_is_proxied() -> None:
    prefix = _config(f"server {{ listen 80; location /ws {{ return 204; }} {SLASHED} }}")
    assert route(prefix, Request(host="chat.test", port=80, path="/ws")).outcome == Return(204)
    exact = _config(f"server {{ listen 80; location = /ws {{ return 205; }} {SLASHED} }}")
    assert route(exact, Request(host="chat.test", port=80, path="/ws")).outcome == Return(205)
    static = _config("server { listen 80; location /ws/ { root /srv; } location / { return 206; } }")
    assert route(static, Request(host="chat.test", port=80, path="/ws")).outcome == Return(206)
    regex = _config("server { listen 80; location ~ ^/ws/ { proxy_pass http://127.0.0.1:3000; }"
                    " location / { return 207; } }")
    assert route(regex, Request(host="chat.test", port=80, path="/ws")).outcome == Return(207)
    # the slashed path itself is proxied as usual
    assert isinstance(route(_config(f"server {{ listen 80; {SLASHED} }}"),
                            Request(host="chat.test", port=80, path="/ws/")).outcome, Proxy)


def _upstream(server_body: str, path: str) -> str | None:
    cfg = _config(f"server {{ listen 80; {server_body} }}")
    found = route(cfg, Request(host="chat.test", port=80, path=path))
    assert found.location is not None, found
    return upstream_path(cfg.locations[found.location.index], found)


def test_upstream_path_replaces_the_matched_prefix_only_when_proxy_pass_has_a_uri() -> None:
    assert _upstream("location /ws { proxy_pass http://127.0.0.1:3000; }", "/ws?x=1") == "/ws"
    assert _upstream("location /ws { proxy_pass http://127.0.0.1:3000/; }", "/ws") == "/"
    assert _upstream("location /ws/ { proxy_pass http://app/socket/; }", "/ws/chat") == "/socket/chat"
    assert _upstream("location = /ws { proxy_pass http://127.0.0.1:3000/live; }", "/ws") == "/live"
    # what the model cannot know, it does not guess
    assert _upstream("location /ws { proxy_pass http://127.0.0.1:3000$request_uri; }", "/ws") is None
    assert _upstream("location /ws { proxy_pass http://unix:/run/app.sock:/; }", "/ws") is None
    assert _upstream("location /ws { rewrite ^/ws(.*)$ /x$1 break; proxy_pass http://127.0.0.1:3000/; }",
                     "/ws") is None
    assert _upstream("location ~ ^/ws { proxy_pass http://127.0.0.1:3000; }", "/ws") == "/ws"


def test_no_block_accepting_the_public_address_names_the_app_s_block_and_its_listens() -> None:
    cfg = _config(f"server {{ listen [::1]:80; {APP} }}")
    req = Request(host="127.0.0.1", port=80, path="/ws", address="127.0.0.1")
    err = _route_error(cfg, route(cfg, req), req, 3000)
    assert err.status == Status.FAIL and err.details["reason"] == "wrong_server" and err.details["no_listen"]
    assert err.details["listens"] == ["[::1]:80"] and err.details["app_server"]["line"] == 2
    # nothing proxies to the app anywhere: no block to name, as before
    bare = _config("server { listen [::1]:80; return 404; }")
    assert _route_error(bare, route(bare, req), req, 3000).details["reason"] == "no_server"
