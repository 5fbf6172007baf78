"""Least-privilege target access (deploy/target/setup-target.sh) against the real sandbox, over real SSH.

The script creates an unprivileged login user that owns nothing and reaches PM2 (as `wsbox`) and nginx (as
root) only through the pinned sudo rules it writes. The sandbox lets that user log in (add_login_user), and
then: the whole checklist comes out ok as that user, a `restart` works, commands outside the allow-list are
refused by sudo and change nothing, a broken sudoers snippet never reaches /etc/sudoers.d, SSH forwarding
reaches the app port only, private PM2 logs become readable through an ACL (never through the owner's group),
and --uninstall takes everything back.

The login user is `wscheck-lp`, not the script's default `wscheck`: deploy/install.sh gives that name to the
bot's own service user, which may exist on the same CI machine (the script refuses to take over a user it
did not create).

Tests run in file order and share one setup (module fixture); the last one uninstalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncssh
import pytest

from bot.remediation import actions
from checks import commands as cmd
from checks.config import Target, parse_targets
from checks.models import Status
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.healthy import healthy_statuses

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "deploy" / "target" / "setup-target.sh"
LOGIN = "wscheck-lp"
SUDOERS_D = Path("/etc/sudoers.d")
STATE_DIR = Path("/var/lib/wscheck-target")
MARKER = "wscheck bot (deploy/target/setup-target.sh)"
NAMED_ACL_ENTRY = re.compile(r"^(default:)?(user|group):[^:]+:", re.MULTILINE)

if not sys.platform.startswith("linux") or os.geteuid() != 0:
    pytest.skip("creates system users and sudoers rules: Linux, as root (as in CI)", allow_module_level=True)


@dataclass
class Setup:
    """What the module fixture installed: the facts, the bot's key, and the targets for both views."""

    facts: list[str]
    key: Path
    toml: str
    target: Target
    script_target: Target
    stderr: str


def run_setup(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(SETUP), *args], capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"setup-target.sh {' '.join(args)} exited {result.returncode}\n{result.stderr}")
    return result


def ensure_packages() -> None:
    """sudo (and setfacl, for the private-logs test) are installed, never a reason to skip."""
    missing = [pkg for pkg, tool in (("sudo", "visudo"), ("sudo", "sudo"), ("acl", "setfacl"))
               if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    packages = sorted(set(missing))
    install = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        subprocess.run(install, capture_output=True, env=env, check=True)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def uid_processes(name: str) -> list[int]:
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
    return pids


def wait_no_processes(name: str, timeout: float = 15) -> None:
    """The SSH sessions of `name` end a moment after the client closes them (sshd's session children)."""
    deadline = time.monotonic() + timeout
    while uid_processes(name):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still has processes {uid_processes(name)}")
        time.sleep(0.1)


def sudoers_snapshot() -> dict[str, Any]:
    files = {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted(SUDOERS_D.iterdir())}
    return {"dir_mtime": SUDOERS_D.stat().st_mtime_ns, "files": files}


def getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-cp", str(path)], capture_output=True, text=True, check=True).stdout


def set_modes(modes: dict[Path, int]) -> None:
    for path, mode in modes.items():
        path.chmod(mode)


def sbmod(sandbox: Any) -> ModuleType:
    return sys.modules[type(sandbox).__module__]


def facts_for(sandbox: Any) -> list[str]:
    return [
        "--pm2-user", sandbox.user, "--pm2-bin", sandbox.pm2_bin, "--pm2-home", str(sandbox.pm2_home),
        "--nginx-bin", sandbox.nginx_bin, "--nginx-conf", str(sandbox.nginx_conf),
        "--app", sandbox.app_name, "--app-dir", str(sandbox.app_dir), "--app-port", str(sandbox.app_port),
        "--nginx-log-dir", str(sandbox.nginx_dir),
    ]


def uninstall(sandbox: Any) -> None:
    with contextlib.suppress(Exception):
        sandbox.remove_login_user(LOGIN)
    if user_exists(LOGIN) or (SUDOERS_D / LOGIN).exists():
        wait_no_processes(LOGIN)
        run_setup("--uninstall", "--user", LOGIN)
    # the sandbox's nginx runs as wsbox; `nginx -t` as root hands its temp dirs to `nobody`: give them back
    tmp = Path(sandbox.nginx_dir) / "tmp"
    if tmp.is_dir():
        pw = pwd.getpwnam(sandbox.user)
        for path in [tmp, *tmp.rglob("*")]:
            with contextlib.suppress(OSError):
                os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


@pytest.fixture(scope="module")
def lp(sandbox: Any) -> Iterator[Setup]:
    ensure_packages()
    if user_exists(LOGIN):  # a leftover of an interrupted run: ours, or refuse to touch it
        assert pwd.getpwnam(LOGIN).pw_gecos == MARKER, f"user {LOGIN} exists and is not this test's"
        uninstall(sandbox)
    sandbox.set_mode("healthy")
    keydir = Path(tempfile.mkdtemp(prefix="wscheck-lp-key-"))
    key = keydir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wscheck-bot", "-f", str(key)],
                   check=True, capture_output=True)
    facts = facts_for(sandbox)
    try:
        result = run_setup(
            "--user", LOGIN, "--pubkey", f"{key}.pub", "--from", "127.0.0.1", *facts,
            "--name", "sandbox", "--host", sandbox.host, "--ssh-port", str(sandbox.ssh_port),
            "--identity-file", str(key), "--known-hosts", str(sandbox.known_hosts),
            "--public-url", f"http://{sandbox.host}:{sandbox.http_port}/",
        )
        sandbox.add_login_user(LOGIN)
        (script_target,) = parse_targets(tomllib.loads(result.stdout), "setup-target.sh stdout").targets
        base = tomllib.loads(sandbox.target_toml())["targets"][0]
        base.update(user=LOGIN, identity_file=str(key), sudo=True, pm2_user=sandbox.user)
        yield Setup(facts=facts, key=key, toml=result.stdout, target=Target.model_validate(base),
                    script_target=script_target, stderr=result.stderr)
    finally:
        try:
            uninstall(sandbox)
        finally:
            shutil.rmtree(keydir, ignore_errors=True)


