"""The wheel builds, carries both packages and the console script, and reports its version."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_builds_and_installs(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("wscheck_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "checks/runner.py" in names and "bot/cli.py" in names and "checks/py.typed" in names
    assert not any(n.startswith(("tests/", "bench/", "deploy/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "wscheck = bot.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    version = subprocess.run([sys.executable, "-c", "import sys; sys.argv=['wscheck', '--version']; "
                              "from bot.cli import main; main()"], cwd=tmp_path, capture_output=True, text=True,
                             env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert version.stdout.strip().startswith("wscheck 0."), version.stdout + version.stderr
    assert str(target) in subprocess.run([sys.executable, "-c", "import bot; print(bot.__file__)"], cwd=tmp_path,
                                         capture_output=True, text=True, env={"PYTHONPATH": str(target)}).stdout
