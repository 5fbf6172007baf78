"""The app and the host as they really fail (wt-host, wt-host2, wt-host3, wt-modes)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..consts import (
    APP_SOURCE,
    DISKFULL_SIZE,
    FD_LEAK_ENV,
    FD_LIMIT,
    HANG_ENV,
    MARKER_ENV,
    MEMCG_ROOT,
    OOM_ENV,
    OOM_LIMIT_BYTES,
    SUDOERS_D,
    SandboxError,
)
from ..proc import (
    _pids_with_env,
    _tail,
    descendants,
    http_body,
    http_status,
    kill_and_wait,
    pid_alive,
    tcp_accepts,
    wait_for,
    ws_handshake_status,
)


class HostModes:
    """The app and the host as they really fail (wt-host, wt-host2, wt-host3, wt-modes).

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- wt-host2: PM2 restarting an online app, the V8 heap limit ----------------------------------------

    @property
    def watch_log(self) -> Path:
        """restart-loop: the app's stdout inside its own (watched) directory, as in the PM2 threads."""
        return self.app_dir / "logs" / "app-out.log"

    def restarts(self) -> int:
        proc = self.app_process() or {}
        return int(proc.get("pm2_env", {}).get("restart_time") or 0)

    def _break_restart_loop(self) -> None:
        """`watch: true` with the app's own log written into the watched app dir: every line it prints (its
        "ready" line at each start) is a change, so PM2 restarts it again and again while it reads `online`."""
        logs = self.watch_log.parent
        logs.mkdir(exist_ok=True)
        self._chown(logs)
        # `pm2 start server.js --watch` (the threads' usual form): PM2 stops the node process itself at each change.
        # Through npm (npm -> sh -> node) a stop can leave the node child holding the port for a moment.
        # watch_delay: each restart waits a second after the change, so that PM2 does not restart an instance
        # still starting (under load it then loses one, which keeps the port: a port conflict on top of the loop).
        self._start_app(port=self.app_port, env={"NODE_ENV": "production"},
                        extra={"script": "server.js", "args": [], "watch": True, "watch_delay": 1000,
                               "out_file": str(self.watch_log)})
        before = self.restarts()
        wait_for("PM2 to restart the watched app at least 3 times while online",
                 lambda: self.restarts() >= before + 3 and self._app_is("online"), timeout=60, interval=0.3,
                 detail=lambda: f"pm2 status: {self.app_status()}, restarts {self.restarts()}")
        self.kill_strays()

    def kill_strays(self) -> set[int]:
        """This sandbox's app processes that PM2 no longer tracks (not below its daemon): PM2 can lose one when a
        restart hits an instance still starting. They would hold app_port for every later mode."""
        daemon = self._pm2_daemon_pid()
        tracked = descendants([daemon]) if daemon else set()
        strays = set()
        for pid in _pids_with_env(MARKER_ENV, str(self.workdir), self._pw().pw_uid) - tracked:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"server.js" in cmdline and str(self.app_dir).encode() in cmdline + str(self._cwd(pid)).encode():
                strays.add(pid)
        return kill_and_wait(strays, sig=signal.SIGKILL) if strays else set()

    @staticmethod
    def _cwd(pid: int) -> str:
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return ""

    def _break_heap_oom(self) -> None:
        """NODE_OPTIONS=--max-old-space-size=20: npm starts, the app's node dies with "JavaScript heap out of
        memory" (V8's own message, exit 134) at every start, and PM2 ends `errored` after max_restarts."""
        # In the app's own env only: PM2's CLI (node too) must not get the tiny heap.
        self._start_app(port=self.app_port, extra={"env": {"PORT": str(self.app_port),
                                                          "NODE_OPTIONS": "--max-old-space-size=20"}})
        self._wait_app_status("errored", timeout=90)
    # ---- wt-host modes (issue 12) ----------------------------------------------------------------------

    def _break_app_ipv6_only(self) -> None:
        """Node 17+ `localhost` → `::1`: the app listens on [::1]:app_port only, nginx dials 127.0.0.1."""
        self._start_app(port=self.app_port, env={"HOSTNAME": "::1"})
        self._wait_app_listening(self.app_port, host="::1")
        wait_for(f"127.0.0.1:{self.app_port} to refuse", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_pm2_started_twice(self) -> None:
        """The seed's `pm2 start npm --name <app> -- run start` run a second time (fork mode): the copy cannot bind
        the port the first one holds and crash-loops (EADDRINUSE) until PM2 gives up, while the first serves."""
        self.pm2("start", "npm", "--name", self.app_name, "--cwd", str(self.app_dir), "--", "run", "start",
                 env={"PORT": str(self.app_port)})

        def copies() -> list[dict[str, Any]]:
            return [p for p in self.pm2_jlist() if p.get("name") == self.app_name]

        def looping() -> bool:
            entries = copies()
            return len(entries) == 2 and any(
                p.get("pm2_env", {}).get("unstable_restarts", 0) >= 3 or p.get("pm2_env", {}).get("status") == "errored"
                for p in entries) and http_status(self.http_port) == 200

        wait_for("the second copy failing to start while the first serves", looping, timeout=60, interval=0.3)
        self._pm2_save()  # saved with both: the one finding is the duplicate

    def _break_pm2_killed(self) -> None:
        """`pm2 kill` after the list was saved: PM2 and the app are gone while dump.pm2 still lists the app, which is
        what a reboot leaves without `pm2 startup` (A2). The bot's own `pm2 jlist` then starts an empty daemon, as
        any PM2 command does; the app stays down until `pm2 resurrect`."""
        if not self._pm2_saved():
            self._pm2_save()
        self.pm2("kill")
        wait_for("PM2's daemon and the app to be gone",
                 lambda: not self._pm2_daemon_pid() and not tcp_accepts(self.app_port), timeout=30)

    def _break_pm2_instance_stopped(self) -> None:
        """PM2 cluster mode, two instances of the app's server.js, one of them `pm2 stop`ped (and saved so): the
        other still serves HTTP and WebSocket, so the stack is degraded, not down."""
        self._start_app(port=self.app_port, extra={
            "script": "server.js", "args": [], "exec_mode": "cluster", "instances": 2,
            "env": {"PORT": str(self.app_port), "NODE_ENV": "production"}})

        def instances() -> list[dict[str, Any]]:
            return [p for p in self.pm2_jlist() if p.get("name") == self.app_name]

        wait_for("two instances online and answering through nginx",
                 lambda: [p.get("pm2_env", {}).get("status") for p in instances()] == ["online", "online"]
                 and http_status(self.http_port) == 200, timeout=60, interval=0.3,
                 detail=lambda: _tail(self.pm2_error_log))
        last = max(int(p.get("pm_id", -1)) for p in instances())
        self.pm2("stop", str(last))
        wait_for("one instance stopped, the other still serving HTTP and WebSocket",
                 lambda: sorted(p.get("pm2_env", {}).get("status") for p in instances()) == ["online", "stopped"]
                 and http_status(self.http_port) == 200 and ws_handshake_status(self.http_port) == 101,
                 timeout=30, interval=0.2)
        self._pm2_save()  # the stop is the operator's own, saved: the one finding is the stopped instance

    def _break_app_hung(self) -> None:
        """A blocked event loop: PM2 `online`, the port accepts (kernel backlog), nothing answers."""
        self._start_app(port=self.app_port, env={HANG_ENV: "1"})
        self._wait_app_listening(self.app_port)
        wait_for("the app to stop answering HTTP", lambda: http_status(self.app_port, timeout=1.0) is None,
                 timeout=20)

    def _break_pm2_not_saved(self) -> None:
        """The app recreated (`pm2 delete` + `pm2 start`) after the last `pm2 save`: a reboot brings the old list."""
        saved_at = int(self.pm2_dump.stat().st_mtime)
        # stat's mtime is in whole seconds: start in a later second than the save, or the two look simultaneous.
        wait_for("a second after the last pm2 save", lambda: time.time() >= saved_at + 1, timeout=5, interval=0.05)
        self._start_app(port=self.app_port, save=False)
        self._wait_app_listening(self.app_port)
        wait_for("the app answering through nginx", lambda: http_status(self.http_port) == 200, timeout=30)
        if self._pm2_saved():
            raise SandboxError("the PM2 dump still covers the recreated app")

    # ---- wt-host3 modes (issue 12): a full disk and the open-files limit, for real ----------------------------

    def _diskfull_mounted(self) -> bool:
        """True when this sandbox's tmpfs is mounted (its exact mount point in /proc/self/mountinfo)."""
        want = str(self.diskfull_dir)
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return False
        # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped (none in our paths).
        return any(len(f) > 4 and f[4] == want for f in (line.split(" ") for line in lines))

    def _release_diskfull(self) -> None:
        """Unmount the disk-full tmpfs if it is mounted. Its files go with it (they were only filler and the
        mode's own log lines). Lazily (`-l`) only if a process still holds a file on it: it is detached at once
        and freed when that process lets go, so the next mode and `down()` never wait on it."""
        if not self._diskfull_mounted():
            return
        done = subprocess.run(["umount", str(self.diskfull_dir)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            done = subprocess.run(["umount", "-l", str(self.diskfull_dir)], capture_output=True, text=True,
                                  check=False)
        if done.returncode != 0 or self._diskfull_mounted():
            raise SandboxError(f"cannot unmount {self.diskfull_dir}: {done.stderr.strip()}")

    def _break_disk_full(self) -> None:
        """The app's PM2 logs on a small file system that unrotated logs filled: a tmpfs of DISKFULL_SIZE mounted
        inside this workdir, the app's `out_file` / `error_file` there, the out log grown to the last block.

        A tmpfs needs root (as the sandbox's user `wsbox` does); without root the mode says so instead."""
        if not self.is_root:
            raise SandboxError("disk-full mounts a tmpfs for the app's logs: run the sandbox as root")
        self.diskfull_dir.mkdir(mode=0o755, exist_ok=True)
        if not self._diskfull_mounted():
            pw = self._pw()
            subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={DISKFULL_SIZE},mode=0755,uid={pw.pw_uid},gid={pw.pw_gid}",
                            "wscheck-diskfull", str(self.diskfull_dir)], capture_output=True, text=True, check=True)
        out = self.diskfull_dir / f"{self.app_name}-out.log"
        err = self.diskfull_dir / f"{self.app_name}-error.log"
        self._start_app(port=self.app_port, extra={"out_file": str(out), "error_file": str(err)})
        self._wait_app_listening(self.app_port)
        wait_for("the app's ready line in its log on the tmpfs", lambda: out.exists() and out.stat().st_size > 0,
                 timeout=15, interval=0.1)
        # What months of unrotated request logging look like, appended to the app's own out log until ENOSPC.
        line = b"[kathario-saas] GET / 200 - 1.2 ms\n" * 1024
        with out.open("ab") as log:
            while True:
                try:
                    log.write(line)
                    log.flush()
                except OSError:
                    break
        wait_for(f"{self.diskfull_dir} to have no free block", lambda: os.statvfs(self.diskfull_dir).f_bavail == 0,
                 timeout=5, interval=0.1)
        wait_for("the app to answer through nginx with its log file system full",
                 lambda: http_status(self.http_port) == 200, timeout=15)

    def _break_fd_exhausted(self) -> None:
        """The app started under `ulimit -n 64` (prlimit, as a systemd `LimitNOFILE=64` or a shell's ulimit gives it)
        leaks open files (server.js, FD_LEAK_ENV) until EMFILE, logs it as node does and keeps them: new connections
        are closed at once (node's EMFILE accept path), /proc/PID/limits shows 64."""
        prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
        if prlimit is None:
            raise SandboxError("fd-exhausted needs prlimit (util-linux)")
        self._start_app(port=self.app_port, env={FD_LEAK_ENV: "1"},
                        extra={"script": prlimit, "interpreter": "none",
                               "args": [f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--", "npm", "run", "start"]})
        self._wait_app_status("online")
        wait_for("EMFILE in the app's PM2 error log",
                 lambda: self.pm2_error_log.exists() and "EMFILE" in self.pm2_error_log.read_text(errors="replace"),
                 timeout=60, interval=0.25,
                 detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}")

    # ---- wt-modes: a kernel OOM kill, a standalone build without its static assets ---------------------------

    def _memcg_procs(self) -> list[int]:
        try:
            text = (self.oom_cgroup / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(w) for w in text.split() if w.isdigit()]

    def _release_kernel_oom(self) -> None:
        """Remove this sandbox's sudoers file and memory cgroup (any process still in it goes back to the root
        cgroup first: a cgroup with a task cannot be removed). Only these two names: never another sandbox's."""
        if self.oom_sudoers.exists():
            self.oom_sudoers.unlink()
        if self.oom_cgroup.is_dir():
            for pid in self._memcg_procs():
                with contextlib.suppress(OSError):
                    (MEMCG_ROOT / "cgroup.procs").write_text(str(pid))
            self.oom_cgroup.rmdir()

    def _write_dmesg_sudoers(self) -> None:
        """`<user> may run exactly `dmesg` (no arguments) as root`, in a file of this sandbox's own, validated by
        visudo before it is put in place (a broken file in sudoers.d breaks sudo for the whole machine)."""
        dmesg = shutil.which("dmesg", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if dmesg is None or shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise SandboxError("kernel-oom needs dmesg, sudo and visudo")
        text = (f"# wscheck sandbox {self.workdir}: kernel-oom mode (removed by healing and down)\n"
                f'{self.user} ALL=(root) NOPASSWD: {dmesg} ""\n')
        tmp = SUDOERS_D / f".{self.oom_sudoers.name}.tmp"  # a name with a dot: sudo's includedir skips it
        tmp.write_text(text)
        tmp.chmod(0o440)
        check = subprocess.run(["visudo", "-c", "-q", "-f", str(tmp)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            tmp.unlink()
            raise SandboxError(f"visudo rejected the kernel-oom sudoers file: {check.stdout}{check.stderr}")
        os.replace(tmp, self.oom_sudoers)

    def _app_node_pid(self) -> int:
        """The app's `node server.js`, under PM2's pid (npm -> sh -> node)."""
        proc = self.app_process()
        root = int(proc.get("pid") or 0) if proc else 0
        for pid in sorted(descendants([root]) | {root}) if root else ():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"server.js") for a in argv) and Path(argv[0].decode(errors="replace")).name == "node":
                return pid
        raise SandboxError(f"no node server.js under PM2's pid {root}")

    def _break_kernel_oom(self) -> None:
        """The kernel's OOM killer kills the app's node: a memory cgroup of this sandbox's own (OOM_LIMIT_BYTES), the
        running node moved into it, then SIGUSR2 (server.js, OOM_ENV) makes it allocate until the kernel kills it.
        PM2 restarts the app outside the cgroup (its God Daemon is not in it), and the new node does not allocate.

        The kernel log is machine-wide and `kernel.dmesg_restrict` keeps it from the sandbox user: the mode's target
        (`target_toml(kernel_log_sudo=True)`) reads it with `sudo -n dmesg`, which a sudoers file of this sandbox's own
        allows (exactly `dmesg`, no arguments). Other sandboxes' targets read it without sudo and cannot see it.
        Root only (a cgroup, a sudoers file), like disk-full."""
        if not self.is_root:
            raise SandboxError("kernel-oom creates a memory cgroup and a sudoers file: run the sandbox as root")
        if not (MEMCG_ROOT / "cgroup.procs").exists():
            raise SandboxError(f"kernel-oom needs cgroup v1's memory controller at {MEMCG_ROOT}")
        self._write_dmesg_sudoers()
        self._start_app(port=self.app_port, env={OOM_ENV: "1"})
        self._wait_app_listening(self.app_port)
        victim = self._app_node_pid()
        self.oom_cgroup.mkdir(exist_ok=True)
        (self.oom_cgroup / "memory.limit_in_bytes").write_text(str(OOM_LIMIT_BYTES))
        (self.oom_cgroup / "cgroup.procs").write_text(str(victim))
        self.oom_victim = victim
        self._save_state()
        os.kill(victim, signal.SIGUSR2)
        wait_for(f"the kernel to OOM-kill node {victim}", lambda: not pid_alive(victim), timeout=30, interval=0.1)
        wait_for(f"'Killed process {victim}' in the kernel log",
                 lambda: f"Killed process {victim} (" in subprocess.run(
                     ["dmesg"], capture_output=True, text=True, check=False).stdout, timeout=10, interval=0.2)
        self._wait_app_listening(self.app_port)
        wait_for("the restarted app answering through nginx", lambda: http_status(self.http_port) == 200, timeout=30)
        if self._memcg_procs():
            raise SandboxError(f"the restarted app is in the OOM cgroup: {self._memcg_procs()}")

    @property
    def standalone_dir(self) -> Path:
        return self.app_dir / ".next" / "standalone"

    def _break_static_missing(self) -> None:
        """A standalone deployment without its assets: install.sh's traced `output: "standalone"` build copied to
        `<app_dir>/.next/standalone` without `.next/static` (Next's docs: copy it yourself), the generated server.js
        replaced by the app's custom server (app/standalone-server.js: Next from the standalone files, plus /ws) as
        apps with a WebSocket deploy it, run by PM2 as `node .next/standalone/server.js`. HTML 200, assets 404."""
        if not self.standalone_build or not Path(self.standalone_build, "server.js").exists():
            raise SandboxError("no standalone build in the cache: run install.sh")
        if self.standalone_dir.exists():
            shutil.rmtree(self.standalone_dir)
        subprocess.run(["cp", "-a", self.standalone_build, str(self.standalone_dir)], check=True)
        shutil.copyfile(APP_SOURCE / "standalone-server.js", self.standalone_dir / "server.js")
        shutil.copyfile(APP_SOURCE / "chat-server.js", self.standalone_dir / "chat-server.js")  # the /ws it shares
        self._chown(self.standalone_dir, recursive=True)
        self._start_app(port=self.app_port, extra={"script": str(self.standalone_dir / "server.js"), "args": [],
                                                   "cwd": str(self.standalone_dir)})
        self._wait_app_listening(self.app_port)
        page = http_body(self.app_port)
        asset = re.search(r'/_next/static/[^"]+\.js', page)
        if asset is None:
            raise SandboxError(f"no /_next/static asset in the standalone app's page: {page[:300]}")
        wait_for(f"{asset.group(0)} to be 404 through nginx",
                 lambda: http_status(self.http_port, asset.group(0)) == 404, timeout=15)
        wait_for("the page through nginx", lambda: http_status(self.http_port) == 200, timeout=15)
