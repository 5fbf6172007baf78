"""WSCHECK_LANG=ko end to end: the real `wscheck run` in console mode answers `help` and `pm2` in Korean."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import MESSAGES as BOT_MESSAGES
from checks.messages import MESSAGES as CHECK_MESSAGES
from checks.registry import ITEMS
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

HANGUL = re.compile(r"[가-힣]")


def _english_sentences() -> set[str]:
    """The English side of the sentences the answers below may contain (none of them may appear)."""
    keys = [CHECK_MESSAGES["pm2.status.other"], CHECK_MESSAGES["cause_desc.pm2_not_online"],
            BOT_MESSAGES["render.text_diagnosis"], BOT_MESSAGES["console.welcome"], BOT_MESSAGES["render.text_fix"]]
    return {entry["en"].split("{")[0].strip() for entry in keys} | {"is `stopped`", "Usage", "the whole checklist"}


async def test_console_speaks_korean(sandbox: Any, sandbox_config_file: Path, db: str) -> None:
    await asyncio.to_thread(sandbox.set_mode, "pm2-stopped")
    bot = BotProcess(["run", "--console", "--config", str(sandbox_config_file)], {
        "WSCHECK_LANG": "ko", "WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false",
    }, cwd=ROOT)
    try:
        await bot.start(stdin=True)
        await bot.wait_line(r"^wscheck 콘솔 모드: `/wscheck help`\(또는 `help`\)를 입력하세요", stdout=True)
        # The banner ends with the targets line; the answers below are read from after it.
        await bot.wait_line(r"^대상: sandbox$", stdout=True)

        start = len(bot.stdout_lines)
        await bot.send("help")
        await bot.wait_line(r"^• /wscheck history \[TARGET\]: 최근 조치 감사 기록$", stdout=True, start=start)
        help_lines = bot.stdout_lines[start:]
        assert help_lines[0] == "사용법: /wscheck [ITEM...] [TARGET]", help_lines
        assert "• /wscheck targets: 설정된 대상 목록 · /wscheck help: 이 도움말" in help_lines

        start = len(bot.stdout_lines)
        await bot.send("pm2")
        await bot.wait_line(rf"^⏳ sandbox에서 검사 {len(ITEMS['pm2'])}개 실행 중…$", stdout=True, start=start)
        cause = await bot.wait_line(r"^  1\. \[pm2_not_online\] (.*)$", stdout=True, start=start, timeout=60)
        await bot.wait_line(r"^     조치:$", stdout=True, start=start)
        answer = bot.stdout_lines[start:]
        status = next(line for line in answer if re.match(r"^  FAIL  pm2\.status ", line))
        assert f"{sandbox.app_name} 프로세스가 `stopped` 상태입니다" in status, answer
        assert cause.group(1) == f"{sandbox.app_name} 프로세스가 `stopped` 상태입니다", answer
        assert "진단 (근본 원인부터):" in answer
        assert any(line.startswith("     근거: pm2.status") for line in answer), answer
        assert any(re.match(r"^       .*pm2 restart ", line) for line in answer), "commands stay as they are"
        text = "\n".join([*help_lines, *answer])
        assert HANGUL.search(text)
        assert not {sentence for sentence in _english_sentences() if sentence and sentence in text}, text
        assert any("wscheck ready" in line for line in bot.lines), "logs stay English"
    finally:
        code = await bot.stop()
        await asyncio.to_thread(sandbox.set_mode, "healthy")
    assert code == 0, bot.log()
