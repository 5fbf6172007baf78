"""A real Nginx -> PM2 -> Next.js 15 stack on 127.0.0.1, reachable over SSH, that can be broken on demand.

The CLI of deploy/sandbox/sandbox.py (up|down|status|toml|mode MODE [--workdir DIR])."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
import time
from pathlib import Path

from .consts import MODES, SandboxError
from .core import Sandbox

# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def default_workdir() -> Path:
    """One well-known workdir per user, so `up` and a later `down` agree without flags."""
    if os.geteuid() == 0:
        return Path("/tmp/wscheck-sandbox")
    return Path(f"/tmp/wscheck-sandbox-{pwd.getpwuid(os.geteuid()).pw_name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sandbox.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("command", choices=("up", "down", "mode", "status", "toml"))
    parser.add_argument("mode", nargs="?", help=f"for `mode`: one of {', '.join(MODES)}")
    parser.add_argument("--workdir", type=Path, default=None, help=f"default: {default_workdir()}")
    parser.add_argument("--tls", action="store_true", help="for `toml`: the https target of the TLS modes")
    parser.add_argument("--kernel-log", action="store_true",
                        help="for `toml`: the kernel-oom mode's target (kernel_log_sudo = true)")
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.workdir or default_workdir())
    try:
        if args.command == "up":
            started = time.monotonic()
            sandbox.up()
            print(
                f"# sandbox up in {time.monotonic() - started:.1f}s; saved as {sandbox.workdir}/wscheck.toml",
                file=sys.stderr,
            )
            print(sandbox.target_toml(), end="")
        elif args.command == "down":
            sandbox.down()
        elif args.command == "mode":
            if not args.mode:
                parser.error(f"mode needs one of: {', '.join(MODES)}")
            started = time.monotonic()
            sandbox.set_mode(args.mode)
            print(f"mode {args.mode} reached in {time.monotonic() - started:.1f}s", file=sys.stderr)
        elif args.command == "status":
            print(json.dumps(sandbox.status(), indent=2))
        else:
            text = sandbox.tls_target_toml() if args.tls else sandbox.target_toml(kernel_log_sudo=args.kernel_log)
            print(text, end="")
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0

