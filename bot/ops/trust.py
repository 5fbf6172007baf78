"""`wscheck trust TARGET`: enrol a target's SSH host key on purpose.

The bot verifies host keys always and never prompts. This is the one deliberate moment a key is
trusted: the operator sees the SHA256 fingerprint (the one `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`
prints on the server), compares it, and confirms — interactively, or non-interactively by passing the
fingerprint they got from the server with `--fingerprint`. A key that differs from the one already
trusted is a loud error, never a silent replacement.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncssh

from checks.config import Target


class TrustError(Exception):
    """One line for the operator; the CLI exits non-zero."""


def known_hosts_name(target: Target) -> str:
    return target.host if target.port == 22 else f"[{target.host}]:{target.port}"


async def fetch_key(target: Target) -> asyncssh.SSHKey:
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(target.host, target.port, config=None),
                                     target.connect_timeout)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise TrustError(f"cannot fetch the host key of {target.host}:{target.port}: {exc or type(exc).__name__}") \
            from None
    if key is None:
        raise TrustError(f"{target.host}:{target.port} offered no host key")
    return key


def trusted_keys(path: Path, target: Target) -> list[asyncssh.SSHKey]:
    if not path.is_file():
        return []
    try:
        known = asyncssh.read_known_hosts(str(path))
    except (OSError, ValueError) as exc:
        raise TrustError(f"cannot read {path}: {exc}") from None
    trusted, *_ = known.match(target.host, "", target.port)
    return list(trusted)


def trust(target: Target, *, expected: str | None, assume_yes_tty: bool = True) -> str:
    """Fetch, compare, confirm, append. Returns the message to print."""
    if target.is_local:
        raise TrustError(f"{target.name} runs on this machine: there is no host key to trust")
    path = Path(target.known_hosts).expanduser()
    key = asyncio.run(fetch_key(target))
    fingerprint = key.get_fingerprint("sha256")
    algorithm = key.get_algorithm()
    existing = trusted_keys(path, target)
    if any(k.public_data == key.public_data for k in existing):
        return f"{target.host}:{target.port} is already trusted in {path} ({algorithm} {fingerprint})"
    if existing:
        old = ", ".join(k.get_fingerprint("sha256") for k in existing)
        raise TrustError(
            f"HOST KEY CHANGED for {known_hosts_name(target)}: {path} trusts {old}, the server now offers "
            f"{algorithm} {fingerprint}. This is what a man-in-the-middle looks like — or the server was "
            "reinstalled. Check on the server with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`; only if it matches, "
            f"remove the old entry with `ssh-keygen -R '{known_hosts_name(target)}' -f {path}` and run trust again."
        )
    print(f"{target.name}: {known_hosts_name(target)} offers {algorithm} key {fingerprint}")
    if expected is not None:
        if expected.strip() != fingerprint:
            raise TrustError(f"fingerprint mismatch: you expected {expected.strip()}, the server offers {fingerprint}; "
                             "nothing was written")
    elif sys.stdin.isatty() and assume_yes_tty:
        print("Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` run ON the server.")
        answer = input(f"Add this key to {path}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise TrustError("not trusted: nothing was written")
    else:
        raise TrustError("no terminal to confirm on: pass --fingerprint SHA256:… (from the server) to confirm")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{known_hosts_name(target)} {key.export_public_key('openssh').decode().strip()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)
    return f"trusted: {known_hosts_name(target)} {algorithm} {fingerprint} added to {path}"
