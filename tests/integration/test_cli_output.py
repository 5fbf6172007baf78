"""No stray library output: every `wscheck` command writes log records to stderr, never raw warnings or tracebacks.

Real subprocesses of the installed CLI, with PYTHONWARNINGS=default so that nothing is hidden by Python's
default filters: whatever a library warns (asyncssh importing cryptography's deprecated DSA, say) must come out
as a log line, one JSON object per line in JSON mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cryptography.utils import CryptographyDeprecationWarning

from bot.ops.logs import quiet_known_warnings

ROOT = Path(__file__).resolve().parents[2]
TEXT_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: \S")

# The wscheck CLI with one command wrapped: the wrapper warns, or raises, before doing the real work.
WRAPPED = """
import sys, warnings
import bot.cli as cli
real = cli.{command}
def wrapped(*args):
    {action}
    return real(*args)
cli.{command} = wrapped
sys.exit(cli.main(sys.argv[1:]))
"""


def run_cli(args: list[str], *, json_logs: bool,
            wrap: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default", "WSCHECK_LOG_FORMAT": "json" if json_logs else "text"}
    for key in ("WSCHECK_CONFIG", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "WSCHECK_LOG_LEVEL"):
        env.pop(key, None)
    if wrap is None:
        argv = [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))", *args]
    else:
        argv = [sys.executable, "-c", WRAPPED.format(command=wrap[0], action=wrap[1]), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def assert_log_lines(stderr: str, *, json_logs: bool) -> list[str]:
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    for line in lines:
        assert not re.match(r"^\s*\S+\.py:\d+: \w*Warning:", line), f"raw warning on stderr: {line!r}"
        if json_logs:
            record = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(record), line
        else:
            assert TEXT_RECORD.match(line) or line.startswith("wscheck: "), f"not a log record: {line!r}"
    return lines


@pytest.fixture()
def ssh_target_config(tmp_path: Path) -> Path:
    """An SSH target: `wscheck check` imports asyncssh (and so cryptography) for it. Nothing listens on port 1."""
    config = tmp_path / "wscheck.toml"
    config.write_text(
        '[[targets]]\nname = "gone"\nhost = "127.0.0.1"\nport = 1\nuser = "nobody"\n'
        f'identity_file = "{tmp_path}/id"\nknown_hosts = "{tmp_path}/known_hosts"\n'
        'pm2_app = "web"\napp_port = 3000\napp_dir = "/srv/web"\n'
    )
    return config


@pytest.mark.parametrize("json_logs", [False, True])
def test_check_over_ssh_prints_no_library_warning(ssh_target_config: Path, json_logs: bool) -> None:
    """asyncssh 2.24 with cryptography >= 47 warns ten times on import (DSA deprecated): known, harmless, filtered."""
    result = run_cli(["check", "--config", str(ssh_target_config)], json_logs=json_logs)
    assert result.returncode != 0 and "gone" in result.stdout  # it ran, and the target is unreachable
    assert_log_lines(result.stderr, json_logs=json_logs)
    assert "DSA" not in result.stderr


@pytest.mark.parametrize("json_logs", [False, True])
@pytest.mark.parametrize("command", [["checks"], ["config"], ["check", "--only", "port"], ["--version"]])
def test_a_warning_during_a_command_is_one_log_record(command: list[str], json_logs: bool,
                                                      ssh_target_config: Path) -> None:
    """An unknown warning (not filtered) while a command runs becomes one log record, in the log's format."""
    name = {"checks": "cmd_checks", "config": "cmd_config", "check": "cmd_check", "--version": "_version"}
    if command[0] in ("config", "check"):
        command = [*command, "--config", str(ssh_target_config)]
    action = "warnings.warn('injected deprecation', DeprecationWarning)"
    result = run_cli(command, json_logs=json_logs, wrap=(name[command[0]], action))
    assert result.stdout, result.stderr  # the command did its work
    lines = assert_log_lines(result.stderr, json_logs=json_logs)
    injected = [line for line in lines if "injected deprecation" in line]
    assert len(injected) == 1, result.stderr
    if json_logs:
        record = json.loads(injected[0])
        assert record["logger"] == "py.warnings" and record["level"] == "warning"
        assert "DeprecationWarning: injected deprecation" in record["msg"] and "\n" not in record["msg"]
    else:
        assert " WARNING py.warnings: " in injected[0]


@pytest.mark.parametrize("json_logs", [False, True])
@pytest.mark.parametrize("command", ["checks", "config", "audit"])
def test_an_unexpected_error_is_one_log_line_and_a_failure(command: str, json_logs: bool) -> None:
    name = {"checks": "cmd_checks", "config": "cmd_config", "audit": "cmd_audit"}[command]
    result = run_cli([command], json_logs=json_logs, wrap=(name, "raise RuntimeError('boom at the edge')"))
    assert result.returncode == 3, result.stderr
    (line,) = assert_log_lines(result.stderr, json_logs=json_logs)
    assert "RuntimeError: boom at the edge" in line and command in line
    if json_logs:
        assert json.loads(line)["level"] == "error"


def test_the_known_warning_filter_is_narrow() -> None:
    """Only CryptographyDeprecationWarning, and only from asyncssh's modules, is ignored."""
    def shown(category: type[Warning], module: str) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.simplefilter("always")
            quiet_known_warnings()
            warnings.warn_explicit("DSA is deprecated", category, f"/x/{module.replace('.', '/')}.py", 1,
                                   module=module)
        return bool(caught)

    assert not shown(CryptographyDeprecationWarning, "asyncssh.crypto.misc")
    assert not shown(CryptographyDeprecationWarning, "asyncssh")
    assert shown(CryptographyDeprecationWarning, "bot.ops.trust")
    assert shown(CryptographyDeprecationWarning, "asyncsshx.other")
    assert shown(DeprecationWarning, "asyncssh.crypto.misc")
    assert shown(UserWarning, "asyncssh.connection")
