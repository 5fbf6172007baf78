"""Run the checklist over one asyncssh connection per target.

Why one connection: a fresh `ssh host cmd` costs a TCP + key exchange + auth round trip each time
(~0.3 s here); eight commands as channels of one warm connection take about as long as the slowest of
them. The connection is opened lazily, reused, and re-opened with backoff when it drops.

Why a semaphore of 6: OpenSSH's default MaxSessions is 10 and a channel's slot is freed a moment
after the command ends; measured here, 6 concurrent channels plus a retry on ChannelOpenError never
failed, 8-10 sometimes did.

Host keys are always verified against the configured known_hosts file: an unknown or changed key is
a HostKeyError, never a prompt and never silently accepted.

Why every command runs under `timeout -k` on the target (issue 13, docs/decisions.md): a command the bot
stops waiting for keeps running there, and sshd counts its session against MaxSessions until it exits.
Ten hung `pm2 jlist` left behind made every later check "SSH server refused a new channel". So the
target itself ends each command at `timeout` s (TERM to its process group, KILL `KILL_AFTER` s later);
the bot waits a little longer, then signals and closes the channel itself; and a channel the server
still refuses after retries drops the connection and opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from checks.messages import msg
from checks.transport.base import (
    AsyncioStream,
    ByteStream,
    CommandResult,
    CommandTimeout,
    HostKeyError,
    ProbeConnectError,
    Transport,
    TransportError,
    os_reason,
)

if TYPE_CHECKING:
    from checks.config import Target

MAX_CHANNELS = 6
_CHANNEL_RETRIES = 4
_BACKOFF_START = 1.0
_BACKOFF_MAX = 30.0
#: Seconds between `timeout`'s TERM and its KILL on the target (a command that ignores TERM still ends).
KILL_AFTER = 2.0
#: How long past the target's own deadline (timeout + KILL_AFTER) the bot waits before giving up the channel.
_GRACE = 2.0
#: `timeout`'s exit status when it ended the command (124), and when it had to KILL it (128 + 9).
_TIMED_OUT = 124
_KILLED = 137
#: dash's "sh: 1: timeout: not found", bash's "bash: line 1: timeout: command not found".
_SHELL_NO_TIMEOUT = re.compile(r": timeout: (?:command )?not found")


def remote_argv(argv: Sequence[str], timeout: float) -> list[str]:
    """argv bounded on the target: `timeout` (coreutils; busybox >= 1.30) ends it and its process group.

    Outside any `sudo`, so the sudoers allow-list names the commands themselves; a sudo'd command is
    ended through sudo, which relays the TERM to it.
    """
    return ["timeout", "-k", f"{KILL_AFTER:g}", f"{timeout:g}", *argv]


class SSHTransport(Transport):
    kind = "ssh"

    def __init__(self, target: Target, *, max_channels: int = MAX_CHANNELS, agent_path: str = "") -> None:
        self.target = target
        #: The ssh-agent socket (SSH_AUTH_SOCK, read by bot/settings.py); "" = no agent.
        self.agent_path = agent_path
        #: The identity_file is encrypted and only the agent can sign for it (set per connection attempt).
        self._key_via_agent = False
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(max_channels)
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: TransportError | None = None
        #: Connection attempts begun: a caller that queued behind one that failed shares its error.
        self._attempts = 0
        self.connects = 0

    # -- connection management -------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        target = self.target
        known_hosts = Path(target.known_hosts).expanduser()
        if not known_hosts.is_file():
            raise HostKeyError(msg("transport.known_hosts_missing", path=str(known_hosts), host=target.host,
                                   target=target.name))
        options: dict[str, Any] = {
            "port": target.port,
            "known_hosts": str(known_hosts),
            "config": None,  # the bot's behaviour must not depend on whoever's ~/.ssh/config
            "keepalive_interval": 15,
            "keepalive_count_max": 3,
        }
        if target.user:
            options["username"] = target.user
        # Passed explicitly so that asyncssh never reads SSH_AUTH_SOCK from the environment itself.
        options["agent_path"] = self.agent_path or None
        self._key_via_agent = False
        if target.identity_file:
            options.update(self._identity_options(Path(target.identity_file).expanduser()))
        return options

    def _identity_options(self, identity: Path) -> dict[str, Any]:
        """Load the key once per connection attempt, here rather than inside asyncssh.

        Why: asyncssh raises KeyImportError (not an asyncssh.Error) for an encrypted key, from inside
        connect(), on every check; loading it first turns that into one clear TransportError, and lets
        an ssh-agent that holds the key sign for it instead.
        """
        if not identity.is_file():
            raise TransportError(msg("transport.identity_missing", path=str(identity)))
        try:
            key = asyncssh.read_private_key(identity)
        except asyncssh.KeyImportError as exc:
            if "passphrase" not in str(exc).lower():
                raise TransportError(msg("transport.identity_unreadable", path=str(identity)),
                                     details={"library_error": str(exc)}) from None
            if not self.agent_path:
                raise TransportError(msg("transport.key_encrypted", path=str(identity))) from None
            self._key_via_agent = True
            # ignore_encrypted drops the file key and leaves client_keys an empty list, which keeps
            # the agent on (client_keys=None would turn public-key auth off altogether).
            return {"client_keys": [str(identity)], "ignore_encrypted": True, "agent_path": self.agent_path}
        except OSError as exc:
            raise TransportError(msg("transport.identity_unreadable", path=str(identity)),
                                 details={"library_error": exc.strerror or str(exc)}) from None
        return {"client_keys": [key], "agent_path": None}

    async def _connection(self) -> asyncssh.SSHClientConnection:
        seen = self._attempts
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return conn
            self._conn = None
            last = self._last_error
            # Callers that queued behind a failed attempt share its outcome (one attempt per burst of
            # commands, not eight); a later call tries again at once unless a human must fix something.
            if last is not None and (self._attempts != seen or time.monotonic() < self._retry_at):
                # The same words as the attempt's, and no countdown: alert texts are kept, and a frozen
                # "next attempt in N s" in them would be wrong the moment it was posted (issue 13, 15).
                raise type(last)(last.msg, details={**last.details, "repeated": True})
            self._attempts += 1
            try:
                conn = await asyncio.wait_for(
                    asyncssh.connect(self.target.host, **self._options()), self.target.connect_timeout
                )
            except TransportError as exc:
                self._fail(exc, human=True)
                raise
            except asyncssh.HostKeyNotVerifiable as exc:
                err: TransportError = HostKeyError(msg(
                    "transport.host_key", host=self.target.host, port=self.target.port,
                    reason=f"known_hosts {self.target.known_hosts}", target=self.target.name),
                    details={"library_error": str(exc.reason)})
                self._fail(err, human=True)
                raise err from None
            except asyncssh.PermissionDenied:
                if self._key_via_agent:  # the agent does not hold the encrypted key: same advice as no agent
                    err = TransportError(msg("transport.key_encrypted", path=self.target.identity_file))
                else:
                    err = TransportError(msg("transport.login_refused", host=self.target.host,
                                             user=self.target.user or msg("transport.default_user")))
                self._fail(err, human=True)
                raise err from None
            except TimeoutError:
                err = TransportError(msg("transport.ssh_timeout", host=self.target.host, port=self.target.port,
                                         timeout=self.target.connect_timeout))
                self._fail(err)
                raise err from None
            except OSError as exc:
                err = TransportError(msg("transport.unreachable", host=self.target.host, port=self.target.port,
                                         reason=os_reason(exc)), details={"library_error": str(exc)})
                self._fail(err)
                raise err from None
            except asyncssh.Error as exc:
                # The library's words (e.g. a disconnect reason) go to details; the summary says ours.
                err = TransportError(msg("transport.ssh_failed", host=self.target.host, port=self.target.port),
                                     details={"library_error": str(exc.reason or exc)})
                self._fail(err)
                raise err from None
            self._conn = conn
            self._last_error = None
            self._backoff = 0.0
            self.connects += 1
            return conn

    def _fail(self, exc: TransportError, *, human: bool = False) -> None:
        """Remember a failed attempt; back off only from what a human must fix (key, login, host key).

        Why not from network failures: the next attempt is the next scheduled run anyway, and a backoff
        there only delays seeing the target come back (issue 13, 15: up to 30 s after SSH recovered).
        Failed logins are another matter: repeating them feeds the target's fail2ban / PerSourcePenalties.
        """
        self._last_error = exc
        if human:
            self._backoff = min(_BACKOFF_MAX, self._backoff * 2 if self._backoff else _BACKOFF_START)
            self._retry_at = time.monotonic() + self._backoff
        else:
            self._backoff = 0.0
            self._retry_at = 0.0

    def reset_backoff(self) -> None:
        """Let the next call try to connect at once (an operator asked explicitly)."""
        self._retry_at = 0.0

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.abort()

    async def aclose(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    # -- the interface ---------------------------------------------------------------------------

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        command = shlex.join(remote_argv(argv, timeout))
        started = time.perf_counter()
        async with self._channels:
            rebuilt = False
            attempt = 0
            while True:
                conn = await self._connection()
                try:
                    proc = await conn.create_process(command, encoding="utf-8", errors="replace",
                                                     stdin=asyncssh.DEVNULL)
                except asyncssh.ChannelOpenError as exc:
                    if attempt < _CHANNEL_RETRIES:
                        await asyncio.sleep(0.02 * 2**attempt)
                        attempt += 1
                        continue
                    if not rebuilt:
                        # The server keeps refusing channels on this connection (its MaxSessions is full of
                        # sessions it still counts): a fresh connection starts with none.
                        self._drop(conn)
                        rebuilt, attempt = True, 0
                        continue
                    raise TransportError(msg("transport.channel_refused"),
                                         details={"library_error": str(exc.reason)}) from None
                except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
                    self._drop(conn)
                    if attempt == 0 and not rebuilt:
                        rebuilt = True
                        continue  # a reused connection died while idle: one fresh attempt
                    raise TransportError(msg("transport.connection_lost", host=self.target.host),
                                         details={"library_error": str(exc)}) from None
                break
            try:
                done = await proc.wait(check=False, timeout=timeout + KILL_AFTER + _GRACE)
            except TimeoutError:
                _abandon(proc)
                raise CommandTimeout(msg("transport.command_timeout", command=argv[0], timeout=timeout)) from None
            except asyncio.CancelledError:
                _abandon(proc)
                raise
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
                self._drop(conn)
                raise TransportError(msg("transport.connection_lost", host=self.target.host),
                                     details={"library_error": str(exc)}) from None
            finally:
                proc.close()
        duration_ms = (time.perf_counter() - started) * 1000
        status = done.exit_status
        if status is None:
            status = 128 + 9 if done.exit_signal else -1
        stderr = _text(done.stderr)
        if status == _TIMED_OUT or (status == _KILLED and duration_ms >= timeout * 1000):
            raise CommandTimeout(msg("transport.command_timeout", command=argv[0], timeout=timeout))
        if status == 127 and _no_timeout(stderr):
            raise TransportError(msg("transport.no_timeout", host=self.target.host),
                                 details={"library_error": stderr.strip()[-300:]})
        return CommandResult(
            argv=tuple(argv),
            exit_status=status,
            stdout=_text(done.stdout),
            stderr=stderr,
            duration_ms=duration_ms,
        )

    async def open_tcp(self, host: str, port: int, *, timeout: float) -> ByteStream:
        """A direct-tcpip channel: the target needs no curl, and nothing listens on the bot's side."""
        conn = await self._connection()
        try:
            reader, writer = await asyncio.wait_for(conn.open_connection(host, port), timeout)
        except asyncssh.ChannelOpenError as exc:
            raise ProbeConnectError(msg("probe.target_failed", host=host, port=port, reason=str(exc.reason))) from None
        except TimeoutError:
            raise ProbeConnectError(msg("probe.target_timed_out", host=host, port=port)) from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
            self._drop(conn)
            raise TransportError(msg("transport.connection_lost", host=self.target.host),
                                 details={"library_error": str(exc)}) from None
        return AsyncioStream(reader, writer)  # type: ignore[arg-type]  # SSHReader/Writer quack alike


def _abandon(proc: asyncssh.SSHClientProcess[Any]) -> None:
    """Stop waiting for a command: ask sshd to KILL it (RFC 4254 "signal"), then close the channel.

    The target's own `timeout` is what really bounds it; this covers a target where that failed.
    """
    with contextlib.suppress(Exception):  # the channel may already be gone; closing is what matters
        proc.kill()
    proc.close()


def _no_timeout(stderr: str) -> bool:
    """The shell found no `timeout` itself ("sh: 1: timeout: not found"), as opposed to `timeout` not
    finding the command it runs ("timeout: failed to run command 'pm2'"), which is the check's finding."""
    return _SHELL_NO_TIMEOUT.search(stderr) is not None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)

