"""The `Sandbox` class: construction and the public API (up, down, heal, set_mode, status, toml).

The other parts of the class are mixins, one per section of the former sandbox.py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .app import AppMixin
from .consts import _NAME_RE, _PATH_RE, MARKER_ENV, MEMCG_ROOT, MODES, SANDBOX_USER, STATE_FILE, SUDOERS_D, SandboxError
from .modes.basic import BasicModes
from .modes.host import HostModes
from .modes.nginx import NginxModes
from .modes.sio import SioModes
from .modes.tls import TlsModes
from .nginx import NginxMixin
from .proc import (
    _pids_with_env,
    _tail,
    descendants,
    http_status,
    kill_and_wait,
    pick_free_port,
    pid_alive,
    tcp_accepts,
    wait_for,
    ws_handshake_status,
)
from .sshd import SshdMixin
from .state import StateMixin
from .users import UsersMixin

# --------------------------------------------------------------------------------------------------------
# the sandbox
# --------------------------------------------------------------------------------------------------------


class Sandbox(StateMixin, UsersMixin, SshdMixin, NginxMixin, AppMixin, BasicModes, SioModes, TlsModes, HostModes,
              NginxModes):
    """One sandboxed stack living in `workdir`; see the module docstring and deploy/sandbox/README.md.

    Constructing it starts nothing. If `workdir` holds the state of a sandbox that `up()` started (maybe in
    another process), the ports, pids and mode are loaded from it, so `down()` and `set_mode()` work on it.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, app_name: str = "kathario-saas") -> None:
        self.workdir = Path(os.path.abspath(workdir))
        if not _PATH_RE.fullmatch(str(self.workdir)):
            raise SandboxError(
                f"workdir {self.workdir} has characters the bot refuses in paths; use only [A-Za-z0-9_./+@-]"
            )
        if not _NAME_RE.fullmatch(app_name):
            raise SandboxError(f"app name {app_name!r} is not a valid PM2 app name")
        self.app_name = app_name
        self.is_root = os.geteuid() == 0
        self.user = SANDBOX_USER if self.is_root else pwd.getpwuid(os.geteuid()).pw_name

        self.ssh_dir = self.workdir / "ssh"
        self.identity_file = self.ssh_dir / "id_ed25519"
        self.known_hosts = self.ssh_dir / "known_hosts"
        self.host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.ssh_dir / "authorized_keys"
        self.sshd_config = self.ssh_dir / "sshd_config"
        self.sshd_log = self.ssh_dir / "sshd.log"
        self.sshd_pid_file = self.ssh_dir / "sshd.pid"

        self.home = self.workdir / "home"
        self.pm2_home = self.workdir / "pm2"
        self.app_dir = self.workdir / "app"
        self.stash_dir = self.workdir / "stash"
        self.nginx_dir = self.workdir / "nginx"
        self.nginx_conf = self.nginx_dir / "nginx.conf"
        self.site_file = self.nginx_dir / "sites-enabled" / app_name
        self.nginx_pid_file = self.nginx_dir / "nginx.pid"
        self.nginx_bin = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/nginx"
        self.sshd_bin = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/sshd"
        self.squatter_pid_file = self.stash_dir / "squatter.pid"
        #: wt-sio: the PM2_HOME of the pm2-other-home mode's second daemon.
        self.other_pm2_home = self.workdir / "pm2-other"
        #: wt-host3: the mount point of the disk-full mode's tmpfs (inside this workdir: sandboxes never share it).
        self.diskfull_dir = self.workdir / "diskfull"
        #: wt-modes: names with this workdir's hash, so concurrent sandboxes never share a cgroup or a sudoers file.
        tag = hashlib.sha256(str(self.workdir).encode()).hexdigest()[:16]
        self.oom_cgroup = MEMCG_ROOT / f"wscheck-sandbox-{tag}"
        self.oom_sudoers = SUDOERS_D / f"wscheck-sandbox-{tag}"
        #: wt-modes: the pid and comm of the process the kernel-oom mode had killed (0 / "" before).
        self.oom_victim = 0
        self.standalone_build = ""
        self.state_file = self.workdir / STATE_FILE

        self.ssh_port = 0
        self.http_port = 0
        self.app_port = 0
        self.alt_port = 0
        self.tls_port = 0
        self.tls_dir = self.nginx_dir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.pm2_bin = ""
        self.node_modules = ""
        self.build_dir = ""
        self.mode = "down"
        self.nginx_live = "healthy"
        self.sshd_pid = 0
        self.squatter_pid = 0
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        #: Extra SSH logins besides `user` (add_login_user), keyed from their own ~/.ssh/authorized_keys.
        self.login_users: list[str] = []
        self._load_state()


    # ---- public API -----------------------------------------------------------------------------------

    def _is_ours(self, pid: int) -> bool:
        """True when `pid` still is a process of this sandbox (guards against a recycled pid in the state).

        sshd's, nginx's and PM2's titles name a file in the workdir; processes spawned as the user carry the
        marker variable in their environment.
        """
        if not pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(self.workdir) + "/" in cmdline:
                return True
            marker = f"{MARKER_ENV}={self.workdir}".encode()
            return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def _ports(self) -> set[int]:
        return {p for p in (self.ssh_port, self.http_port, self.app_port, self.alt_port, self.tls_port) if p}

    def up(self) -> None:
        """Install if needed, then start sshd, nginx and the app healthy; return when all three really are.

        A sandbox already running in this workdir is taken down first. On any failure, whatever was started
        is stopped again before the exception propagates.
        """
        if self.state_file.exists():
            self.down()
        self._ensure_user()
        self.install()
        self._prepare_dirs()
        self.ssh_port = self.http_port = 0
        self.app_port = pick_free_port()
        self.alt_port = pick_free_port({self.app_port})
        self.mode = "starting"
        self._save_state()
        try:
            self._prepare_app()
            self._start_sshd()
            self._start_nginx()
            self._start_app(port=self.app_port)
            self._wait_app_listening(self.app_port)
            wait_for(
                f"HTTP 200 through nginx on 127.0.0.1:{self.http_port}",
                lambda: http_status(self.http_port) == 200,
                timeout=30,
                detail=lambda: _tail(self.nginx_dir / "error.log"),
            )
            self._pm2_save()
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise
        self.mode = "healthy"
        self._save_state()
        (self.workdir / "wscheck.toml").write_text(self.target_toml())

    def down(self) -> None:
        """Stop everything this sandbox started, even after a partial `up()` or a crashed caller.

        Order: PM2 (kills the app tree), nginx, the squatter, sshd (and the SSH sessions under it). Then a
        sweep: every process of the sandbox user carrying this workdir's marker variable, and every process
        found under the recorded pids, gets SIGTERM then SIGKILL. Files stay, for the logs.
        """
        errors: list[str] = []
        roots = [
            p
            for p in (self.sshd_pid, self.squatter_pid, self.nginx_master_pid(), self._pm2_daemon_pid())
            if self._is_ours(p)
        ]
        tree = descendants(roots) | set(roots)
        # Only when its daemon runs: any pm2 command, even `kill`, would otherwise spawn a fresh daemon.
        if self.pm2_bin and self._is_ours(self._pm2_daemon_pid()) and Path(self.pm2_bin).exists():
            try:
                self.pm2("kill", check=False, timeout=60)
            except SandboxError as exc:
                errors.append(str(exc))
        with contextlib.suppress(SandboxError):
            self._stop_other_pm2()
        master = self.nginx_master_pid()
        if master and self._is_ours(master):
            kill_and_wait([master, *descendants([master])], timeout=5)
        if self.nginx_dir.is_dir():
            kill_and_wait(self._nginx_orphans())
        self._stop_squatter()
        if self._is_ours(self.sshd_pid):
            kill_and_wait([self.sshd_pid, *descendants([self.sshd_pid])])
        strays = tree | descendants(tree)
        with contextlib.suppress(KeyError):
            strays |= _pids_with_env(MARKER_ENV, str(self.workdir), self._pw().pw_uid)
        left = kill_and_wait(strays, timeout=3)
        if left:
            errors.append(f"processes still alive after SIGKILL: {sorted(left)}")
        for proc in self._popen.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self._popen.clear()
        try:
            self._release_diskfull()  # wt-host3: never leave a mount behind (the workdir could not be removed)
        except SandboxError as exc:
            errors.append(str(exc))
        try:
            self._release_kernel_oom()  # wt-modes: no cgroup or sudoers file left behind
        except (OSError, SandboxError) as exc:
            errors.append(str(exc))
        self.sshd_pid = 0
        self.mode = "down"
        if self.state_file.exists():
            self._save_state()
        if errors:
            raise SandboxError("down() could not stop everything: " + "; ".join(errors))

    def _pm2_daemon_pid(self) -> int:
        try:
            pid = int((self.pm2_home / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return 0
        return pid if pid_alive(pid) else 0

    def heal(self) -> None:
        """Bring every part back to healthy, touching only what is not (cheap when already healthy).

        Decisions are made on what is observed, not only on the recorded mode, since the bot under test
        may have "fixed" (or further broken) things in between: a reload, a `pm2 start`, a rebuild.
        """
        self._stop_squatter()
        self._stop_other_pm2()
        if self.mode in ("restart-loop", "pm2-started-twice"):
            # wt-host2: stop the loop first (the copy that keeps failing to start, too): PM2 can lose a process
            # that a delete hits while it is starting, and kill_strays below must then find it before the app starts
            self.pm2("delete", self.app_name, check=False)
        if self.mode == "heap-oom":
            # wt-host2: the last crash's lines must be older than the healed app's start by more than the 1 s the
            # log checks allow for clock granularity, as they are when a person fixes it (not milliseconds later).
            wait_for("the heap-oom crash log to be 2 s old",
                     lambda: time.time() - self.pm2_error_log.stat().st_mtime > 2, timeout=15, interval=0.2)
        self.kill_strays()  # wt-host2
        stashed = self.stash_dir / "BUILD_ID"
        build_id = self.app_dir / ".next" / "BUILD_ID"
        if stashed.exists():
            if build_id.exists():  # rebuilt meanwhile (`npm run build`): that build is coherent, keep it
                stashed.unlink()
            else:
                shutil.move(stashed, build_id)
        if not self._app_healthy():
            self._start_app(port=self.app_port)
            self._wait_app_listening(self.app_port)
        self._release_diskfull()  # wt-host3: the app writes its logs back in PM2_HOME, so nothing holds the tmpfs
        self._release_kernel_oom()  # wt-modes: the cgroup (empty: its one process was killed) and the sudoers file
        if self.standalone_dir.exists():  # wt-modes: static-missing; the healthy app runs from app_dir
            shutil.rmtree(self.standalone_dir)
        # A file rewritten here is reloaded too: a config on disk newer than the running nginx's last load is
        # itself a finding (nginx.reload), so a healed sandbox must not leave one behind.
        rewritten = False
        for path, healthy_text in ((self.site_file, self.site_text()), (self.nginx_conf, self.main_conf_text())):
            if path.read_text() != healthy_text:
                self._write_user_file(path, healthy_text)
                rewritten = True
        if not self.nginx_master_pid():
            kill_and_wait(self._nginx_orphans())  # they would still hold the port
            self._start_nginx(new_port=False)
        elif rewritten or self.nginx_live != "healthy" or ws_handshake_status(self.http_port) != 101:
            self._reload_nginx(
                "healthy",
                lambda: ws_handshake_status(self.http_port) == 101,
                "nginx to pass WebSocket upgrades again after a reload",
            )
        if not self._pm2_saved():
            self._pm2_save()
        # A clean slate for the next mode: PM2's log lines carry no timestamps, so what an earlier mode wrote
        # (a heap OOM, EADDRINUSE, a missing build) would read as this mode's evidence. An operator's healthy
        # stack has no such history in view either.
        self.pm2("flush", self.app_name, check=False)
        self.mode = "healthy"
        self._save_state()

    def set_mode(self, mode: str) -> None:
        """Heal, then break the stack the way `mode` says; return only once that state is observable."""
        if mode not in MODES:
            raise SandboxError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        if self.mode in ("down", "starting") or not self.sshd_pid:
            raise SandboxError("the sandbox is not up: call up() first")
        self.heal()
        try:
            getattr(self, "_break_" + mode.replace("-", "_"))()
        finally:
            self._save_state()
        self.mode = mode
        self._save_state()


    def target_toml(self, name: str = "sandbox", *, pm2_bin: str = "", kernel_log_sudo: bool = False) -> str:
        """The `[[targets]]` table that points wscheck at this sandbox over SSH (`pm2_bin`: another pm2;
        `kernel_log_sudo`: the kernel-oom mode's target, reading the kernel log with `sudo -n dmesg`)."""
        return (
            "[[targets]]\n"
            f'name = "{name}"\n'
            f'host = "{self.host}"\n'
            f"port = {self.ssh_port}\n"
            f'user = "{self.user}"\n'
            f'identity_file = "{self.identity_file}"\n'
            f'known_hosts = "{self.known_hosts}"\n'
            f'pm2_app = "{self.app_name}"\n'
            f"app_port = {self.app_port}\n"
            f'app_dir = "{self.app_dir}"\n'
            f'public_url = "http://{self.host}:{self.http_port}/"\n'
            'ws_path = "/ws"\n'
            'http_path = "/"\n'
            f'pm2_bin = "{pm2_bin or self.pm2_bin}"\n'
            f'pm2_home = "{self.pm2_home}"\n'
            f'nginx_bin = "{self.nginx_bin}"\n'
            f'nginx_conf = "{self.nginx_conf}"\n'
            + ("kernel_log_sudo = true\n" if kernel_log_sudo else "")
        )

    def status(self) -> dict[str, Any]:
        """What is running right now, observed (not just the recorded mode)."""
        info: dict[str, Any] = {
            "workdir": str(self.workdir),
            "mode": self.mode,
            "user": self.user,
            "ports": {
                "ssh": self.ssh_port,
                "http": self.http_port,
                "app": self.app_port,
                "alt": self.alt_port,
            },
            "sshd": pid_alive(self.sshd_pid),
            "nginx": bool(self.nginx_master_pid()),
            "squatter": pid_alive(self.squatter_pid),
        }
        if self.pm2_bin and self._pm2_daemon_pid():
            with contextlib.suppress(Exception):
                info["pm2"] = self.app_status()
        if self.http_port:
            info["http_through_nginx"] = http_status(self.http_port, timeout=3)
            info["ws_through_nginx"] = ws_handshake_status(self.http_port, timeout=3)
        if self.app_port:
            info["app_port_accepts"] = tcp_accepts(self.app_port)
        return info

