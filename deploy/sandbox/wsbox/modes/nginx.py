"""Routing, reloads and the error log of the real nginx (wt-nginxrt)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..consts import SandboxError
from ..proc import http_status, wait_for, ws_handshake_status


class NginxModes:
    """Routing, reloads and the error log of the real nginx (wt-nginxrt).

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- wt-nginxrt modes (issue 11) -------------------------------------------------------------------------

    def _apply_site(self, live: str, text: str, confirm: Callable[[], bool], what: str) -> None:
        self._write_user_file(self.site_file, text)
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the {live} site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(live, confirm, what)

    def _break_nginx_wrong_server(self) -> None:
        """The app's block answers only chat.example.test; a 404 default_server answers 127.0.0.1."""
        self._apply_site("wrong-server", self.site_text(wrong_server=True),
                         lambda: http_status(self.http_port) == 404 and ws_handshake_status(self.http_port) == 404,
                         "nginx to answer 127.0.0.1 from the 404 default_server")

    def _break_nginx_ws_static(self) -> None:
        """`location /ws { root ...; }`: nginx looks for a file and answers 404; `/` still proxies."""
        self._apply_site("ws-static", self.site_text(ws_static=True),
                         lambda: http_status(self.http_port) == 200 and ws_handshake_status(self.http_port) == 404,
                         "nginx to answer /ws with its own 404")

    def _break_nginx_ws_path_rewritten(self) -> None:
        """`location /ws { proxy_pass http://127.0.0.1:PORT/; ... }`: nginx hands the app `/` for `/ws`, the app has
        no WebSocket there and closes the upgrade; `/` still proxies."""
        self._apply_site("ws-path-rewritten", self.site_text(ws_rewrite=True),
                         lambda: http_status(self.http_port) == 200
                         and ws_handshake_status(self.http_port) not in (101, None),
                         "nginx to hand /ws to the app as /")

    def _break_nginx_reload_pending(self) -> None:
        """The seed's fix written to disk but never reloaded: nginx still runs the site without the upgrade lines.

        The running config is the no-upgrade one (reloaded); then, once the clock has moved past the reload by
        more than the 1 s resolution of mtimes and process ages, the healthy site is written and not reloaded."""
        self._apply_site("reload-pending", self.site_text(upgrade=False),
                         lambda: http_status(self.http_port) == 200
                         and ws_handshake_status(self.http_port) not in (101, None),
                         "nginx to refuse WebSocket upgrades after the reload")
        reloaded = time.time()
        # 1 s resolution on three clocks (mtime, the worker's age, the target's now): 3.5 s is past all of them.
        wait_for("the clock to pass the reload by 3.5 s", lambda: time.time() > reloaded + 3.5,
                 timeout=10, interval=0.1)
        self._write_user_file(self.site_file, self.site_text())
        self.nginx_live = "reload-pending"

    def _break_nginx_worker_connections(self) -> None:
        """`worker_connections 2`: the listening socket and one client fill it, so every proxied request fails
        with `2 worker_connections are not enough` in the error log."""
        self._write_user_file(self.nginx_conf, self.main_conf_text(worker_connections=2))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"worker_connections 2 does not pass nginx -t:\n{test.stderr}")
        log = self.nginx_dir / "error.log"

        def exhausted() -> bool:
            http_status(self.http_port, timeout=2)
            return "worker_connections are not enough" in log.read_text(errors="replace")[-4096:]

        self._reload_nginx("worker-connections", exhausted, "nginx to log `worker_connections are not enough`")
