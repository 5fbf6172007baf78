"""The sandbox's nginx: its config text, start and reloads."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from .conf import (
    _MAIN_CONF_TEMPLATE,
    _NO_UPGRADE_LINES,
    _SITE_TEMPLATE,
    _UPGRADE_LINES,
    _WRONG_SERVER_BLOCK,
    _WS_REWRITE_LOCATION,
    _WS_STATIC_LOCATION,
)
from .consts import SandboxError
from .proc import _tail, descendants, pick_free_port, pid_alive, session_members, tcp_accepts, wait_for


class NginxMixin:
    """The sandbox's nginx: its config text, start and reloads.

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- nginx ----------------------------------------------------------------------------------------

    def site_text(self, *, upgrade: bool = True, invalid: bool = False, tls: bool = False,
                  ws_redirect: bool = False, wrong_server: bool = False, ws_static: bool = False,
                  ws_rewrite: bool = False) -> str:
        """The nginx site: the seed's, or without the upgrade lines, or with a misspelt directive; or (wt-nginxrt)
        behind a 404 default_server its host does not match, or with a static location for /ws, or with a /ws
        location whose proxy_pass hands the app `/` instead of `/ws`.

        `tls` adds a second server block, the same site on 127.0.0.1:tls_port with `ssl` and the certificate in
        tls_dir; `ws_redirect` (implies `tls`) makes the plain-http block answer /ws with an http->https 301,
        the way a certbot-made port-80 block does."""
        text = _SITE_TEMPLATE.format(
            site_file=self.site_file,
            http_port=self.http_port,
            app_port=self.app_port,
            upgrade=_UPGRADE_LINES if upgrade else _NO_UPGRADE_LINES,
            buffering="proxy_bufering" if invalid else "proxy_buffering",
            server_name="chat.example.test" if wrong_server else "127.0.0.1 localhost",
            ws_static=_WS_STATIC_LOCATION.format(nginx_dir=self.nginx_dir) if ws_static
            else _WS_REWRITE_LOCATION.format(app_port=self.app_port) if ws_rewrite else "",
            extra="\n" + _WRONG_SERVER_BLOCK.format(http_port=self.http_port) if wrong_server else "",
        )
        if not (tls or ws_redirect):
            return text
        plain = f"    listen 127.0.0.1:{self.http_port};\n"
        secure = (
            f"    listen 127.0.0.1:{self.tls_port} ssl;\n"
            f"    ssl_certificate {self.tls_dir}/site.pem;\n"
            f"    ssl_certificate_key {self.tls_dir}/site.key;\n"
        )
        body = text.split("\n", 2)[2]  # the server block without the file's two comment lines
        tls_block = "\n# The same site over TLS (wscheck sandbox TLS modes).\n" + body.replace(plain, secure)
        if ws_redirect:
            redirect = (
                "    location /ws {\n"
                f"        return 301 https://$host:{self.tls_port}$request_uri;\n"
                "    }\n\n"
            )
            text = text.replace("    location / {", redirect + "    location / {", 1)
        return text + tls_block

    def main_conf_text(self, *, worker_connections: int = 512) -> str:
        """The main nginx.conf; `worker_connections` 2 (wt-nginxrt) leaves no room for one proxied request."""
        mime = "    include /etc/nginx/mime.types;\n" if Path("/etc/nginx/mime.types").is_file() else ""
        return _MAIN_CONF_TEMPLATE.format(user=self.user, nginx_dir=self.nginx_dir, mime=mime,
                                          worker_connections=worker_connections)

    def _write_nginx_conf(self) -> None:
        self._write_user_file(self.nginx_conf, self.main_conf_text())
        self._write_user_file(self.site_file, self.site_text())

    def nginx(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run nginx as the sandbox user against the sandbox's main conf (`-t`, `-T`, `-s reload`, ...)."""
        return self.run_as_user([self.nginx_bin, "-c", str(self.nginx_conf), *args], check=check, timeout=30)

    def nginx_master_pid(self) -> int:
        """The running nginx master of this sandbox, or 0."""
        pid = self._nginx_pid_recorded()
        return pid if pid_alive(pid) else 0

    def _nginx_pid_recorded(self) -> int:
        try:
            return int(self.nginx_pid_file.read_text().strip())
        except (OSError, ValueError):
            return 0

    def _nginx_orphans(self) -> set[int]:
        """Workers left by a master that died without cleaning up (kill -9): same session, still ours."""
        leader = self._nginx_pid_recorded()
        if pid_alive(leader) and not self._is_ours(leader):
            return set()  # the pid was reused: that session is somebody else's
        uid = os.stat(self.nginx_dir).st_uid
        orphans = set()
        for pid in session_members(leader):
            with contextlib.suppress(OSError):
                if (
                    os.stat(f"/proc/{pid}").st_uid == uid
                    and Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
                ):
                    orphans.add(pid)
        return orphans

    def _nginx_workers(self) -> set[int]:
        master = self.nginx_master_pid()
        return descendants([master]) if master else set()

    def _start_nginx(self, *, new_port: bool = True) -> None:
        """Start nginx (daemonized) as the user; ready when the master's pid file exists and the port accepts.

        With `new_port`, a port taken between picking and binding ("Address already in use") is retried
        with another one; without it (a restart by `heal`), the target's public_url must not change.
        """
        for _attempt in range(5 if new_port else 1):
            if new_port:
                self.http_port = pick_free_port(self._ports() - {self.http_port})
            self._write_nginx_conf()
            test = self.nginx("-t")
            if test.returncode != 0:
                raise SandboxError(f"nginx -t failed on the sandbox's own config:\n{test.stderr}")
            start = self.nginx()
            if start.returncode == 0:
                break
            if "Address already in use" not in start.stderr:
                raise SandboxError(f"nginx did not start:\n{start.stderr}")
        else:
            raise SandboxError(f"nginx could not bind 127.0.0.1:{self.http_port}:\n{start.stderr}")
        self._save_state()
        wait_for(
            "nginx's pid file",
            self.nginx_master_pid,
            timeout=15,
            detail=lambda: _tail(self.nginx_dir / "error.log"),
        )
        wait_for(
            f"nginx accepting on 127.0.0.1:{self.http_port}",
            lambda: tcp_accepts(self.http_port),
            timeout=15,
            detail=lambda: _tail(self.nginx_dir / "error.log"),
        )
        self.nginx_live = "healthy"

    def _reload_nginx(self, live: str, confirm: Callable[[], bool], what: str) -> None:
        """Reload nginx and return once its new workers serve the new config (as judged by `confirm`).

        nginx answers a reload signal at once but switches over asynchronously: new workers start, old ones
        finish their requests (bounded by worker_shutdown_timeout). We wait until none of the old workers is
        left and `confirm` sees the new behaviour from outside.
        """
        before = self._nginx_workers()
        result = self.nginx("-s", "reload")
        if result.returncode != 0:
            raise SandboxError(f"nginx -s reload failed:\n{result.stderr}")

        def switched() -> bool:
            workers = self._nginx_workers()
            return bool(workers) and not (workers & before) and confirm()

        wait_for(what, switched, timeout=20, interval=0.1, detail=lambda: _tail(self.nginx_dir / "error.log"))
        self.nginx_live = live
        self._save_state()
