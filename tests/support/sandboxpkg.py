"""The sandbox package (deploy/sandbox/wsbox), imported one way by the tests, the fixtures' capture and the bench.

The sandbox is not part of the installed project: install.sh and CI also run deploy/sandbox/sandbox.py with the
system python3, so it lives next to that script. This puts deploy/sandbox on sys.path and imports it by name.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "deploy" / "sandbox"


def load_sandbox() -> ModuleType:
    """The `wsbox` package (Sandbox, MODES, SandboxError, the helpers of wsbox.proc, ...)."""
    if str(SANDBOX_DIR) not in sys.path:
        sys.path.insert(0, str(SANDBOX_DIR))
    return importlib.import_module("wsbox")
