"""Socket.IO and PM2 as the bot sees it (wt-sio)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..consts import PROFILE_MARK, SIO_PING_INTERVAL_MS, SIO_PING_TIMEOUT_MS, SandboxError
from ..proc import _tail, http_status, kill_and_wait, tcp_accepts, wait_for


class SioModes:
    """Socket.IO and PM2 as the bot sees it (wt-sio).

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- Socket.IO and PM2 as the bot sees it (wt-sio) -------------------------------------------------------

    def _start_sio(self, *, instances: int) -> None:
        """The Socket.IO chat (sio-server.js) as the app, PM2 cluster mode with `instances` > 1 (no sticky)."""
        ecosystem = self.stash_dir / "pm2-sio.json"
        app: dict[str, Any] = {
            "name": self.app_name,
            "script": "sio-server.js",
            "cwd": str(self.app_dir),
            "env": {"PORT": str(self.app_port), "SIO_PING_INTERVAL": str(SIO_PING_INTERVAL_MS),
                    "SIO_PING_TIMEOUT": str(SIO_PING_TIMEOUT_MS)},
            "max_restarts": 3,
            "min_uptime": 10000,
            "vizion": False,
        }
        if instances > 1:
            app |= {"exec_mode": "cluster", "instances": instances}
        self._write_user_file(ecosystem, json.dumps({"apps": [app]}, indent=2) + "\n")
        self.pm2("delete", self.app_name, check=False)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self.pm2("start", str(ecosystem))
        path = "/socket.io/?EIO=4&transport=polling"

        def ready() -> bool:
            online = [p for p in self.pm2_jlist() if p.get("name") == self.app_name
                      and p.get("pm2_env", {}).get("status") == "online"]
            return len(online) == instances and http_status(self.app_port, path) == 200 \
                and http_status(self.http_port, path) == 200

        wait_for(f"{instances} Socket.IO instance(s) online and answering {path} directly and through nginx",
                 ready, timeout=60, interval=0.3, detail=lambda: _tail(self.pm2_error_log))
        self._pm2_save()  # as every mode but pm2-not-saved: the one finding is the mode's own

    def _break_socketio(self) -> None:
        """Healthy, but the chat is Socket.IO: one instance, the target says ws_protocol = "socket.io"."""
        self._start_sio(instances=1)

    def _break_socketio_cluster(self) -> None:
        """Socket.IO in PM2 cluster mode, 2 instances, no sticky sessions: polling gets "Session ID unknown"."""
        self._start_sio(instances=2)

    def _break_pm2_not_on_path(self) -> None:
        """`pm2` only on a login shell's PATH (as nvm leaves it): ~/.profile of the user adds its directory.

        The app stays healthy; the mode's target (`target_toml(pm2_bin="pm2")`) names the bare `pm2`, which
        the non-interactive SSH command (`/bin/sh -c`, no profile read) does not find. The line is added once
        per directory and left there: the user's home is shared by every sandbox on the machine, and it only
        affects login shells."""
        home = Path(self._pw().pw_dir)
        profile = home / ".profile"
        directory = str(Path(self.pm2_bin).parent)
        line = f'PATH="{directory}:$PATH"  {PROFILE_MARK}\n'
        text = profile.read_text() if profile.exists() else ""
        if line not in text:
            with profile.open("a") as fh:
                fh.write(line)
            self._chown(profile)
        check = self.run_as_user(["sh", "-c", "command -v pm2 || echo none"], check=False)
        if check.stdout.strip() != "none":
            raise SandboxError(f"pm2 is on the sandbox user's non-interactive PATH: {check.stdout.strip()}")

    def _break_pm2_other_home(self) -> None:
        """The app runs under a second PM2 daemon (PM2_HOME = workdir/pm2-other); the bot's PM2 lists nothing."""
        self.pm2("delete", self.app_name)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self.other_pm2_home.mkdir(exist_ok=True)
        self._chown(self.other_pm2_home)
        ecosystem = self.stash_dir / "pm2-app.json"
        self.run_as_user([self.pm2_bin, "start", str(ecosystem)], cwd=self.app_dir,
                         env={"PM2_HOME": str(self.other_pm2_home), "PORT": str(self.app_port)})
        self._wait_app_listening_any(self.app_port)

    def _wait_app_listening_any(self, port: int) -> None:
        wait_for(f"the app under the other PM2 accepting on 127.0.0.1:{port}", lambda: http_status(port) == 200,
                 timeout=60, interval=0.3)

    def _stop_other_pm2(self) -> None:
        """`pm2 kill` of the pm2-other-home daemon, only when it runs (any pm2 command would spawn one)."""
        try:
            pid = int((self.other_pm2_home / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if self._is_ours(pid) and self.pm2_bin:
            self.run_as_user([self.pm2_bin, "kill"], env={"PM2_HOME": str(self.other_pm2_home)}, check=False)
            kill_and_wait([pid])

    def sio_target_toml(self, name: str = "sandbox-sio") -> str:
        """The target of the Socket.IO modes: ws_protocol = "socket.io", ws_path left to its default."""
        return self.target_toml(name).replace('ws_path = "/ws"\n', 'ws_protocol = "socket.io"\n')
