"""The app under PM2, the saved PM2 list and the port squatter."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .conf import _SQUATTER_CODE
from .consts import FD_LEAK_ENV, HANG_ENV, OOM_ENV, SandboxError
from .proc import _tail, kill_and_wait, tcp_accepts, wait_for


class AppMixin:
    """The app under PM2, the saved PM2 list and the port squatter.

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- the app under PM2 ----------------------------------------------------------------------------

    def _start_app(self, *, port: int, script: str = "start", env: Mapping[str, str] | None = None,
                   save: bool = True, extra: Mapping[str, Any] | None = None) -> None:
        """The seed's `PORT=<port> pm2 start npm --name <app> -- run <script>`, plus a restart policy.

        npm -> sh -> node: the listener is several levels below the PM2 pid, as on the real server.
        The app is described in a one-app ecosystem file rather than on the command line only because the
        PM2 CLI has no `--min-uptime`: with PM2's default (1 s, counted only within min_uptime x max_restarts
        of the start), a crash loop that takes a little over a second per round on a busy machine never
        ends `errored`. With 10 s, every failing start counts and PM2 gives up after 3, within seconds.
        What PM2 records (name, script npm, args, cwd, PORT) is what the seed's command records.

        No restart_delay: PM2 7 sets `errored` on the last unstable exit and then, when a restart_delay is
        configured, overwrites it with `waiting restart` without ever restarting (God.handleExit), so the
        app would hang in `waiting restart` instead of showing `errored`.
        """
        ecosystem = self.stash_dir / "pm2-app.json"
        app = {
            "name": self.app_name,
            "script": "npm",
            "args": ["run", script],
            "cwd": str(self.app_dir),
            "env": {"PORT": str(port), **(env or {})},
            "max_restarts": 3,
            "min_uptime": 10000,
            "vizion": False,
            **(extra or {}),
        }
        self._write_user_file(ecosystem, json.dumps({"apps": [app]}, indent=2) + "\n")
        self.pm2("delete", self.app_name, check=False)
        self.pm2("start", str(ecosystem), env={"PORT": str(port), **(env or {})})
        if save:  # as an operator would; only the pm2-not-saved mode leaves the list unsaved
            self.pm2("save")

    def _app_is(self, status: str) -> bool:
        return self.app_status() == status

    def _wait_app_status(self, status: str, timeout: float = 45) -> None:
        wait_for(
            f"PM2 to show {self.app_name} {status}",
            lambda: self._app_is(status),
            timeout=timeout,
            interval=0.3,
            detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}",
        )

    def _wait_app_listening(self, port: int, timeout: float = 60, host: str = "127.0.0.1") -> None:
        def ready() -> bool:
            return tcp_accepts(port, host=host) and self._app_is("online")

        wait_for(
            f"{self.app_name} online in PM2 and accepting on {host}:{port}",
            ready,
            timeout=timeout,
            interval=0.25,
            detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}",
        )

    def _app_healthy(self) -> bool:
        entries = [p for p in self.pm2_jlist() if p.get("name") == self.app_name]
        if len(entries) != 1:  # none, cluster instances, or the app started twice (pm2-started-twice)
            return False
        proc = entries[0]
        env = proc.get("pm2_env", {})
        inner = env.get("env", {})
        return (
            env.get("status") == "online"
            and not env.get("watch")  # wt-host2: restart-loop
            and "NODE_OPTIONS" not in (env.get("env") or {})  # wt-host2: heap-oom
            and list(env.get("args") or []) == ["run", "start"]
            and str(env.get("PORT") or inner.get("PORT")) == str(self.app_port)
            and not (env.get("HOSTNAME") or inner.get("HOSTNAME"))  # app-ipv6-only
            and not (env.get(HANG_ENV) or inner.get(HANG_ENV))  # app-hung
            and not (env.get(FD_LEAK_ENV) or inner.get(FD_LEAK_ENV))  # wt-host3: fd-exhausted
            and not (env.get(OOM_ENV) or inner.get(OOM_ENV))  # wt-modes: kernel-oom
            and str(env.get("pm_out_log_path") or self.pm2_out_log) == str(self.pm2_out_log)  # wt-host3: disk-full
            and str(env.get("pm_err_log_path") or self.pm2_error_log) == str(self.pm2_error_log)
            and tcp_accepts(self.app_port)
        )

    # ---- the saved PM2 list (wt-host) -----------------------------------------------------------------

    @property
    def pm2_dump(self) -> Path:
        return self.pm2_home / "dump.pm2"

    def _pm2_saved(self) -> bool:
        """The dump lists the app with its current unique_id (what the bot's pm2.saved asks)."""
        proc = self.app_process()
        try:
            saved = json.loads(self.pm2_dump.read_text())
        except (OSError, ValueError):
            return False
        # As the bot's pm2.saved: a recreated app gets a new unique_id; a stop/start or restart keeps it.
        entries = [e for e in saved if isinstance(e, dict)] if isinstance(saved, list) else []
        ids = {e.get("unique_id") for e in entries if e.get("name") == self.app_name}
        return proc is not None and proc.get("pm2_env", {}).get("unique_id") in ids

    def _pm2_save(self) -> None:
        """`pm2 save`, as an operator ends every change; a healthy sandbox survives a reboot."""
        self.pm2("save")
        wait_for("PM2 to write its dump with the app in it", self._pm2_saved, timeout=15)

    # ---- the port squatter ----------------------------------------------------------------------------

    def _start_squatter(self) -> None:
        """A stray python3 server on app_port, owned by the sandbox user so `ss -p` shows it to that user."""
        self._hold_port(["python3", "-c", _SQUATTER_CODE, str(self.app_port)], "squatter.log",
                        what=f"the squatter accepting on 127.0.0.1:{self.app_port}",
                        ready=lambda: tcp_accepts(self.app_port), timeout=10)

    def _hold_port(self, argv: list[str], log_name: str, *, what: str, ready: Callable[[], bool], timeout: float,
                   cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        """A process outside PM2 on app_port, as the sandbox user: its pid is recorded as the squatter's, so every
        way back to healthy (heal, down) stops it first. Returns once `ready`; fails if it exits before."""
        log = self.stash_dir / log_name
        proc = self._spawn_as_user(argv, log, cwd=cwd, env=env)
        self.squatter_pid = proc.pid
        self.squatter_pid_file.write_text(f"{proc.pid}\n")
        self._save_state()

        def up() -> bool:
            if proc.poll() is not None:
                raise SandboxError(f"{argv[0]} on port {self.app_port} exited\n{_tail(log)}")
            return ready()

        wait_for(what, up, timeout=timeout, interval=0.2)

    def _stop_squatter(self) -> None:
        if self._is_ours(self.squatter_pid):
            kill_and_wait([self.squatter_pid])
            self._reap()
        self.squatter_pid = 0
        self.squatter_pid_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        for pid, proc in list(self._popen.items()):
            if proc.poll() is not None:
                del self._popen[pid]
