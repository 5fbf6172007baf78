"""The dependency locks agree with pyproject.toml, and scripts/setup.sh re-installs when a lock changes.

pyproject.toml keeps ranges (for whoever uses the package); requirements/*.lock pin what the suite, the
Dockerfile and deploy/install.sh install. A range edited without `bash scripts/lock.sh` must fail here, not on
a fresh machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RUN_LOCK = ROOT / "requirements/run.lock"
TEST_LOCK = ROOT / "requirements/test.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)")


def parse_lock(text: str) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, its hashes), from a pip-tools style compiled requirements file."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            assert current not in pins, f"{current} pinned twice"
            pins[current] = (Version(match.group(2)), [])
        elif line.startswith("--hash=") and current is not None:
            pins[current][1].append(line.removeprefix("--hash=").rstrip(" \\"))
        else:
            raise AssertionError(f"unexpected lock line: {raw!r}")
    return pins


def pyproject() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"run": [Requirement(r) for r in project["dependencies"]],
            "test": [Requirement(r) for r in project["optional-dependencies"]["test"]]}


def disagreements(requirements: list[Requirement], pins: dict[str, tuple[Version, list[str]]]) -> list[str]:
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11"}):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(pin[0], prereleases=True):
            problems.append(f"{req.name}: locked {pin[0]} is outside {req.specifier}")
    return problems


@pytest.mark.parametrize(("lock", "groups"), [(RUN_LOCK, ("run",)), (TEST_LOCK, ("run", "test"))])
def test_every_direct_requirement_is_pinned_within_its_range(lock: Path, groups: tuple[str, ...]) -> None:
    pins = parse_lock(lock.read_text())
    reqs = pyproject()
    problems = [p for group in groups for p in disagreements(reqs[group], pins)]
    assert not problems, f"{lock.name} disagrees with pyproject.toml (run: bash scripts/lock.sh): {problems}"
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes (pip --require-hashes)"


def test_the_run_lock_has_no_test_tools_and_matches_the_test_lock() -> None:
    run, test = parse_lock(RUN_LOCK.read_text()), parse_lock(TEST_LOCK.read_text())
    for tool in ("pytest", "ruff", "mypy", "import-linter"):
        assert tool in test and tool not in run
    assert {name: pin[0] for name, pin in run.items()} == {name: test[name][0] for name in run}, \
        "a package is locked at two versions: the suite would test another version than the one deployed"


def test_a_range_the_lock_misses_is_caught() -> None:
    """The checker itself: a widened range that excludes the pin, or a new dependency, is reported."""
    pins = parse_lock("asyncssh==2.24.1 \\\n    --hash=sha256:00\n")
    assert disagreements([Requirement("asyncssh>=2.14,<3")], pins) == []
    assert disagreements([Requirement("asyncssh>=2.25")], pins) == ["asyncssh: locked 2.24.1 is outside >=2.25"]
    assert disagreements([Requirement("newdep>=1")], pins) == ["newdep: not in the lock"]
    with pytest.raises(AssertionError, match="unexpected lock line"):
        parse_lock("asyncssh>=2\n")


def test_the_installed_versions_are_the_locked_ones() -> None:
    """The suite runs on what the lock says (scripts/setup.sh installs it): asyncssh and cryptography especially."""
    from importlib.metadata import version

    pins = parse_lock(TEST_LOCK.read_text())
    for name in ("asyncssh", "cryptography", "pytest", "pydantic"):
        assert Version(version(name)) == pins[name][0], name


def _setup_calls(workdir: Path) -> list[str]:
    """Run a copy of scripts/setup.sh --test whose venv python is a stub that records its arguments."""
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(workdir / "scripts/setup.sh"), "--test"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    log = workdir / ".venv/bin/calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_setup_installs_from_the_lock_and_again_when_it_changes(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    (work / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts/setup.sh", work / "scripts/setup.sh")
    shutil.copytree(ROOT / "requirements", work / "requirements")
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    stub = work / ".venv/bin/python"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls.log"\n')
    stub.chmod(0o755)

    first = _setup_calls(work)
    assert any("--require-hashes -r requirements/test.lock" in c for c in first), first
    assert any("--no-deps -e ." in c for c in first), first
    assert _setup_calls(work) == []  # nothing changed: nothing re-installed

    lock = work / "requirements/test.lock"
    lock.write_text(lock.read_text() + "# refreshed\n")
    assert any("--require-hashes -r requirements/test.lock" in c for c in _setup_calls(work)), "lock changed"
    assert _setup_calls(work) == []
