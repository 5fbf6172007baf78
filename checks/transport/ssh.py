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
target itself ends each command at `timeout` s (TERM to its process group, KILL `KILL_AFTER` s later; a batch
of commands in one channel runs under one `timeout` that ends them all);
the bot waits a little longer, then signals and closes the channel itself; and a channel the server
still refuses after retries drops the connection and opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
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
from checks.transport.batch import BatchReader, batch_script, new_nonce

if TYPE_CHECKING:
    from checks.config import Target

log = logging.getLogger(__name__)

MAX_CHANNELS = 6
#: How long one command of a batch may keep the commands after it waiting before they also start on their own
#: channels (wt-perf). Every command of the checklist's round ends within ~50 ms on a healthy host.
BATCH_PATIENCE = 1.0
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


#: The ciphers offered, AES-GCM first: asyncssh's own first choice, chacha20-poly1305, costs the bot two cipher
#: objects and a separate Poly1305 per packet, where AES-GCM is one call (AES-NI on any server CPU of the last decade).
#: Measured on the sandbox: the bot's CPU per full checklist 49 ms with chacha20, 44 ms with aes128-gcm
#: (bench/RESULTS.md, "CPU budget"). Same set as asyncssh's default, only the order differs: nothing is weakened,
#: and a server without AES-GCM still gets chacha20 or AES-CTR.
CIPHER_PREFERENCE: tuple[str, ...] = (
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
    "aes256-ctr", "aes192-ctr", "aes128-ctr",
)


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
        #: Batches in which a command kept the others waiting past BATCH_PATIENCE (wt-perf; for the benchmarks).
        self.batch_fallbacks = 0

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
            "encryption_algs": list(CIPHER_PREFERENCE),
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

    async def _open(self, command: str, what: str) -> tuple[asyncssh.SSHClientConnection,
                                                           asyncssh.SSHClientProcess[Any]]:
        """A process for `command` on a channel of the (re)opened connection; the caller holds a channel slot."""
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
            return conn, proc

    @contextlib.contextmanager
    def _on_channel(self, conn: asyncssh.SSHClientConnection, proc: Any) -> Iterator[None]:
        """What ends a channel's use, the same for one command and for a batch: a cancelled caller abandons the
        remote process (its `timeout -k` ends it there), a lost connection is dropped (the next call rebuilds it)
        and said as the target's, and the channel is closed whatever happened."""
        try:
            yield
        except asyncio.CancelledError:
            _abandon(proc)
            raise
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
            self._drop(conn)
            raise TransportError(msg("transport.connection_lost", host=self.target.host),
                                 details={"library_error": str(exc)}) from None
        finally:
            proc.close()

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        command = shlex.join(remote_argv(argv, timeout))
        started = time.perf_counter()
        async with self._channels:
            conn, proc = await self._open(command, argv[0])
            with self._on_channel(conn, proc):
                try:
                    done = await proc.wait(check=False, timeout=timeout + KILL_AFTER + _GRACE)
                except TimeoutError:
                    _abandon(proc)
                    raise CommandTimeout(msg("transport.command_timeout", command=argv[0],
                                             timeout=timeout)) from None
        status = done.exit_status
        if status is None:
            status = 128 + 9 if done.exit_signal else -1
        return self._finish(argv, status, _text(done.stdout), _text(done.stderr),
                            (time.perf_counter() - started) * 1000, timeout)

    def _finish(self, argv: Sequence[str], status: int, stdout: str, stderr: str, duration_ms: float,
                timeout: float, *, own_timeout: bool = True) -> CommandResult:
        """A command's result as the checks see it, whether it ran on its own channel or in a batch.

        `own_timeout`: the command ran under its own `timeout`, so 124 / 137 and "timeout: not found" are
        `timeout`'s words; in a batch the commands run bare (the batch's `timeout` bounds them all) and their
        status is their own."""
        if own_timeout and (status == _TIMED_OUT or (status == _KILLED and duration_ms >= timeout * 1000)):
            raise CommandTimeout(msg("transport.command_timeout", command=argv[0], timeout=timeout))
        if own_timeout and status == 127 and _no_timeout(stderr):
            raise TransportError(msg("transport.no_timeout", host=self.target.host),
                                 details={"library_error": stderr.strip()[-300:]})
        return CommandResult(argv=tuple(argv), exit_status=status, stdout=stdout, stderr=stderr,
                             duration_ms=duration_ms)

    # -- batches (wt-perf): the commands of one round in one channel, one after another --------------------------

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        """One channel runs them in order (checks.transport.batch); each result is handed over as soon as its
        command ends. Nothing else changes for the checks: the same argv, the same `timeout`, the same
        errors. Should one command keep the batch waiting longer than BATCH_PATIENCE s, the commands after it
        also start on their own channels, and whichever answer comes first counts: a hung `df` delays the
        others by at most that much, not by its timeout."""
        if len(argvs) < 2:
            return super().start_many(argvs, timeout=timeout)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[CommandResult]] = [loop.create_future() for _ in argvs]
        task = asyncio.ensure_future(self._batch([tuple(a) for a in argvs], futures, timeout))

        def all_done(_fut: object) -> None:
            if all(f.done() for f in futures) and not task.done():
                task.cancel()  # every caller gave up (a cancelled run): stop the batch on the target too

        for fut in futures:
            fut.add_done_callback(all_done)
        return futures

    async def _batch(self, argvs: list[tuple[str, ...]], futures: list[asyncio.Future[CommandResult]],
                     timeout: float) -> None:
        fallbacks: dict[int, asyncio.Task[CommandResult]] = {}

        def fall_back(first: int) -> None:
            for j in range(first, len(argvs)):
                if j in fallbacks or futures[j].done():
                    continue
                solo = asyncio.ensure_future(self.run(argvs[j], timeout=timeout))
                fallbacks[j] = solo
                solo.add_done_callback(functools.partial(_settle_from, futures[j]))

        try:
            async with self._channels:
                await self._drive(argvs, futures, timeout, fall_back, fallbacks)
        except asyncio.CancelledError:
            for j, fut in enumerate(futures):
                if not fut.done() and j not in fallbacks:
                    fut.cancel()
            raise
        except (TransportError, CommandTimeout) as exc:
            for j, fut in enumerate(futures):
                if not fut.done() and j not in fallbacks:
                    fut.set_exception(type(exc)(exc.msg, details=exc.details))
        except _BatchEnded as exc:
            log.debug("batch on %s ended after %d of %d commands; the rest run on their own channels",
                      self.target.name, exc.done, len(argvs))
            fall_back(exc.done)
        except Exception as exc:  # a broken marker: a bug or a strange shell; the commands run on their own
            log.warning("batch of %d commands failed (%s: %s); running them one by one", len(argvs),
                        type(exc).__name__, exc)
            fall_back(0)

    async def _drive(self, argvs: list[tuple[str, ...]], futures: list[asyncio.Future[CommandResult]],
                     timeout: float, fall_back: Callable[[int], None],
                     fallbacks: dict[int, asyncio.Task[CommandResult]]) -> None:
        nonce = new_nonce()
        # One `timeout` for the whole batch, not one per command: it ends the batch's shell and every command in
        # its process group at `timeout` s, and saves a fork and an exec per command (~1 ms of the target's CPU
        # each, 20-odd per round; bench/RESULTS.md, "CPU budget"). A command stuck in the batch is still bounded:
        # after BATCH_PATIENCE the commands after it run on their own channels, and the batch's end is its end.
        script = batch_script([shlex.join(a) for a in argvs], nonce)
        conn, proc = await self._open(shlex.join(remote_argv(["sh", "-c", script], timeout)), "sh")
        began = [time.perf_counter()]
        progress = asyncio.Event()

        def done(i: int, status: int, out: str, err: str) -> None:
            now = time.perf_counter()
            duration_ms, began[0] = (now - began[0]) * 1000, now
            fut = futures[i]
            solo = fallbacks.pop(i, None)
            if solo is not None:
                solo.cancel()
            if fut.done():
                return
            try:
                fut.set_result(self._finish(argvs[i], status, out, err, duration_ms, timeout, own_timeout=False))
            except (CommandTimeout, TransportError) as exc:
                fut.set_exception(exc)

        reader = BatchReader(nonce, len(argvs), done)

        async def pump(stream: asyncssh.SSHReader[str], feed: Callable[[str], None]) -> None:
            try:
                while chunk := await stream.read(65536):
                    feed(chunk)
                    progress.set()
            finally:
                progress.set()

        pumps = [asyncio.ensure_future(pump(proc.stdout, reader.feed_stdout)),
                 asyncio.ensure_future(pump(proc.stderr, reader.feed_stderr))]
        fell_back = False
        try:
            with self._on_channel(conn, proc):
                while not reader.complete:
                    for p in pumps:
                        if p.done() and p.exception() is not None:
                            raise p.exception()  # type: ignore[misc]
                    if all(p.done() for p in pumps):
                        i = reader.done
                        if time.perf_counter() - began[0] >= timeout * _TIMED_OUT_SHARE:
                            # The batch's `timeout` ended it while command i had run most of its time: i timed out
                            # (running it again would double the wait for a hung command); the rest run on their own.
                            futures[i].set_exception(CommandTimeout(msg("transport.command_timeout",
                                                                        command=argvs[i][0], timeout=timeout)))
                            fall_back(i + 1)
                            return
                        # The script ended early: a login shell that cannot run it (csh and a multi-line quote), a
                        # killed session, or the batch's `timeout` while i had just begun (slow commands before it).
                        # The rest run on their own channels, which say what is wrong if anything is.
                        raise _BatchEnded(i)
                    now = time.perf_counter()
                    hard = began[0] + timeout + KILL_AFTER + _GRACE
                    if now >= hard:
                        fall_back(reader.done + 1)
                        i = reader.done
                        if not futures[i].done():
                            futures[i].set_exception(CommandTimeout(msg("transport.command_timeout",
                                                                        command=argvs[i][0], timeout=timeout)))
                        _abandon(proc)
                        return
                    soft = began[0] + BATCH_PATIENCE
                    if now >= soft and not fell_back:
                        # A busy event loop (hundreds of targets) may not have read what already arrived: look again
                        # after the reads had their turn, so the bot's own lateness does not double the commands.
                        done_before = reader.done
                        for _ in range(3):
                            await asyncio.sleep(0)
                        if reader.done != done_before or reader.complete:
                            continue
                        self.batch_fallbacks += 1
                        log.debug("batch on %s: %s still running after %g s; the %d command(s) after it start on their "
                                  "own channels", self.target.name, argvs[reader.done][0], BATCH_PATIENCE,
                                  len(argvs) - reader.done - 1)
                        fall_back(reader.done + 1)
                        fell_back = True
                    progress.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(progress.wait(), (hard if fell_back else soft) - now)
        finally:
            for p in pumps:
                p.cancel()

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


#: In a batch ended by its `timeout`, the command then running timed out if it had run this share of `timeout`
#: itself; otherwise the commands before it took the time, and it runs again on its own channel with its own.
_TIMED_OUT_SHARE = 0.5


class _BatchEnded(Exception):
    """A batch's output ended before its last command's markers; `done` commands were answered."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def _settle_from(fut: asyncio.Future[CommandResult], solo: asyncio.Task[CommandResult]) -> None:
    """A command's own run (the batch's fallback) answered: its outcome is the command's, unless the batch's came
    first."""
    if fut.done() or solo.cancelled():
        return
    exc = solo.exception()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(solo.result())


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

