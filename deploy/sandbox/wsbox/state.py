"""The saved state of a sandbox (`<workdir>/sandbox.json`)."""

from __future__ import annotations

import json

from .consts import _USER_RE


class StateMixin:
    """The saved state of a sandbox (`<workdir>/sandbox.json`).

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- state ----------------------------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        if data.get("app_name") != self.app_name:
            return
        for key in ("ssh_port", "http_port", "app_port", "alt_port", "tls_port", "sshd_pid", "squatter_pid"):
            setattr(self, key, int(data.get(key, 0)))
        self.oom_victim = int(data.get("oom_victim", 0))
        for key in ("pm2_bin", "node_modules", "build_dir", "standalone_build", "mode", "nginx_live"):
            setattr(self, key, str(data.get(key, getattr(self, key))))
        users = data.get("login_users")
        if isinstance(users, list):
            self.login_users = [str(u) for u in users if _USER_RE.fullmatch(str(u))]

    def _save_state(self) -> None:
        data = {
            "app_name": self.app_name,
            "user": self.user,
            "mode": self.mode,
            "nginx_live": self.nginx_live,
            "ssh_port": self.ssh_port,
            "http_port": self.http_port,
            "app_port": self.app_port,
            "alt_port": self.alt_port,
            "tls_port": self.tls_port,
            "sshd_pid": self.sshd_pid,
            "squatter_pid": self.squatter_pid,
            "pm2_bin": self.pm2_bin,
            "node_modules": self.node_modules,
            "build_dir": self.build_dir,
            "standalone_build": self.standalone_build,
            "oom_victim": self.oom_victim,
        }
        if self.login_users:
            data["login_users"] = list(self.login_users)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)
