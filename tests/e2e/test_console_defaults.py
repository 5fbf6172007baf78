"""Console mode without a config file: the real `wscheck run` says it uses the built-in defaults (first
stdout line) and, when stdin closes, says once that monitoring goes on."""

from __future__ import annotations

from pathlib import Path

from tests.support.botproc import ROOT, BotProcess

NOTICE = ("no wscheck.toml: using the built-in defaults (target local, app kathario-saas, port 3003); "
          "see README 'Configuration' or `wscheck config`")
CLOSED = "input closed; monitoring goes on; Ctrl-C stops"


async def test_console_without_config_names_the_defaults_and_the_closed_input(tmp_path: Path, db: str) -> None:
    bot = BotProcess(["run"], {
        "WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false", "PYTHONPATH": str(ROOT),
    }, cwd=tmp_path)
    try:
        await bot.start(stdin=True)
        await bot.wait_line(r"^targets: local$", stdout=True)
        assert bot.stdout_lines[0] == NOTICE, bot.stdout_lines
        assert bot.proc is not None and bot.proc.stdin is not None
        bot.proc.stdin.close()
        await bot.wait_line(rf"^{CLOSED}$", stdout=True)
        assert bot.proc.returncode is None, "the bot keeps running after stdin closes"
    finally:
        code = await bot.stop()
    assert code == 0, bot.log()
    assert bot.stdout_lines.count(CLOSED) == 1, bot.stdout_lines
