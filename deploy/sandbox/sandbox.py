#!/usr/bin/env python3
"""The sandbox's CLI: a real Nginx -> PM2 -> Next.js 15 stack on 127.0.0.1, reachable over SSH, broken on demand.

    python3 deploy/sandbox/sandbox.py up|down|status|toml [--workdir DIR]
    python3 deploy/sandbox/sandbox.py mode MODE [--workdir DIR]

The code is the package next to this script (deploy/sandbox/wsbox/, standard library + cryptography for the
TLS modes); this file only runs its CLI, with the system python3 as well as the project's venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wsbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
