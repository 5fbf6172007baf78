"""Run the checklist on this machine: subprocess with an argv list, never a shell."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from checks.messages import msg
from checks.transport.base import (
    AsyncioStream,
    ByteStream,
    CommandResult,
    CommandTimeout,
    ProbeConnectError,
    Transport,
    TransportError,
    os_reason,
)

#: Variables a child may see. The bot's own environment holds Slack tokens; `pm2 restart
#: --update-env` would copy whatever it gets into the app's saved environment, so children get
#: only what tools need to run.
_PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ")


def child_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["LC_ALL"] = "C"
    return env


class LocalTransport(Transport):
    kind = "local"

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(),
                start_new_session=True,
            )
        except FileNotFoundError:
            return CommandResult(tuple(argv), 127, "", f"{argv[0]}: command not found", 0.0)
        except PermissionError:
            return CommandResult(tuple(argv), 126, "", f"{argv[0]}: permission denied", 0.0)
        except OSError as exc:
            raise TransportError(msg("transport.cannot_start", command=argv[0], error=str(exc))) from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CommandTimeout(msg("transport.command_timeout", command=argv[0], timeout=timeout)) from None
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return CommandResult(
            argv=tuple(argv),
            exit_status=proc.returncode if proc.returncode is not None else -1,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def open_tcp(self, host: str, port: int, *, timeout: float) -> ByteStream:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except TimeoutError:
            raise ProbeConnectError(msg("probe.timed_out", host=host, port=port)) from None
        except OSError as exc:
            raise ProbeConnectError(msg("probe.failed", host=host, port=port, reason=os_reason(exc))) from None
        return AsyncioStream(reader, writer)
