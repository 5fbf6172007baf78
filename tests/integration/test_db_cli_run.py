"""The real `wscheck run` process refusing a database a newer wscheck wrote (moved from tests/unit/test_db_cli.py:
it starts the bot as a process, ~2 s, which the unit tier does not)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.store import MIGRATIONS
from tests.support.botproc import bot_env


def test_run_refuses_a_database_newer_than_itself(tmp_path: Path) -> None:
    """The real `wscheck run`: exit 78 (EX_CONFIG, not restarted by systemd), one line naming both versions."""
    db = tmp_path / "w.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.close()
    result = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--console"], cwd=tmp_path, timeout=120,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env=bot_env({"WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false"}))
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        f"ERROR wscheck: cannot start: database {db} has schema version {len(MIGRATIONS) + 1}, but this wscheck "
        f"only knows versions up to {len(MIGRATIONS)}: it was written by a newer wscheck; upgrade wscheck (or point "
        f"WSCHECK_DB at another database)")
