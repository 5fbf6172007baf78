"""One validation: `wscheck config` (exit 3) and `wscheck run` (exit 78) report the same problems, all of them.

The real command line runs in a subprocess, in an empty directory (no wscheck.toml, no .env) with a clean
environment, so what is asserted is exactly what a person sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import load_config
from checks.config import ConfigError
from tests.support.botproc import ROOT, bot_env

BAD = """
chek_interval = "1m"
check_interval = "1 minute"
fast_interval = 0

[remediation]
aprovers = ["U0123ABCD"]
approval_ttl = "0s"

[[targets]]
name = "web"
pm2_app = "app"
app_port = 3000
app_dir = "/srv/app"
command_timeout = 0
comand_timeout = 5
"""

GOOD_TARGET = """
[[targets]]
name = "web"
pm2_app = "app"
app_port = 3000
app_dir = "/srv/app"
"""


def wscheck(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**bot_env(env or {}), "PYTHONPATH": str(ROOT)},
    )


def expected_lines(path: str) -> list[str]:
    return [
        f"wscheck: {path}: chek_interval: unknown key (did you mean 'check_interval'?) (see README 'Configuration')",
        f"wscheck: {path}: remediation.aprovers: unknown key (did you mean 'approvers'?) (see README 'Configuration')",
        f"wscheck: {path}: check_interval: '1 minute' is not a duration (use seconds, or 30s / 5m / 1h)",
        f"wscheck: {path}: fast_interval: must be more than 0 (use seconds, or 30s / 5m / 1h)",
        f"wscheck: {path}: remediation.approval_ttl: must be more than 0 (use seconds, or 30s / 5m / 1h)",
        f"wscheck: {path}: targets[0] (web): command_timeout: must be more than 0 (use seconds, or 30s / 5m / 1h)",
        f"wscheck: {path}: targets[0] (web): comand_timeout: unknown key (did you mean 'command_timeout'?) "
        "(see README 'Configuration')",
    ]


def test_config_and_run_report_every_problem_with_the_same_lines(tmp_path: Path, db: str) -> None:
    (tmp_path / "bad.toml").write_text(BAD)
    config = wscheck("config", "--config", "bad.toml", cwd=tmp_path)
    assert config.returncode == 3, config.stdout + config.stderr
    assert config.stdout == ""
    assert config.stderr.splitlines() == expected_lines("bad.toml")

    run = wscheck("run", "--config", "bad.toml", cwd=tmp_path,
                  env={"WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false"})
    assert run.returncode == 78, run.stdout + run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("wscheck: ")] == expected_lines("bad.toml")
    assert "Traceback" not in run.stderr


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(GOOD_TARGET)
    proc = wscheck("config", "--config", "ok.toml", cwd=tmp_path, env={
        "WSCHECK_CHECK_INTERVAL": "1 minute", "SLACK_BOT_TOKEN": "nope", "SLACK_SIGNING_SECRET": "xoxb-123",
        "WSCHECK_VERIFY_TIMEOUT": "0",
    })
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert ("wscheck: environment: WSCHECK_CHECK_INTERVAL: '1 minute' is not a duration "
            "(use seconds, or 30s / 5m / 1h)") in lines
    assert any(line.startswith("wscheck: environment: SLACK_BOT_TOKEN: must be a bot token starting with xoxb-")
               for line in lines), lines
    assert any(line.startswith("wscheck: environment: SLACK_SIGNING_SECRET: must be the Signing Secret")
               for line in lines), lines
    assert "wscheck: environment: WSCHECK_VERIFY_TIMEOUT: must be more than 0 (use seconds, or 30s / 5m / 1h)" \
        in lines
    assert "nope" not in proc.stderr and "xoxb-123" not in proc.stderr, "secrets are never echoed"
    assert len(lines) == 4, lines


def test_a_valid_config_passes_both(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text('check_interval = "1m"\njitter = 0\n[remediation]\napprovers = ["U0123ABCD"]\n'
                                      + GOOD_TARGET)
    proc = wscheck("config", "--config", "ok.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# config: ok.toml: 1 target(s), valid")


SETTINGS_ZERO = ["slack_timeout", "rate_window", "check_interval", "fast_interval", "reminder_interval",
                 "flap_window", "canary_ping_interval", "canary_pong_timeout", "retention"]
REMEDIATION_ZERO = ["approval_ttl", "verify_timeout"]
TARGET_ZERO = ["connect_timeout", "command_timeout", "check_timeout", "probe_timeout"]


@pytest.mark.parametrize("key", SETTINGS_ZERO + REMEDIATION_ZERO + TARGET_ZERO)
def test_zero_is_refused_where_it_makes_no_sense(tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if key in TARGET_ZERO:
        text, shown = GOOD_TARGET + f"{key} = 0\n", f"targets[0] (web): {key}"
    elif key in REMEDIATION_ZERO:
        text, shown = f"[remediation]\n{key} = \"0s\"\n" + GOOD_TARGET, f"remediation.{key}"
    else:
        text, shown = f"{key} = 0\n" + GOOD_TARGET, key
    path = tmp_path / "z.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {shown}: must be more than 0 (use seconds, or 30s / 5m / 1h)"


def test_zero_is_allowed_where_it_means_something(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jitter = 0: no random delay; a cooldown window of 0 is refused (it would allow unlimited fixes)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "z.toml"
    path.write_text("jitter = 0\nmetrics_port = 0\n" + GOOD_TARGET)
    settings, _ = load_config(path)
    assert settings.jitter == 0 and settings.metrics_port == 0
    path.write_text('[remediation]\ncooldown = "3/0s"\n' + GOOD_TARGET)
    with pytest.raises(ConfigError, match=r"remediation\.cooldown: .*is not a cooldown like 3/1h"):
        load_config(path)


def test_check_without_config_says_it_uses_the_defaults_and_keeps_json_pure(tmp_path: Path) -> None:
    notice = ("no wscheck.toml: using the built-in defaults (target local, app kathario-saas, port 3003); "
              "see README 'Configuration' or `wscheck config`")
    proc = wscheck("check", "--only", "port", "--json", cwd=tmp_path)
    assert proc.stderr.splitlines()[0] == notice, proc.stderr
    for line in proc.stdout.splitlines():
        assert json.loads(line)["target"] == "local"
    text = wscheck("check", "--only", "port", cwd=tmp_path, env={"WSCHECK_LANG": "ko"})
    first = text.stderr.splitlines()[0]
    assert first.startswith("wscheck.toml이 없습니다: 내장 기본값을 사용합니다 (대상 local"), text.stderr
    assert notice not in text.stdout


def test_check_with_a_config_says_nothing_about_defaults(tmp_path: Path) -> None:
    (tmp_path / "wscheck.toml").write_text(GOOD_TARGET.replace('name = "web"', 'name = "web"\nhost = "local"'))
    proc = wscheck("check", "--only", "port", "--json", cwd=tmp_path)
    assert "built-in defaults" not in proc.stderr


def test_help_points_to_check_for_a_single_answer(tmp_path: Path) -> None:
    top = wscheck("--help", cwd=tmp_path)
    run = wscheck("run", "--help", cwd=tmp_path)
    assert top.returncode == 0 and run.returncode == 0
    flat = " ".join(top.stdout.split())
    assert "For a single answer (once, then exit with a Nagios code), use `wscheck check`" in flat
    assert "For a single answer, once, use `wscheck check` instead." in " ".join(run.stdout.split())
