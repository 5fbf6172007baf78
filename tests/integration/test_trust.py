"""`wscheck trust`: the host key is shown, confirmed by fingerprint, written once; a changed key is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checks.config import Target
from tests.support.botproc import ROOT, bot_env

pytestmark = pytest.mark.sandbox


def server_fingerprint(sandbox: Any) -> str:
    """What the operator reads on the server: ssh-keygen -lf on the host key's public half."""
    pubs = sorted(Path(sandbox.workdir, "ssh").glob("*host*key*.pub"))
    assert pubs, list(Path(sandbox.workdir, "ssh").iterdir())
    out = subprocess.run(["ssh-keygen", "-lf", str(pubs[0])], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def run_trust(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "trust", "sandbox", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=bot_env({}),
                          stdin=subprocess.DEVNULL)


def config_with(tmp_path: Path, sandbox_target: Target, known_hosts: Path) -> Path:
    toml = (Path(sandbox_target.app_dir).parent / "wscheck.toml").read_text()  # the session's config file
    config = tmp_path / "wscheck.toml"
    config.write_text(toml.replace(f'known_hosts = "{sandbox_target.known_hosts}"', f'known_hosts = "{known_hosts}"'))
    return config


def test_trust_needs_confirmation_and_writes_once(sandbox: Any, sandbox_target: Target, sandbox_config_file: Path,
                                                 tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    config = config_with(tmp_path, sandbox_target, known)
    no_tty = run_trust(config)
    assert no_tty.returncode == 1 and "--fingerprint" in no_tty.stderr
    assert not known.exists()
    wrong = run_trust(config, "--fingerprint", "SHA256:" + "A" * 43)
    assert wrong.returncode == 1 and "mismatch" in wrong.stderr and not known.exists()
    fingerprint = server_fingerprint(sandbox)
    ok = run_trust(config, "--fingerprint", fingerprint)
    assert ok.returncode == 0, ok.stderr
    assert fingerprint in ok.stdout and f"[127.0.0.1]:{sandbox.ssh_port}" in known.read_text()
    assert known.stat().st_mode & 0o777 == 0o600
    again = run_trust(config, "--fingerprint", fingerprint)
    assert again.returncode == 0 and "already trusted" in again.stdout
    assert len(known.read_text().splitlines()) == 1
    check = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--only", "pm2", "--config", str(config)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT, env=bot_env({}))
    assert check.returncode == 0, check.stdout + check.stderr


def test_changed_key_is_a_loud_error(sandbox: Any, sandbox_target: Target, sandbox_config_file: Path,
                                    tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sandbox.ssh_port} {other.with_suffix('.pub').read_text().split(' ', 2)[0]} "
                     f"{other.with_suffix('.pub').read_text().split()[1]}\n")
    before = known.read_text()
    config = config_with(tmp_path, sandbox_target, known)
    result = run_trust(config, "--fingerprint", server_fingerprint(sandbox))
    assert result.returncode == 1
    assert "HOST KEY CHANGED" in result.stderr and "ssh-keygen -R" in result.stderr
    assert known.read_text() == before
    check = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--only", "pm2", "--config", str(config)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT, env=bot_env({}))
    assert check.returncode == 3 and "not trusted" in check.stdout