@pytest.fixture(scope="module")
async def ssh(lp: Setup) -> AsyncIterator[SSHTransport]:
    transport = SSHTransport(lp.target)
    yield transport
    await transport.aclose()


async def sh(ssh: SSHTransport, argv: list[str] | tuple[str, ...], timeout: float = 60) -> tuple[int, str, str]:
    result = await ssh.run(list(argv), timeout=timeout)
    return result.exit_status, result.stdout, result.stderr


def refused(stderr: str) -> bool:
    return "a password is required" in stderr or "not allowed" in stderr


# ------------------------------------------------------------------------------------------------------
# what the script wrote
# ------------------------------------------------------------------------------------------------------


def test_printed_target_is_the_sandbox_as_the_login_user(lp: Setup) -> None:
    """The [[targets]] table on stdout is the sandbox's own, with the least-privileged login and sudo."""
    assert lp.script_target.model_dump() == lp.target.model_dump(), lp.toml
    assert lp.script_target.sudo is True and lp.script_target.user == LOGIN


def test_sudoers_snippet_pins_every_argument(lp: Setup) -> None:
    path = SUDOERS_D / LOGIN
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o440)
    check = subprocess.run(["visudo", "-c", "-s", "-f", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    text = path.read_text()
    # the generator is deterministic: the installed file is what --print-sudoers shows for the same facts
    assert run_setup("--print-sudoers", "--user", LOGIN, *lp.facts).stdout == text
    rules = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any(ch in line for line in rules for ch in "*?["), "no glob in any rule"
    commands = [line.strip().rstrip(", \\") for line in rules if line.startswith("    ")]
    assert len(commands) == 9, commands
    assert all(c.startswith("/") for c in commands), "absolute paths only"
    assert [line for line in rules if line.startswith(f"{LOGIN} ")] == [
        f"{LOGIN} ALL=(root) NOPASSWD: WSCHECK_LP_AS_ROOT",
        f"{LOGIN} ALL=(wsbox) NOPASSWD: WSCHECK_LP_AS_OWNER",
    ]


def test_login_user_owns_nothing_and_is_in_no_other_group(lp: Setup, sandbox: Any) -> None:
    pw = pwd.getpwnam(LOGIN)
    assert pw.pw_shell == "/bin/sh" and pw.pw_dir == f"/var/lib/{LOGIN}" and pw.pw_gecos == MARKER
    assert [g.gr_name for g in grp.getgrall() if LOGIN in g.gr_mem] == []
    keys = Path(pw.pw_dir) / ".ssh" / "authorized_keys"
    st = keys.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o640), "root's file: the bot cannot lift its own restrictions"
    (line,) = keys.read_text().splitlines()
    assert line.startswith(
        f'from="127.0.0.1",restrict,port-forwarding,permitopen="127.0.0.1:{sandbox.app_port}",'
        'permitlisten="127.0.0.1:1" ssh-ed25519 '
    )


# ------------------------------------------------------------------------------------------------------
# the bot, as that user, over real SSH
# ------------------------------------------------------------------------------------------------------


async def test_checklist_is_all_ok_as_the_least_privileged_user(
    sandbox: Any, lp: Setup, ssh: SSHTransport
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    report = await run_checks(lp.target, ssh)
    statuses = {c.id: c.status for c in report.checks}
    assert statuses == healthy_statuses(), report.to_json_dict()
    assert report.diagnosis == ()
    assert report.exit_code == 0
    listen = report.result("port.listen")
    assert listen is not None and sandbox.app_name in listen.summary  # ss -p as root sees wsbox's process


def bot_sudo_argvs(target: Target) -> list[tuple[str, ...]]:
    """Every argv with sudo that the bot may send to this target (checks and all four actions)."""
    argvs = [tuple(a) for a in (cmd.nginx_dump(target), cmd.nginx_test(target), cmd.ss_listen(target),
                                cmd.pm2(target, "jlist"))]
    for action in ("restart", "reload-nginx", "rebuild"):
        argvs += [step.argv for step in actions.plan(action, target).steps]
    # fix-port needs a report saying the app is off its port; its steps are these two
    argvs.append(tuple(cmd.pm2(target, "restart", target.pm2_app, "--update-env",
                               env={"PORT": str(target.app_port)})))
    argvs.append(tuple(cmd.pm2(target, "save")))
    assert all(a[:2] == ("sudo", "-n") for a in argvs), argvs
    return list(dict.fromkeys(argvs))


async def test_every_sudo_command_of_the_bot_is_allowed(lp: Setup, ssh: SSHTransport) -> None:
    """`sudo -l CMD` answers for each without running it: the allow-list covers exactly what the bot sends."""
    argvs = bot_sudo_argvs(lp.target)
    assert len(argvs) == 9
    for argv in argvs:
        status, out, err = await sh(ssh, ["sudo", "-n", "-l", *argv[2:]])
        assert status == 0, f"{cmd.display(argv)} is not allowed: {err}"
        assert out.strip().startswith("/"), out


async def test_kernel_log_is_opt_in(lp: Setup, ssh: SSHTransport) -> None:
    """wt-modes: without `--kernel-log` the login may not run dmesg through sudo (`sudo -l` says no: exit 1, nothing
    listed) and the table has no `kernel_log_sudo`; with it, the printed snippet adds exactly `dmesg ""` (no
    arguments) and passes visudo. Printed only: installed here it would let this login read the machine's kernel log,
    where the kernel-oom mode's kills of `wsbox`'s node (this target's app user) would be a warning in its report."""
    status, out, err = await sh(ssh, ["sudo", "-n", "-l", "dmesg"])
    assert status != 0 and not out.strip(), (out, err)
    plain = (await asyncio.to_thread(run_setup, "--print-sudoers", "--user", LOGIN, *lp.facts)).stdout
    flagged = (await asyncio.to_thread(run_setup, "--print-sudoers", "--kernel-log", "--user", LOGIN, *lp.facts)).stdout
    added = set(flagged.splitlines()) - set(plain.splitlines())
    dmesg = shutil.which("dmesg", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert added == {f'    {dmesg} "", \\'}, added
    with tempfile.NamedTemporaryFile("w", suffix=".sudoers") as snippet:
        snippet.write(flagged)
        snippet.flush()
        check = await asyncio.to_thread(subprocess.run, ["visudo", "-c", "-s", "-f", snippet.name],
                                        capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "kernel_log_sudo" not in lp.toml


async def test_restart_action_as_the_least_privileged_user(sandbox: Any, lp: Setup, ssh: SSHTransport) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    before = sandbox.app_process()["pm2_env"]["restart_time"]
    plan = actions.plan("restart", lp.target)
    for step in plan.steps:
        status, _, err = await sh(ssh, step.argv, timeout=step.timeout)
        assert status == 0, f"{step.display}: {err}"
    mod = sbmod(sandbox)
    await asyncio.to_thread(
        mod.wait_for, "PM2 to count the restart",
        lambda: sandbox.app_process()["pm2_env"]["restart_time"] != before, timeout=10,
    )
    assert sandbox.app_process()["pm2_env"]["restart_time"] == before + 1
    await asyncio.to_thread(
        mod.wait_for, "the app back online after the restart",
        lambda: sandbox.app_status() == "online" and mod.tcp_accepts(sandbox.app_port), timeout=60,
    )


async def test_reload_nginx_action_as_the_least_privileged_user(
    sandbox: Any, lp: Setup, ssh: SSHTransport
) -> None:
    mod = sbmod(sandbox)
    master = sandbox.nginx_master_pid()
    for step in actions.plan("reload-nginx", lp.target).steps:
        status, _, err = await sh(ssh, step.argv)
        assert status == 0, f"{step.display}: {err}"
    assert sandbox.nginx_master_pid() == master  # a reload, not a restart
    assert await asyncio.to_thread(mod.http_status, sandbox.http_port) == 200
    assert await asyncio.to_thread(mod.ws_handshake_status, sandbox.http_port) == 101


async def test_commands_outside_the_allow_list_are_refused_and_change_nothing(
    sandbox: Any, lp: Setup, ssh: SSHTransport
) -> None:
    t = lp.target
    home = f"PM2_HOME={t.pm2_home}"
    conf = t.nginx_conf
    attempts = [
        ["sudo", "-n", "-u", "wsbox", "env", home, t.pm2_bin, "delete", t.pm2_app],
        ["sudo", "-n", "nginx", "-s", "stop", "-c", conf],
        ["sudo", "-n", "/bin/sh", "-c", "id"],
        ["sudo", "-n", "-u", "wsbox", "env", home, "PORT=1", t.pm2_bin, "restart", t.pm2_app, "--update-env"],
        # variations on the allowed ones: other runas user or group, extra or other arguments, environment
        ["sudo", "-n", "env", home, t.pm2_bin, "jlist"],
        ["sudo", "-n", "-u", "wsbox", "-g", "root", "env", home, t.pm2_bin, "jlist"],
        ["sudo", "-n", "-u", "wsbox", "env", home, t.pm2_bin, "jlist", "--silent"],
        ["sudo", "-n", "-u", "wsbox", "env", home, "NODE_OPTIONS=--require=/tmp/x.js", t.pm2_bin, "jlist"],
        ["sudo", "-n", "-u", "wsbox", "env", home, t.pm2_bin, "start", "/bin/sh"],
        ["sudo", "-n", "-u", "wsbox", "npm", "--prefix", "/tmp", "run", "build"],
        ["sudo", "-n", "nginx", "-T", "-c", "/etc/shadow"],
        ["sudo", "-n", "ss", "-ltnpH", "-K"],
        ["sudo", "-n", "PATH=/tmp", "ss", "-ltnpH"],
        ["sudo", "-n", "-E", "ss", "-ltnpH"],
        ["sudo", "-n", "-i"],
    ]
    app_before = sandbox.app_process()
    master = sandbox.nginx_master_pid()
    for argv in attempts:
        status, out, err = await sh(ssh, argv)
        assert status != 0 and refused(err), f"{cmd.display(argv)} was not refused: {status} {out} {err}"
    app_after = sandbox.app_process()
    assert app_after is not None and app_after["pm2_env"]["status"] == "online"
    assert app_after["pid"] == app_before["pid"]
    assert app_after["pm2_env"]["restart_time"] == app_before["pm2_env"]["restart_time"]
    assert sandbox.nginx_master_pid() == master != 0
    assert await asyncio.to_thread(sbmod(sandbox).http_status, sandbox.http_port) == 200


async def test_login_user_cannot_reach_pm2_or_its_own_key(sandbox: Any, lp: Setup, ssh: SSHTransport) -> None:
    """No group of the owner (PM2's rpc.sock is 0775: a group member could command PM2), no writable key."""
    status, out, _ = await sh(ssh, ["id", "-Gn"])
    assert (status, out.split()) == (0, [LOGIN])
    for path in (f"{sandbox.pm2_home}/rpc.sock", f"/var/lib/{LOGIN}/.ssh/authorized_keys",
                 f"/var/lib/{LOGIN}", str(sandbox.app_dir), str(sandbox.nginx_conf)):
        status, _, _ = await sh(ssh, ["test", "-w", path])
        assert status == 1, f"{LOGIN} can write {path}"


async def test_forwarding_reaches_the_app_port_only(sandbox: Any, lp: Setup) -> None:
    conn = await asyncssh.connect(
        sandbox.host, port=sandbox.ssh_port, username=LOGIN, client_keys=[str(lp.key)],
        known_hosts=str(sandbox.known_hosts), config=None, agent_path=None,
    )
    try:
        _, writer = await conn.open_connection("127.0.0.1", sandbox.app_port)  # the bot's local probes
        writer.close()
        for port in (sandbox.http_port, sandbox.ssh_port):
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection("127.0.0.1", port)
        with pytest.raises(asyncssh.ChannelOpenError):  # a name is not the permitted address either
            await conn.open_connection("localhost", sandbox.app_port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", sandbox.app_port)
        with pytest.raises(asyncssh.ChannelOpenError):  # restrict: no pty
            await conn.run("true", term_type="xterm")
    finally:
        conn.close()
        await conn.wait_closed()


async def test_private_logs_become_readable_through_an_acl(sandbox: Any, lp: Setup, ssh: SSHTransport) -> None:
    """Logs the login user cannot read: a re-run grants read (and traverse) to that one user, idempotently."""
    pm2_home = Path(sandbox.pm2_home)
    logs = pm2_home / "logs"
    files = sorted(p for p in logs.iterdir() if p.is_file())
    modes = {p: p.stat().st_mode & 0o7777 for p in (pm2_home, logs, *files)}
    sudoers_before = (SUDOERS_D / LOGIN).read_text()
    try:
        await asyncio.to_thread(set_modes, {pm2_home: 0o750, logs: 0o750, **dict.fromkeys(files, 0o640)})
        status, _, _ = await sh(ssh, ["tail", "-n", "1", str(sandbox.pm2_error_log)])
        assert status != 0, "the logs should be private now"
        result = await asyncio.to_thread(run_setup, "--user", LOGIN, "--pubkey", f"{lp.key}.pub",
                                         "--from", "127.0.0.1", *lp.facts)
        assert "ACL:" in result.stderr
        assert (SUDOERS_D / LOGIN).read_text() == sudoers_before
        report = await run_checks(lp.target, ssh, ["pm2.logs"])
        logs_check = report.result("pm2.logs")
        assert logs_check is not None and logs_check.status is Status.OK, report.to_json_dict()
        acl = await asyncio.to_thread(getfacl, logs)
        assert f"default:user:{LOGIN}:r--" in acl and f"user:{LOGIN}:--x" in acl
        status, _, _ = await sh(ssh, ["ls", str(pm2_home)])
        assert status != 0, "traverse only, no listing"
        status, _, _ = await sh(ssh, ["test", "-w", str(pm2_home / "rpc.sock")])
        assert status == 1
        # a second run changes nothing
        again = await asyncio.to_thread(run_setup, "--user", LOGIN, "--pubkey", f"{lp.key}.pub",
                                        "--from", "127.0.0.1", *lp.facts)
        assert "ACL:" not in again.stderr and again.stdout == result.stdout
    finally:
        await asyncio.to_thread(set_modes, modes)


def test_broken_sudoers_is_refused_without_touching_sudoers_d(lp: Setup, tmp_path: Path) -> None:
    generated = run_setup("--print-sudoers", "--user", LOGIN, *lp.facts).stdout
    good = tmp_path / "good"
    good.write_text(generated)
    check = subprocess.run(["visudo", "-c", "-f", str(good)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    variants = {
        "syntax": generated.replace("NOPASSWD: WSCHECK_LP_AS_ROOT", "NOPASSWD WSCHECK_LP_AS_ROOT"),
        "undefined alias": generated.replace("NOPASSWD: WSCHECK_LP_AS_OWNER", "NOPASSWD: WSCHECK_LP_AS_OWENR"),
        "unterminated": generated.rstrip("\n") + ", \\\n",
    }
    for name, text in variants.items():
        assert text != generated, name
        broken = tmp_path / "broken"
        broken.write_text(text)
        before = sudoers_snapshot()
        result = run_setup("--user", LOGIN, "--pubkey", f"{lp.key}.pub", *lp.facts, "--sudoers-file",
                           str(broken), check=False)
        assert result.returncode == 1, (name, result.stderr)
        assert "visudo rejected" in result.stderr and "nothing was changed" in result.stderr, result.stderr
        assert sudoers_snapshot() == before, name
    assert (SUDOERS_D / LOGIN).read_text() == generated


def test_unsafe_targets_are_refused(sandbox: Any, lp: Setup) -> None:
    """A rule is only as safe as what it runs: code the login user can edit, or the owner's group, is refused."""
    installed = (SUDOERS_D / LOGIN).read_text()
    package = Path(sandbox.app_dir) / "package.json"
    mode = package.stat().st_mode & 0o7777
    args = ("--user", LOGIN, "--pubkey", f"{lp.key}.pub", "--from", "127.0.0.1", *lp.facts)
    try:
        package.chmod(mode | 0o002)  # `npm run build` as wsbox would run whatever the bot wrote there
        result = run_setup(*args, check=False)
        assert result.returncode == 1, result.stderr
        assert str(package) in result.stderr and f"{LOGIN} can write the paths above" in result.stderr
    finally:
        package.chmod(mode)
    subprocess.run(["gpasswd", "-a", LOGIN, sandbox.user], check=True, capture_output=True)
    try:  # in wsbox's group it could reach PM2's 0775 rpc.sock
        result = run_setup(*args, check=False)
        assert result.returncode == 1 and "it must be in none" in result.stderr, result.stderr
    finally:
        subprocess.run(["gpasswd", "-d", LOGIN, sandbox.user], check=True, capture_output=True)
    nobody = subprocess.run(["runuser", "-u", "nobody", "--", "bash", str(SETUP), "--uninstall"],
                            capture_output=True, text=True, check=False, cwd="/")
    assert nobody.returncode == 1 and "run me as root" in nobody.stderr
    assert (SUDOERS_D / LOGIN).read_text() == installed


async def test_uninstall_takes_everything_back(sandbox: Any, lp: Setup, ssh: SSHTransport) -> None:
    await ssh.aclose()  # its session is a process of the user: userdel refuses while it lives
    await asyncio.to_thread(uninstall_and_check, sandbox)


def uninstall_and_check(sandbox: Any) -> None:
    sandbox.remove_login_user(LOGIN)
    wait_no_processes(LOGIN)
    home = Path(pwd.getpwnam(LOGIN).pw_dir)
    result = run_setup("--uninstall", "--user", LOGIN)
    assert not user_exists(LOGIN), result.stderr
    assert not (SUDOERS_D / LOGIN).exists() and not home.exists() and not STATE_DIR.exists()
    for path in (Path(sandbox.pm2_home), Path(sandbox.pm2_home) / "logs", Path(sandbox.pm2_error_log)):
        acl = getfacl(path)
        assert not NAMED_ACL_ENTRY.search(acl), f"{path}: {acl}"
    config = sandbox.sshd_config.read_text()
    assert f"AllowUsers {sandbox.user}\n" in config and LOGIN not in config
    # the sandbox is as healthy as before for whoever comes next
    sandbox.set_mode("healthy")
    assert run_setup("--uninstall", "--user", LOGIN).returncode == 0  # idempotent
