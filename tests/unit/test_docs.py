"""Docs match the code: every setting is in README's table and .env.example, which itself loads cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.settings import Settings, env_name, load_settings
from checks.diagnosis import CAUSES
from checks.registry import CHECK_IDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    name = env_name(field)
    assert f"`{name}`" in README, f"{name} missing from README's settings table"
    assert re.search(rf"^{name}=", ENV_EXAMPLE, re.M), f"{name} missing from .env.example"


def test_env_example_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for line in ENV_EXAMPLE.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.slack_bot_token is None and settings.check_interval == 60 and settings.cooldown == (3, 3600.0)


def test_readme_lists_every_check_and_cause_and_command() -> None:
    for check_id in CHECK_IDS:
        assert f"`{check_id}`" in README
    for cause in CAUSES:
        assert f"`{cause}`" in README
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"wscheck {command}" in README
