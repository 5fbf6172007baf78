"""Transports: how the checks reach a target (SSH or this machine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.transport.base import (
    ByteStream,
    CommandResult,
    CommandTimeout,
    HostKeyError,
    ProbeConnectError,
    Transport,
    TransportError,
)
from checks.transport.mock import FunctionTransport

if TYPE_CHECKING:
    from checks.config import Target

__all__ = [
    "ByteStream",
    "CommandResult",
    "CommandTimeout",
    "FunctionTransport",
    "HostKeyError",
    "ProbeConnectError",
    "Transport",
    "TransportError",
    "make_transport",
]


def make_transport(target: Target, *, agent_path: str = "") -> Transport:
    """The transport a target's config asks for. asyncssh is imported only for SSH targets (~0.2 s).

    `agent_path` is the ssh-agent socket (bot/settings.py reads SSH_AUTH_SOCK); "" = no agent."""
    if target.is_local:
        from checks.transport.local import LocalTransport

        return LocalTransport()
    from checks.transport.ssh import SSHTransport

    return SSHTransport(target, agent_path=agent_path)
