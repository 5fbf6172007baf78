"""The seed story's modes (healthy, port-mismatch, no-build, ...)."""

from __future__ import annotations

import shutil

from ..consts import SandboxError
from ..proc import _tail, http_status, tcp_accepts, wait_for, ws_handshake_status


class BasicModes:
    """The seed story's modes (healthy, port-mismatch, no-build, ...).

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    def _break_healthy(self) -> None:
        """Nothing to break."""

    def _break_port_mismatch(self) -> None:
        """The seed's cause 2: the app on another port (Next's default, here alt_port), nginx unchanged."""
        self._start_app(port=self.alt_port)
        self._wait_app_listening(self.alt_port)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_no_build(self) -> None:
        """The seed's cause 1: no .next/BUILD_ID, so `next start` cannot run and PM2 ends `errored`."""
        shutil.move(self.app_dir / ".next" / "BUILD_ID", self.stash_dir / "BUILD_ID")
        self._start_app(port=self.app_port)
        self._wait_app_status("errored")

    def _break_nginx_no_upgrade(self) -> None:
        """The site minus proxy_http_version 1.1 / Upgrade / Connection, reloaded: upgrades stop at nginx."""
        self._write_user_file(self.site_file, self.site_text(upgrade=False))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the no-upgrade site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(
            "no-upgrade",
            lambda: (
                http_status(self.http_port) == 200 and ws_handshake_status(self.http_port) not in (101, None)
            ),
            "nginx to refuse WebSocket upgrades after the reload",
        )

    def _break_nginx_invalid(self) -> None:
        """A misspelt directive in the site; not reloaded, so nginx keeps serving the old config."""
        self._write_user_file(self.site_file, self.site_text(invalid=True))
        wait_for("nginx -t to fail on the site", lambda: self.nginx("-t").returncode != 0, timeout=10)

    def _break_port_conflict(self) -> None:
        """Another process holds app_port; the restarted app dies with EADDRINUSE and PM2 ends `errored`."""
        self.pm2("stop", self.app_name)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self._start_squatter()
        self._start_app(port=self.app_port)
        self._wait_app_status("errored")

    def _break_app_outside_pm2(self) -> None:
        """The app started by hand (`node server.js` in app_dir, as the sandbox user) after `pm2 delete` + `pm2 save`:
        the site works, PM2 does not know the app, and nothing would restart it. Held as the squatter is (its pid
        is the squatter's), so every way back to healthy stops it first."""
        self.pm2("delete", self.app_name)
        self.pm2("save")
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self._hold_port(["node", "server.js"], "outside-pm2.log", cwd=self.app_dir,
                        env={"PORT": str(self.app_port), "NODE_ENV": "production"},
                        what="the app started by hand answering through nginx", timeout=60,
                        ready=lambda: http_status(self.http_port) == 200
                        and ws_handshake_status(self.http_port) == 101)

    def _break_pm2_stopped(self) -> None:
        """`pm2 stop <app>`: PM2 keeps the entry with status `stopped`, nothing listens."""
        self.pm2("stop", self.app_name)
        self._wait_app_status("stopped")
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_dev_mode(self) -> None:
        """The seed's stop-gap: `npm run dev` on the right port (works, but it is not a production build)."""
        self._start_app(port=self.app_port, script="dev")
        self._wait_app_listening(self.app_port, timeout=90)
        wait_for(
            "the dev server to answer 200 through nginx",
            lambda: http_status(self.http_port, timeout=60) == 200,
            timeout=120,
            interval=0.5,
            detail=lambda: _tail(self.pm2_out_log) + "\n" + _tail(self.pm2_error_log),
        )
