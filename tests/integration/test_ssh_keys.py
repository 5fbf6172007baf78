"""Encrypted identity files and ssh-agent, against the real sandbox sshd through `wscheck check`.

Issue 9 part 4: a passphrase-protected key used to give ten tracebacks and an `unknown` diagnosis.
Now it is one clear `target_unreachable` line, or, with an agent holding the key, a working check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.config import Target
from tests.support.botproc import ROOT, bot_env
from tests.support.healthy import healthy_statuses

pytestmark = pytest.mark.sandbox

ENCRYPTED_LINE = "the key is encrypted: load it into ssh-agent or use a deploy key without a passphrase"


def encrypted_copy(sandbox_target: Target, tmp_path: Path) -> Path:
    """The sandbox's client key, re-encrypted with a passphrase (`ssh-keygen -p -N pass`)."""
    key = tmp_path / "id_encrypted"
    shutil.copyfile(sandbox_target.identity_file, key)
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "pass", "-f", str(key)], check=True,
                   capture_output=True)
    return key


def config_with(sandbox_target: Target, tmp_path: Path, identity: Path | None) -> Path:
    toml = (Path(sandbox_target.app_dir).parent / "wscheck.toml").read_text()  # the session's config file
    line = f'identity_file = "{sandbox_target.identity_file}"\n'
    assert line in toml
    config = tmp_path / "wscheck.toml"
    config.write_text(toml.replace(line, f'identity_file = "{identity}"\n' if identity else ""))
    return config


def wscheck_check(config: Path, agent_sock: str | None) -> subprocess.CompletedProcess[str]:
    env = bot_env({})
    env.pop("SSH_AUTH_SOCK", None)  # only the agent this test started, if any
    if agent_sock:
        env["SSH_AUTH_SOCK"] = agent_sock
    argv = [sys.executable, "-m", "bot.cli", "check", "--json", "--only", "pm2", "--config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of our own. `ssh-agent -s` prints its PID once the socket is bound
    (that is the started signal); the test stops exactly that PID."""
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
    match = re.search(r"SSH_AGENT_PID=(\d+)", out)
    assert match, out
    pid = int(match.group(1))
    try:
        yield str(sock)
    finally:
        os.kill(pid, signal.SIGTERM)


def ssh_add(agent_sock: str, key: Path, passphrase: str, tmp_path: Path) -> None:
    """ssh-add reads a passphrase only from a tty or SSH_ASKPASS: give it a one-line askpass script."""
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    askpass.chmod(0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSH_AUTH_SOCK": agent_sock,
           "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    subprocess.run(["ssh-add", str(key)], check=True, env=env, capture_output=True, stdin=subprocess.DEVNULL)


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    data: dict[str, Any] = json.loads(lines[0])
    return data


def test_encrypted_key_without_agent_is_one_clear_unreachable(sandbox: Any, sandbox_target: Target,
                                                               tmp_path: Path) -> None:
    key = encrypted_copy(sandbox_target, tmp_path)
    proc = wscheck_check(config_with(sandbox_target, tmp_path, key), agent_sock=None)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "KeyImportError" not in proc.stdout + proc.stderr
    data = report(proc)
    assert [d["cause"] for d in data["diagnosis"]] == ["target_unreachable"], data["diagnosis"]
    assert ENCRYPTED_LINE in json.dumps(data["diagnosis"])
    assert "Passphrase must be specified" not in json.dumps(data["diagnosis"])


def test_encrypted_key_and_an_agent_without_it_is_the_same_clear_line(sandbox: Any, sandbox_target: Target,
                                                                      tmp_path: Path, agent: str) -> None:
    key = encrypted_copy(sandbox_target, tmp_path)
    proc = wscheck_check(config_with(sandbox_target, tmp_path, key), agent_sock=agent)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = report(proc)
    assert [d["cause"] for d in data["diagnosis"]] == ["target_unreachable"], data["diagnosis"]
    assert ENCRYPTED_LINE in json.dumps(data["diagnosis"])


def test_encrypted_key_held_by_an_agent_works(sandbox: Any, sandbox_target: Target, tmp_path: Path,
                                              agent: str) -> None:
    sandbox.set_mode("healthy")
    key = encrypted_copy(sandbox_target, tmp_path)
    ssh_add(agent, key, "pass", tmp_path)
    proc = wscheck_check(config_with(sandbox_target, tmp_path, key), agent_sock=agent)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = report(proc)
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    healthy = healthy_statuses()
    assert statuses and statuses == {cid: healthy[cid].value for cid in statuses}, data


def test_no_identity_file_uses_the_agent(sandbox: Any, sandbox_target: Target, tmp_path: Path, agent: str) -> None:
    sandbox.set_mode("healthy")
    ssh_add(agent, Path(sandbox_target.identity_file), "", tmp_path)
    proc = wscheck_check(config_with(sandbox_target, tmp_path, None), agent_sock=agent)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = report(proc)
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    healthy = healthy_statuses()
    assert statuses and statuses == {cid: healthy[cid].value for cid in statuses}, data


async def test_an_encrypted_key_is_read_once_per_connection_attempt(sandbox_target: Target, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Ten checks share one failed attempt: one key read, one reason, and nothing logged as a crash."""
    import asyncssh

    from checks.runner import run_checks
    from checks.transport.ssh import SSHTransport

    reads: list[object] = []
    real_read = asyncssh.read_private_key

    def counting_read(*args: Any, **kwargs: Any) -> Any:
        reads.append(args[0])
        return real_read(*args, **kwargs)

    monkeypatch.setattr(asyncssh, "read_private_key", counting_read)
    target = sandbox_target.model_copy(update={"identity_file": str(encrypted_copy(sandbox_target, tmp_path))})
    transport = SSHTransport(target)
    try:
        result = await run_checks(target, transport)
    finally:
        await transport.aclose()
    assert len(reads) == 1, reads
    assert [d.cause for d in result.diagnosis] == ["target_unreachable"]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    command_checks = [c for c in result.checks if c.details.get("error_kind") == "unreachable"]
    assert command_checks and all("encrypted" in c.summary for c in command_checks)
