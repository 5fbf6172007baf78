"""SSH failures are said in our words; asyncssh's own words stay in `details` (issue 9 part 7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from checks.config import Target
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport


async def test_a_non_ssh_server_is_our_words_with_the_library_words_in_details(tmp_path: Path) -> None:
    async def not_ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-1.0-ancient\r\n")  # a protocol version asyncssh refuses
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_ssh, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = Target.model_validate({"name": "web", "host": "127.0.0.1", "port": port, "known_hosts": str(known),
                                    "pm2_app": "app", "app_port": 3003, "app_dir": "/srv/app"})
    transport = SSHTransport(target)
    try:
        report = await run_checks(target, transport, ["pm2.status"])
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
    (result,) = report.checks
    assert result.details["error_kind"] == "unreachable"
    library = str(result.details["library_error"])
    assert library and library not in result.summary
    assert result.summary.startswith(f"cannot reach 127.0.0.1:{port}")
    assert [c.cause for c in report.diagnosis] == ["target_unreachable"]
    assert library not in report.diagnosis[0].summary
