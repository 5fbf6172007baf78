"""Issue 13, defect 4: the service keeps restarting on every exit code but 78 (what a human must fix)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unit_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in (ROOT / "deploy" / "wscheck.service").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_systemd_restarts_everything_but_78_without_giving_up() -> None:
    unit = unit_settings()
    assert unit["Restart"] == "on-failure" and unit["RestartPreventExitStatus"] == "78"
    assert unit["StartLimitIntervalSec"] == "0" and "StartLimitBurst" not in unit
    assert float(unit["RestartSec"]) >= 1


def test_docker_restarts_unless_stopped() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "--restart unless-stopped" in text
