"""The sandbox's own sshd on 127.0.0.1, its keys and logins."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from pathlib import Path

from .consts import _USER_RE, SandboxError
from .proc import _tail, pick_free_port, wait_for


class SshdMixin:
    """The sandbox's own sshd on 127.0.0.1, its keys and logins.

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- sshd -----------------------------------------------------------------------------------------

    def _sshd_version(self) -> tuple[int, int]:
        result = subprocess.run([self.sshd_bin, "-V"], capture_output=True, text=True, check=False)
        match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stdout + result.stderr)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def _keygen(self, path: Path, comment: str) -> None:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )

    def _write_sshd_config(self) -> None:
        lines = [
            "# sshd of the wscheck sandbox: 127.0.0.1 only, key-only, one user, local forwarding for the bot",
            f"Port {self.ssh_port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.sshd_pid_file}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowUsers " + " ".join([self.user, *self.login_users]),
            "PermitRootLogin no",
            "AllowTcpForwarding local",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "GatewayPorts no",
            "MaxSessions 10",
            "MaxStartups 100:30:200",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        if self._sshd_version() >= (9, 8):
            # Newer sshd penalises sources that fail auth; the bot's tests fail auth on purpose.
            lines.append("PerSourcePenalties no")
        if self.login_users:
            # Extra logins authenticate like on a real server: keys from their own home, which is where
            # deploy/target/setup-target.sh puts the bot's restricted key. The sandbox key stays wsbox's only.
            lines += [
                f"Match User {','.join(self.login_users)}",
                "    AuthorizedKeysFile .ssh/authorized_keys",
            ]
        self.sshd_config.write_text("\n".join(lines) + "\n")

    def add_login_user(self, name: str) -> None:
        """Let the existing system user `name` log in over this sandbox's SSH too (root only; opt-in).

        By default only the sandbox user may log in. A test of a least-privilege login (a user that owns
        nothing and reaches PM2 and nginx through sudo) creates that user itself, installs its key in
        `~name/.ssh/authorized_keys` (sshd's usual place, restrictions included), then calls this. A running
        sshd re-reads its config (SIGHUP); open SSH sessions are not affected.
        """
        if not self.is_root:
            raise SandboxError("a second SSH login needs a root sandbox (sshd runs as the caller otherwise)")
        if not _USER_RE.fullmatch(name) or name == self.user:
            raise SandboxError(f"{name!r} is not a valid extra login user")
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise SandboxError(f"no system user {name!r}: create it first") from None
        if name in self.login_users:
            return
        self.login_users.append(name)
        try:
            self._apply_sshd_config()
        except BaseException:
            self.login_users.remove(name)
            self._save_state()
            raise

    def remove_login_user(self, name: str) -> None:
        """Undo add_login_user: `name` can no longer log in (its open sessions are not killed)."""
        if name in self.login_users:
            self.login_users.remove(name)
            self._apply_sshd_config()

    def _apply_sshd_config(self) -> None:
        """Rewrite sshd_config and have a running sshd load it; return once it listens again."""
        self._save_state()
        if not self._is_ours(self.sshd_pid):
            return  # the next up() writes it
        previous = self.sshd_config.read_text()
        self._write_sshd_config()
        test = subprocess.run(
            [self.sshd_bin, "-t", "-f", str(self.sshd_config)], capture_output=True, text=True, check=False
        )
        if test.returncode != 0:
            self.sshd_config.write_text(previous)
            raise SandboxError(f"sshd -t refused the new config: {test.stderr.strip()}")
        before = self.sshd_log.read_text(errors="replace").count("Server listening on")
        os.kill(self.sshd_pid, signal.SIGHUP)  # sshd -D re-executes itself: same pid, same port
        wait_for(
            "sshd to listen again after SIGHUP",
            lambda: self.sshd_log.read_text(errors="replace").count("Server listening on") > before,
            timeout=20,
            detail=lambda: _tail(self.sshd_log),
        )
        wait_for(
            f"an SSH login as {self.user}",
            self._ssh_login_works,
            timeout=20,
            interval=0.3,
            detail=lambda: _tail(self.sshd_log),
        )

    def _start_sshd(self) -> None:
        """sshd -D -e with its own config; ready when it logs "Server listening on" (retries busy ports)."""
        if self.is_root:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._keygen(self.host_key, "wscheck-sandbox-host")
        self._keygen(self.identity_file, "wscheck-sandbox-client")
        self.authorized_keys.write_text(Path(f"{self.identity_file}.pub").read_text())
        self.authorized_keys.chmod(0o644)
        for _attempt in range(5):
            self.ssh_port = pick_free_port(self._ports())
            self._write_sshd_config()
            self.sshd_log.write_bytes(b"")
            with self.sshd_log.open("ab") as log:
                proc = subprocess.Popen(
                    [self.sshd_bin, "-D", "-e", "-f", str(self.sshd_config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                )
            self._popen[proc.pid] = proc
            self.sshd_pid = proc.pid
            self._save_state()

            def listening(proc: subprocess.Popen[bytes] = proc) -> str | None:
                text = self.sshd_log.read_text(errors="replace")
                if "Server listening on" in text:
                    return "listening"
                if proc.poll() is not None:
                    return "exited"
                return None

            outcome = wait_for(
                "sshd to log 'Server listening on'",
                listening,
                timeout=20,
                detail=lambda: _tail(self.sshd_log),
            )
            if outcome == "listening":
                break
            if "Address already in use" not in self.sshd_log.read_text(errors="replace"):
                raise SandboxError(f"sshd exited at start\n{_tail(self.sshd_log)}")
        else:
            raise SandboxError(f"sshd could not bind a port after 5 tries\n{_tail(self.sshd_log)}")
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[{self.host}]:{self.ssh_port} {key_type} {key}\n")
        wait_for(
            f"an SSH login as {self.user}",
            self._ssh_login_works,
            timeout=20,
            interval=0.3,
            detail=lambda: _tail(self.sshd_log),
        )

    def ssh_argv(self, *command: str) -> list[str]:
        """OpenSSH client argv for this sandbox, with strict host key checking against our known_hosts."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.identity_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.ssh_port),
            f"{self.user}@{self.host}",
            *command,
        ]

    def _ssh_login_works(self) -> bool:
        result = subprocess.run(
            self.ssh_argv("true"),
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"ssh exited {result.returncode}: {result.stderr.strip()}")
        return True
