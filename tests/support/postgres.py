"""A real, private PostgreSQL server for the tests: its own data directory and port, started and stopped by PID.

Why not the distribution's service: tests must not touch system services, several checkouts may run their suites
at once, and CI runs as root, which `postgres` refuses to be. So: `initdb` into a fresh temporary directory (owned
by the `postgres` OS user when we are root; deploy/sandbox/install.sh installs the binaries without creating any
cluster), `postgres -D <dir> -p <free port>` bound to 127.0.0.1 with a password (scram-sha-256) so that URLs carry a
real secret, readiness by `pg_isready` (a real answer from the server, polled), and at the end SIGINT (fast
shutdown) to the postmaster's PID and the directory removed. Durability is off (fsync, full_page_writes): the data
is thrown away, and the tests are about behaviour, not crash safety of PostgreSQL itself.

Every test gets a database of its own (`create_database`): advisory locks, sequences and the schema are all per
database, exactly as for two deployments sharing a server.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

START_TIMEOUT = 60.0
USER = "wscheck"


def bin_dir() -> Path:
    """The newest installed server binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run "
                           "deploy/sandbox/install.sh (scripts/test.sh does), or apt-get install -y postgresql")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server process. `up()` / `down()`; `url(dbname)` with the password, for the code under test."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.workdir = Path(tempfile.mkdtemp(prefix="wscheck-pg-", dir="/tmp"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # postgres refuses root; the package's own system user is the natural owner
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("postgres refuses to run as root and there is no `postgres` user: install the "
                                   "postgresql package (deploy/sandbox/install.sh does), or run the tests as "
                                   "another user") from None
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        self.workdir.chmod(0o700)

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.workdir, **self._as)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def up(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        pwfile.unlink()
        for _ in range(5):  # another checkout may grab the free port between our probe and the bind
            self.port = _free_port()
            if self._start():
                return
        raise RuntimeError(f"postgres could not bind a port; log: {self.log}")

    def _start(self) -> bool:
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.workdir),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=40", "-c", "shared_buffers=32MB"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, **self._as)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log.read_text(errors="replace")
                if "could not bind" in text or "Address already in use" in text:
                    self.log.write_text("")
                    return False
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {text[-2000:]}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-t", "2"], timeout=10, check=False)
            if ready.returncode == 0:
                return True
            time.sleep(0.05)  # poll interval between two real readiness probes, not a wait for an assumed state
        self.down()
        raise RuntimeError(f"postgres not ready after {START_TIMEOUT}s: {self.log.read_text(errors='replace')[-2000:]}")

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{USER}:{secret}@127.0.0.1:{self.port}/{dbname}"

    async def create_database(self) -> str:
        """A fresh, empty database; its name."""
        import asyncpg

        name = "t_" + secrets.token_hex(6)
        conn = await asyncpg.connect(self.url())
        try:
            # ICU's English collation by default, like many installed and managed servers: a query that relied on
            # the database's default order (instead of the store's byte-order "C" columns) would differ from SQLite.
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING UTF8 LOCALE_PROVIDER icu '
                               "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def down(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: roll back sessions, stop cleanly
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        if not os.environ.get("WSCHECK_KEEP_POSTGRES"):
            shutil.rmtree(self.workdir, ignore_errors=True)
