"""Two sandboxes on one machine leave each other's processes alone.

Several checkouts and several test runs share the machine and the `wsbox` user: each sandbox has its own
workdir, ports, PM2_HOME and pid files, and acts on the pids it started only. This test starts a second
sandbox next to the session's one, crashes, breaks and heals the first, and checks that the second's sshd,
nginx master, PM2 daemon and app kept their pids and still answer; then stops the second by pid.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandboxpkg import load_sandbox

pytestmark = pytest.mark.sandbox


def pids(box: Any) -> dict[str, int]:
    app = box.app_process()
    return {"sshd": box.sshd_pid, "nginx": box.nginx_master_pid(), "pm2": box._pm2_daemon_pid(),
            "app": int(app["pid"]) if app else 0}


def answers(box: Any) -> bool:
    module = load_sandbox()
    return bool(box.app_status() == "online" and module.http_status(box.http_port) == 200
                and module.tcp_accepts(box.ssh_port))


@pytest.fixture
def second() -> Iterator[Any]:
    module = load_sandbox()
    workdir = Path(tempfile.mkdtemp(prefix="wscheck-sbx2-", dir="/tmp"))
    workdir.chmod(0o755)
    box = module.Sandbox(workdir)
    try:
        box.up()
        yield box
    finally:
        box.down()


def test_two_sandboxes_leave_each_other_alone(sandbox: Any, second: Any) -> None:
    module = load_sandbox()
    sandbox.set_mode("healthy")
    theirs = pids(second)
    assert all(theirs.values()), theirs
    ours = pids(sandbox)
    assert not set(ours.values()) & set(theirs.values())
    assert {sandbox.http_port, sandbox.ssh_port, sandbox.app_port}.isdisjoint(
        {second.http_port, second.ssh_port, second.app_port})
    assert sandbox.pm2_home != second.pm2_home

    killed = sandbox.kill_app()  # a crash of the first's app: PM2 restarts it
    assert ours["app"] in killed and not killed & set(theirs.values())
    module.wait_for("the first's app restarted by PM2", lambda: pids(sandbox)["app"] not in (0, ours["app"])
                    and sandbox.app_status() == "online", timeout=60)
    for mode in ("pm2-stopped", "nginx-invalid", "port-conflict", "healthy"):
        sandbox.set_mode(mode)
        assert pids(second) == theirs, mode
        assert answers(second), mode

    second.down()  # by pid: the first sandbox is untouched
    assert not any(module.pid_alive(p) for p in theirs.values())
    assert pids(sandbox)["sshd"] == ours["sshd"] and pids(sandbox)["pm2"] == ours["pm2"]
    assert answers(sandbox)
