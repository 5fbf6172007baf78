"""The sandbox user and its processes, and the preparation of the user, dirs and app."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .consts import _PATH_RE, APP_SOURCE, INSTALL_SH, MARKER_ENV, SANDBOX_USER_HOME, SandboxError
from .proc import descendants


class UsersMixin:
    """The sandbox user and its processes, and the preparation of the user, dirs and app.

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- the user and its processes -------------------------------------------------------------------

    def _pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.user)

    def user_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a process run as the sandbox user.

        Built from nothing rather than from os.environ: the caller's environment may hold tokens (Slack,
        cloud), and PM2 copies the environment of `pm2 start` into the app and keeps it in its dump.
        """
        node_dir = os.path.dirname(shutil.which("node") or "/usr/bin/node")
        path = ":".join(dict.fromkeys([node_dir, "/usr/local/bin", "/usr/bin", "/bin"]))
        env = {
            "PATH": path,
            "HOME": str(self.home),
            "PM2_HOME": str(self.pm2_home),
            "NEXT_TELEMETRY_DISABLED": "1",
            "NPM_CONFIG_UPDATE_NOTIFIER": "false",
            "NPM_CONFIG_FUND": "false",
            "LANG": "C.UTF-8",
            MARKER_ENV: str(self.workdir),
        }
        env.update(extra or {})
        return env

    def _user_popen_kwargs(self) -> dict[str, Any]:
        if not self.is_root:
            return {}
        pw = self._pw()
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def run_as_user(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the sandbox user with the minimal environment (plus `env`), capturing text output."""
        try:
            result = subprocess.run(
                argv,
                env=self.user_env(env),
                cwd=cwd or self.workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                umask=0o022,
                check=False,
                **self._user_popen_kwargs(),
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from exc
        if check and result.returncode != 0:
            raise SandboxError(
                f"{' '.join(argv)} exited {result.returncode}\nstdout: {result.stdout.strip()[-2000:]}\n"
                f"stderr: {result.stderr.strip()[-2000:]}"
            )
        return result

    def _spawn_as_user(
        self, argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-lived process as the sandbox user, in its own session, output to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=self.user_env(env),
                cwd=cwd or self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                umask=0o022,
                **self._user_popen_kwargs(),
            )
        self._popen[proc.pid] = proc
        return proc

    def pm2(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached pm2 as the sandbox user, with this sandbox's PM2_HOME, in the app directory."""
        if not self.pm2_bin:
            raise SandboxError("pm2 is not known yet: call up() first")
        return self.run_as_user(
            [self.pm2_bin, *args], env=env, cwd=self.app_dir, check=check, timeout=timeout
        )

    def pm2_jlist(self) -> list[dict[str, Any]]:
        """`pm2 jlist`, parsed (PM2 may print a banner line before the JSON when it spawns its daemon)."""
        out = self.pm2("jlist", timeout=30).stdout
        start = out.find("\n[") + 1 if not out.startswith("[") else 0
        data = json.loads(out[start:])
        if not isinstance(data, list):
            raise SandboxError(f"pm2 jlist did not return a list: {out[:200]}")
        return data

    def app_process(self) -> dict[str, Any] | None:
        """The PM2 entry of the app, or None when PM2 does not know it."""
        for proc in self.pm2_jlist():
            if proc.get("name") == self.app_name:
                return proc
        return None

    def kill_app(self, sig: int = signal.SIGKILL) -> set[int]:
        """Crash this sandbox's app, as an OOM kill would: `sig` to PM2's app pid and every process under it.

        By pid, never by name: every sandbox on the machine runs the same `node server.js` as the same user.
        The app runs as `npm run start` -> `node server.js`, so the whole tree goes (npm alone would leave node
        holding the port). PM2 sees the exit and restarts the app. Returns the pids signalled.
        """
        proc = self.app_process()
        pid = int(proc.get("pid") or 0) if proc else 0
        if not self._is_ours(pid):
            raise SandboxError(f"{self.app_name} has no running process in this sandbox (pm2 pid {pid})")
        tree = {pid, *descendants([pid])}
        for member in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, sig)
        return tree

    def app_status(self) -> str:
        """PM2's status for the app (`online`, `errored`, `stopped`, ...), or `missing`."""
        proc = self.app_process()
        return str(proc.get("pm2_env", {}).get("status", "unknown")) if proc else "missing"

    @property
    def pm2_error_log(self) -> Path:
        """Where PM2 writes the app's stderr (the EADDRINUSE / missing-build messages land here)."""
        return self.pm2_home / "logs" / f"{self.app_name}-error.log"

    @property
    def pm2_out_log(self) -> Path:
        return self.pm2_home / "logs" / f"{self.app_name}-out.log"

    def _chown(self, path: Path, *, recursive: bool = False) -> None:
        """Give `path` to the sandbox user (no-op when not root); symlinks themselves, never their targets."""
        if not self.is_root:
            return
        pw = self._pw()
        os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        if recursive and path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    def _write_user_file(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        self._chown(tmp)
        tmp.replace(path)

    # ---- preparation ----------------------------------------------------------------------------------

    def _check_traversable(self, path: Path) -> None:
        """Fail early, with the fix in the message, when the sandbox user could not reach `path`.

        pytest's tmp_path (/tmp/pytest-of-root, mode 0700) is the usual trap: nginx, PM2 and sshd's
        AuthorizedKeysFile lookups would all fail later with much less obvious errors.
        """
        if not self.is_root:
            return
        pw = self._pw()
        for parent in [path, *path.parents]:
            if not parent.exists():
                continue
            st = parent.stat()
            if st.st_uid == pw.pw_uid or st.st_mode & 0o001:
                continue
            raise SandboxError(
                f"{parent} is not traversable by the sandbox user {self.user} "
                f"(mode {oct(st.st_mode & 0o777)}); "
                f"put the workdir somewhere world-traversable, e.g. tempfile.mkdtemp(dir='/tmp') + chmod 0755"
            )

    def _ensure_user(self) -> None:
        """Create the `wsbox` system user once (root only), usable for key-only SSH with UsePAM off.

        /bin/sh (dash) reads no rc file for `ssh host cmd`, so every command starts fast and prints nothing
        extra. The password field is `*` rather than useradd's `!`: with UsePAM off, sshd treats `!` as a
        locked account and refuses even public-key logins.
        """
        if not self.is_root:
            return
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            result = subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--shell",
                    "/bin/sh",
                    "--home-dir",
                    str(SANDBOX_USER_HOME),
                    "--no-create-home",
                    "--comment",
                    "wscheck sandbox",
                    self.user,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                try:  # another sandbox may have created it at the same moment
                    pwd.getpwnam(self.user)
                except KeyError:
                    raise SandboxError(f"useradd {self.user} failed: {result.stderr.strip()}") from None
        pw = self._pw()
        if pw.pw_shell != "/bin/sh":
            subprocess.run(["usermod", "--shell", "/bin/sh", self.user], check=True, capture_output=True)
        shadow = subprocess.run(["getent", "shadow", self.user], capture_output=True, text=True, check=False)
        fields = shadow.stdout.split(":")
        if len(fields) > 1 and fields[1].startswith("!"):
            subprocess.run(["usermod", "-p", "*", self.user], check=True, capture_output=True)
        home = Path(pw.pw_dir)
        if not home.is_dir():
            home.mkdir(mode=0o755, parents=True)
            os.chown(home, pw.pw_uid, pw.pw_gid)

    def install(self) -> None:
        """Run install.sh (a no-op taking milliseconds once the cache is warm) and read where things are.

        install.sh gets the caller's environment (proxies, CA bundles and npm settings it may need to reach
        the registry); only the processes run as the sandbox user get a minimal one. Its progress goes
        straight to our stderr, so a cold install (npm ci + next build) is not half a minute of silence.
        """
        env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
        env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        result = subprocess.run(
            ["bash", str(INSTALL_SH)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise SandboxError(f"install.sh failed with exit code {result.returncode} (its output is above)")
        values = dict(
            line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("WSCHECK_")
        )
        try:
            self.pm2_bin = values["WSCHECK_SANDBOX_PM2"]
            self.node_modules = values["WSCHECK_SANDBOX_NODE_MODULES"]
            self.build_dir = values["WSCHECK_SANDBOX_BUILD"]
            self.standalone_build = values["WSCHECK_SANDBOX_STANDALONE"]
        except KeyError as exc:
            raise SandboxError(f"install.sh did not report {exc}: {result.stdout[-1000:]}") from None
        for path in (self.pm2_bin, self.node_modules, self.build_dir, self.standalone_build):
            if not _PATH_RE.fullmatch(path):
                raise SandboxError(
                    f"cache path {path} has characters the bot refuses; set WSCHECK_SANDBOX_CACHE"
                )
            self._check_traversable(Path(path))

    def _prepare_dirs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self._check_traversable(self.workdir)
        for path in (self.ssh_dir, self.home, self.pm2_home, self.app_dir, self.stash_dir, self.nginx_dir):
            if path.exists():
                shutil.rmtree(path)
        self.ssh_dir.mkdir(mode=0o755)
        for path in (self.home, self.pm2_home, self.stash_dir):
            path.mkdir(mode=0o755)
            self._chown(path)
        (self.nginx_dir / "sites-enabled").mkdir(parents=True)
        (self.nginx_dir / "tmp").mkdir()
        self._chown(self.nginx_dir, recursive=True)

    def _prepare_app(self) -> None:
        """Copy the app, link node_modules to the cache and copy the cached build into it.

        The build is copied (not linked) so that breaking `.next/BUILD_ID` here never damages the cache.
        """
        shutil.copytree(
            APP_SOURCE,
            self.app_dir,
            symlinks=True,
            ignore=shutil.ignore_patterns("node_modules", ".next", ".next-dev"),
            dirs_exist_ok=True,
        )
        (self.app_dir / "node_modules").symlink_to(self.node_modules)
        subprocess.run(["cp", "-a", self.build_dir, str(self.app_dir / ".next")], check=True)
        self._chown(self.app_dir, recursive=True)
