"""wt-host2 in-process: host.memory, host.disk, host.fds, pm2.restarts and next.static over FunctionTransport, on top
of the captured healthy sandbox (tests/fixtures/captured/modes/healthy.json) with the host's answers replaced by
the outputs real machines give (dmesg restricted, journalctl's short-iso, df -P, /proc/PID/limits, PM2 6/7's own
pm2.log lines). Each case names its cause and no other, and the causes' fix and the rebuild gate follow."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.remediation import actions
from checks import commands
from checks.details import Pm2Details
from checks.items.host import restart_sample
from checks.models import Status, TargetReport
from checks.parsers.host import (
    parse_df,
    parse_fd_usage,
    parse_ls_sizes,
    parse_meminfo,
    parse_oom_kills,
    parse_pm2_restarts,
)
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport
from tests.support.captured import TARGET, Replay, load

APP = TARGET.pm2_app
HOME = TARGET.pm2_home
ERR_LOG = f"{HOME}/logs/{APP}-error.log"
OUT_LOG = f"{HOME}/logs/{APP}-out.log"
SELECTED = ["pm2.status", "pm2.logs", "pm2.restarts", "next.static", "host.memory", "host.disk", "host.fds"]

MEMINFO = ("==> /proc/meminfo <==\nMemTotal:        2013244 kB\nMemFree:          101200 kB\n"
           "MemAvailable:     912000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n\n"
           "==> /proc/uptime <==\n86400.50 170000.10\n")
DMESG_RESTRICTED = "dmesg: read kernel buffer failed: Operation not permitted\n"
JOURNAL_NO_ACCESS = ("Hint: You are currently not seeing messages from other users and the system.\n"
                     "      Users in groups 'adm', 'systemd-journal' can see all messages.\n-- No entries --\n")
LIMITS = "Max open files            1024                 524288               files     \n"


def df_out(percent: int, free_kb: int = 10_000_000) -> str:
    line = f"/dev/vda1 20480000 {20480000 - free_kb} {free_kb} {percent}% /"
    return (f"== df\nFilesystem     1024-blocks      Used Available Capacity Mounted on\n{line}\n{line}\n{line}\n"
            f"== logs {HOME}/logs\ntotal 812004\n-rw-r--r-- 1 wsbox wsbox 831488000 Dec  6 20:00 {APP}-out.log\n"
            f"-rw-r--r-- 1 wsbox wsbox 1024 Dec  6 20:00 {APP}-error.log\n")


class Host:
    """The healthy capture, with the host's answers as the case sets them."""

    def __init__(self) -> None:
        data = load("healthy")
        self.replay = Replay(data)
        self.now = time.time()
        self.local = datetime.now().replace(microsecond=0)
        self.meminfo = MEMINFO
        self.journal = CommandResult((), 1, "", JOURNAL_NO_ACCESS, 0.0)
        self.dmesg = DMESG_RESTRICTED
        self.sudo_dmesg: str | None = None
        self.uid = 1000
        self.df = df_out(41)
        self.pm2_log = ""
        self.err_tail: str | None = None
        self.fds = f"== 4242\n{LIMITS}fds 31\n"
        self.config_grep = CommandResult((), 1, "", "", 0.0)
        self.standalone_files: list[str] = []
        self.jlist_edit: Callable[[list[dict[str, Any]]], None] | None = None

    def handle(self, argv: tuple[str, ...]) -> CommandResult:
        def out(text: str, code: int = 0) -> CommandResult:
            return CommandResult(argv, code, text, "", 0.01)

        if argv == commands.DATE_ARGV:
            offset = round((self.local - datetime.fromtimestamp(int(self.now), UTC).replace(tzinfo=None))
                           .total_seconds() / 60)
            sign = "-" if offset < 0 else "+"
            return out(f"{int(self.now)} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}\n")
        if argv == commands.MEMINFO_ARGV:
            return out(self.meminfo)
        if argv == commands.JOURNAL_KERNEL_ARGV:
            return CommandResult(argv, self.journal.exit_status, self.journal.stdout, self.journal.stderr, 0.01)
        if argv == commands.DMESG_ARGV:
            return out(self.dmesg)
        if argv == commands.DMESG_SUDO_ARGV:  # wt-modes: kernel_log_sudo
            return out(self.sudo_dmesg) if self.sudo_dmesg is not None else CommandResult(
                argv, 1, "", "sudo: a password is required\n", 0.01)
        if argv[:2] == ("id", "-u"):  # wt-modes: the app's uid
            return out(f"{self.uid}\n")
        if argv[:3] == ("sh", "-c", commands._DISK_SCRIPT):
            return out(self.df)
        if argv[:3] == ("sh", "-c", commands._FD_SCRIPT):
            return out(self.fds)
        if argv[:3] == ("sh", "-c", commands._PM2_LOG_SCRIPT):
            return out(self.pm2_log)
        if argv[0] == "grep":
            return CommandResult(argv, self.config_grep.exit_status, self.config_grep.stdout, "", 0.01)
        if argv[0] == "stat" and any("/.next/standalone" in a or a.endswith("/public") for a in argv):
            return out("".join(f"{p}|{int(self.now)}|4096\n" for p in argv[3:] if p in self.standalone_files))
        if argv[0] == "tail" and argv[-1] == ERR_LOG and self.err_tail is not None:
            return out(self.err_tail)
        if argv[0] == "stat" and ERR_LOG in argv and self.err_tail is not None:
            return out(f"{ERR_LOG}|{int(self.now)}|{len(self.err_tail)}\n{OUT_LOG}|{int(self.now) - 86400}|141\n")
        result = self.replay.run(argv)
        if argv[-1] == "jlist" and self.jlist_edit is not None:
            entries = json.loads(result.stdout[result.stdout.index("["):])
            self.jlist_edit(entries)
            return CommandResult(argv, 0, json.dumps(entries), "", 0.01)
        return result

    async def report(self, sample: dict[str, Any] | None = None, **target: Any) -> TargetReport:
        t = TARGET.model_copy(update=target) if target else TARGET
        transport = FunctionTransport(self.handle)
        report = await run_checks(t, transport, SELECTED, restart_sample=sample)
        assert self.replay.uncaptured == [], self.replay.uncaptured
        return report


def causes(report: TargetReport) -> list[str]:
    return [c.cause for c in report.diagnosis]


def check(report: TargetReport, check_id: str) -> Any:
    found = report.result(check_id)
    assert found is not None
    return found


def show(report: TargetReport) -> str:
    return json.dumps(report.to_json_dict(), indent=1, default=str)


# -- parsers ------------------------------------------------------------------------------------------------------


def test_parsers_read_what_real_machines_print() -> None:
    mem = parse_meminfo(MEMINFO)
    assert mem is not None and (mem.total_kb, mem.available_kb, mem.swap_free_kb, mem.uptime_s) == (
        2013244, 912000, 0, 86400.5)
    assert parse_meminfo("garbage") is None
    fss = parse_df(df_out(97).split("== logs")[0])
    assert [(f.mount, f.use_percent) for f in fss] == [("/", 97)] * 3
    assert parse_ls_sizes(df_out(1).split("== logs")[1])[0] == (f"{APP}-out.log", 831488000)
    kills = parse_oom_kills(
        "[86000.1] Out of memory: Killed process 4242 (node) total-vm:1843212kB, anon-rss:912340kB\n"
        "[86000.1] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=node,pid=4242,uid=1000\n"
        "2026-12-06T19:00:01+0000 vps kernel: Out of memory: Killed process 777 (next-server (v1) total-vm:1kB\n")
    assert [(k.pid, k.comm) for k in kills] == [(4242, "node"), (777, "next-server (v1")]
    assert kills[0].since_boot == 86000.1 and kills[1].at is not None
    assert [(u.pid, u.soft_limit, u.open_fds) for u in parse_fd_usage(
        f"== 1\n{LIMITS}fds 12\n== 2\nfds unreadable\n")] == [(1, 1024, 12), (2, None, None)]
    lines = ("2026-12-06T20:00:01: PM2 log: [PM2][WORKER] Process 0 restarted because it exceeds --max-memory-restart "
             "value (current_memory=176164864 max_memory_limit=104857600 [octets])\n"
             "2026-12-06T20:00:02: PM2 log: App [shop:0] exited with code [0] via signal [SIGINT]\n"
             "2026-12-06T20:00:03: PM2 log: Change detected on path logs/a.log for app shop - restarting\n"
             "2026-12-06T20:00:04: PM2 log: App [shop:0] exited with code [1] via signal [SIGINT]\n"
             "2026-12-06T20:00:05: PM2 log: Change detected on path x for app other - restarting\n"
             "2026-12-06T20:00:06: PM2 log: [PM2][WORKER] Process 3 restarted because it exceeds "
             "--max-memory-restart\n")
    assert [r.kind for r in parse_pm2_restarts(lines, "shop", frozenset({0}))] == ["memory", "watch", "exit"]


# -- host.memory --------------------------------------------------------------------------------------------------


async def test_healthy_host_is_ok_and_says_the_kernel_log_is_unreadable() -> None:
    report = await Host().report()
    assert report.exit_code == 0 and causes(report) == [], show(report)
    memory = check(report, "host.memory")
    assert memory.details["kernel_log"] == "unreadable"
    why = memory.details["kernel_log_unreadable"]
    assert "journalctl: Hint: You are currently not seeing" in why and "dmesg: dmesg: read kernel buffer failed" in why
    assert "not readable" in memory.summary and memory.details["mem_available_mb"] == 890


async def test_kernel_oom_kill_of_the_app_via_dmesg() -> None:
    host = Host()
    host.dmesg = "[86390.0] Out of memory: Killed process 4242 (node) total-vm:1843212kB, anon-rss:912340kB\n"
    report = await host.report()
    assert causes(report) == ["host_out_of_memory"], show(report)
    memory = check(report, "host.memory")
    assert memory.status is Status.FAIL and memory.details["kernel_log"] == "dmesg"
    assert memory.details["oom_kills"][0]["app"] is True
    assert "node (pid 4242)" in memory.summary
    assert any("swapfile" in line for line in report.diagnosis[0].fix)  # the kernel: the host needs memory


async def test_old_oom_kill_before_the_apps_start_is_a_warning_not_the_cause() -> None:
    host = Host()
    host.journal = CommandResult((), 0, "2026-01-01T00:00:00+0000 vps kernel: Out of memory: Killed process 9 "
                                 "(node) total-vm:1kB\n", "", 0.0)

    def young(entries: list[dict[str, Any]]) -> None:
        entries[0]["pm2_env"]["pm_uptime"] = int((time.time() - 60) * 1000)

    host.jlist_edit = young
    report = await host.report()
    memory = check(report, "host.memory")
    assert memory.status is Status.WARN and memory.details["before_app_start"], show(report)
    assert causes(report) == []


async def test_heap_oom_in_the_apps_recent_log_names_the_heap() -> None:
    host = Host()
    host.err_tail = ("<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out"
                     " of memory\n")
    report = await host.report()
    assert causes(report) == ["host_out_of_memory"], show(report)
    assert check(report, "host.memory").details["kind"] == "heap"
    fix = report.diagnosis[0].fix
    assert any("max-old-space-size" in line for line in fix) and not any("swapfile" in line for line in fix)


# -- host.disk ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("percent", "severity"), [(91, Status.WARN), (99, Status.FAIL)])
async def test_disk_warns_at_90_and_fails_at_98(percent: int, severity: Status) -> None:
    host = Host()
    host.df = df_out(percent, free_kb=120_000)
    report = await host.report()
    assert causes(report) == ["host_disk_full"], show(report)
    cause = report.diagnosis[0]
    assert cause.severity is severity and check(report, "host.disk").status is severity
    assert f"{APP}-out.log (793.0 MB)" in cause.summary
    assert any("pm2-logrotate" in line for line in cause.fix) and any("flush" in line for line in cause.fix)
    holds = check(report, "host.disk").details["filesystems"][0]["holds"]
    assert holds == ["pm2_home", "app_dir", "nginx_logs"]


async def test_enospc_in_the_logs_fails_below_the_threshold() -> None:
    host = Host()
    host.err_tail = "Error: ENOSPC: no space left on device, write\n"
    report = await host.report()
    assert causes(report) == ["host_disk_full"], show(report)
    assert report.diagnosis[0].severity is Status.FAIL and "pm2.logs" in report.diagnosis[0].evidence


async def test_disk_thresholds_are_target_settings() -> None:
    host = Host()
    report = await host.report(disk_warn_percent=30, disk_fail_percent=99)
    assert causes(report) == ["host_disk_full"] and report.diagnosis[0].severity is Status.WARN


# -- host.fds -----------------------------------------------------------------------------------------------------


async def test_emfile_names_fd_exhaustion_with_the_limit() -> None:
    host = Host()
    host.err_tail = "Error: accept EMFILE\n    at TCP.onconnection (node:net:2066:24)\n"
    host.fds = f"== 4242\n{LIMITS}fds 1024\n"
    report = await host.report()
    assert causes(report) == ["process_fd_exhausted"], show(report)
    assert "1024 open of 1024 allowed" in report.diagnosis[0].summary


async def test_unreadable_fds_are_said_not_guessed() -> None:
    host = Host()
    host.fds = "== 4242\ngrep: /proc/4242/limits: Permission denied\nfds unreadable\n"
    report = await host.report()
    fds = check(report, "host.fds")
    assert fds.status is Status.OK and "not readable" in fds.summary
    assert fds.details["processes"] == [{"pid": 4242, "open_fds": None, "limit": None}]


# -- pm2.restarts -------------------------------------------------------------------------------------------------


def memory_lines(host: Host, count: int, minutes_ago: float = 0.2) -> str:
    stamp = (host.local - timedelta(minutes=minutes_ago)).isoformat()
    return "".join(f"{stamp}: PM2 log: [PM2][WORKER] Process 0 restarted because it exceeds --max-memory-restart "
                   f"value (current_memory=176164864 max_memory_limit=104857600 [octets])\n" for _ in range(count))


def limits(entries: list[dict[str, Any]]) -> None:
    entries[0]["pm2_env"]["max_memory_restart"] = 104857600
    entries[0]["monit"] = {"memory": 176164864, "cpu": 3}


async def test_restart_count_growing_while_online_is_a_loop() -> None:
    host = Host()
    host.jlist_edit = limits
    host.pm2_log = memory_lines(host, 2)
    first = await host.report()
    sample = restart_sample(Pm2Details.of(check(first, "pm2.status")), time.time() - 30)
    assert sample is not None
    restarts = check(first, "pm2.restarts").details["restarts"]
    sample["restarts"] = {k: v - 2 for k, v in sample["restarts"].items()}
    report = await host.report(sample)
    assert causes(report) == ["pm2_restart_loop_online"], show(report)
    details = check(report, "pm2.restarts").details
    assert details["delta"] == 2 and details["kind"] == "memory" and details["restarts"] == restarts
    assert any("max_memory_restart above" in line and "168 MB now, limit 100 MB" in line
               for line in report.diagnosis[0].fix)


async def test_one_restart_without_a_reason_is_an_operator_not_a_loop() -> None:
    host = Host()
    first = await host.report()
    sample = restart_sample(Pm2Details.of(check(first, "pm2.status")), time.time() - 30)
    assert sample is not None
    sample["restarts"] = {k: v - 1 for k, v in sample["restarts"].items()}
    report = await host.report(sample)
    assert causes(report) == [] and check(report, "pm2.restarts").details["delta"] == 1, show(report)


async def test_old_restart_lines_of_a_long_running_app_are_history() -> None:
    """The capture's app has run for long: its PM2 lines alone (no earlier look) do not make a loop."""
    host = Host()
    host.pm2_log = memory_lines(host, 5)
    report = await host.report()
    assert causes(report) == [] and check(report, "pm2.restarts").details["recent_restart_lines"] == 5


# -- next.static --------------------------------------------------------------------------------------------------


def standalone(entries: list[dict[str, Any]]) -> None:
    entries[0]["pm2_env"]["pm_exec_path"] = f"{TARGET.app_dir}/.next/standalone/server.js"


async def test_standalone_without_static_is_named() -> None:
    host = Host()
    host.jlist_edit = standalone
    host.config_grep = CommandResult((), 0, f"{TARGET.app_dir}/next.config.js\n", "", 0.0)
    host.standalone_files = [f"{TARGET.app_dir}/.next/static", f"{TARGET.app_dir}/public"]
    report = await host.report()
    assert causes(report) == ["next_static_assets_missing"], show(report)
    missing = check(report, "next.static").details["missing"]
    assert missing == [f"{TARGET.app_dir}/.next/standalone/.next/static", f"{TARGET.app_dir}/.next/standalone/public"]
    assert any(line.strip().startswith("cp -r") and ".next/static" in line for line in report.diagnosis[0].fix)


async def test_standalone_with_its_assets_is_ok() -> None:
    host = Host()
    host.jlist_edit = standalone
    root = f"{TARGET.app_dir}/.next/standalone"
    host.standalone_files = [f"{root}/.next/static", f"{root}/public", f"{TARGET.app_dir}/.next/static"]
    report = await host.report()
    assert check(report, "next.static").status is Status.OK and causes(report) == [], show(report)


# -- the rebuild gate ---------------------------------------------------------------------------------------------


async def test_rebuild_refuses_when_memory_or_disk_is_short_and_says_why() -> None:
    host = Host()
    healthy = await host.report()
    assert actions.plan("rebuild", TARGET, healthy).action == "rebuild"  # 890 MB free >= 768
    with pytest.raises(actions.NotOffered) as short_memory:
        actions.plan("rebuild", TARGET.model_copy(update={"rebuild_min_memory_mb": 2048}), healthy)
    assert "890 MB" in str(short_memory.value) and "rebuild_min_memory_mb" in str(short_memory.value)
    korean = short_memory.value.reason.render("ko")
    assert "890 MB" in korean and "다시 빌드하지" in korean
    host.df = df_out(99, free_kb=200_000)
    full = await host.report()
    with pytest.raises(actions.NotOffered) as short_disk:
        actions.plan("rebuild", TARGET, full)
    assert "195 MB free" in str(short_disk.value)
    # Without the host checks in the report nothing is known: the build is not refused on a guess.
    assert actions.plan("rebuild", TARGET, None).action == "rebuild"


# -- the previous sample, kept by the check service ----------------------------------------------------------------


async def test_the_service_keeps_each_targets_last_restart_sample_and_passes_it_on() -> None:
    """bot.chat.service is where every report passes (the monitor's and people's): it keeps the restart counts of the
    last one, and the next run's pm2.restarts compares with them. The fast probe (pm2.status only) feeds it too."""
    from bot.chat.service import CheckService
    from checks.config import TargetsConfig

    host = Host()
    count = {"n": 7}

    def restarts(entries: list[dict[str, Any]]) -> None:
        limits(entries)
        entries[0]["pm2_env"]["restart_time"] = count["n"]

    host.jlist_edit = restarts
    service = CheckService(TargetsConfig(source="test", targets=(TARGET,)))
    service._transports[TARGET.name] = FunctionTransport(host.handle)
    try:
        first = await service.run(TARGET.name, ["pm2.status"])
        assert first.result("pm2.status") is not None
        assert service.restart_samples[TARGET.name]["restarts"] == {"0": 7}
        count["n"] = 9  # PM2 restarted it twice since, for memory, while it reads online
        host.pm2_log = memory_lines(host, 2, minutes_ago=0)
        report = await service.run(TARGET.name, SELECTED)
        assert causes(report) == ["pm2_restart_loop_online"], show(report)
        assert check(report, "pm2.restarts").details["delta"] == 2
        assert service.restart_samples[TARGET.name]["restarts"] == {"0": 9}
        calm = await service.run(TARGET.name, SELECTED)  # no restart since: the loop is over
        assert causes(calm) == [] and check(calm, "pm2.restarts").details["delta"] == 0, show(calm)
    finally:
        await service.aclose()


async def test_an_older_heap_oom_followed_by_another_crash_is_history() -> None:
    """Seen on the sandbox: heap-oom, then no-build; the error log still holds the heap lines above the new ones."""
    host = Host()
    host.err_tail = ("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n"
                     " 1: 0xb8d0a3 node::Abort() [node]\nAborted\n"
                     "[kathario-saas] Next.js failed to start: Could not find a production build in the '.next' "
                     "directory.\n")
    report = await host.report()
    memory = check(report, "host.memory")
    assert memory.status is Status.OK and memory.details["heap_oom_lines"] == [], show(report)
    assert "host_out_of_memory" not in causes(report)


# -- wt-modes: whose kill it is, and the kernel log through `sudo -n dmesg` --------------------------------------


async def test_a_kill_of_another_users_process_is_not_this_apps_evidence() -> None:
    """The kernel log is the machine's: a node of uid 1001 (another app on the box) killed is not this app's OOM."""
    host = Host()
    host.dmesg = ("[86390.0] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),task=node,pid=5151,uid=1001\n"
                  "[86390.0] Memory cgroup out of memory: Killed process 5151 (node) total-vm:1kB, anon-rss:1kB, "
                  "file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:196kB oom_score_adj:0\n")
    report = await host.report()
    memory = check(report, "host.memory")
    assert memory.status is Status.OK and causes(report) == [], show(report)
    assert memory.details["other_users_oom_kills"] == 1 and memory.details["oom_kills"] == []
    host.uid = 1001  # the same line, seen for the app that runs as 1001: its own kill
    report = await host.report()
    assert causes(report) == ["host_out_of_memory"], show(report)
    kill = check(report, "host.memory").details["oom_kills"][0]
    assert (kill["pid"], kill["comm"], kill["uid"]) == (5151, "node", 1001)


def test_the_uid_comes_from_either_kernel_line() -> None:
    only_task = parse_oom_kills("[1.0] oom-kill:constraint=CONSTRAINT_NONE,task=node,pid=7,uid=33\n")
    only_killed = parse_oom_kills("[1.0] Out of memory: Killed process 8 (node) total-vm:1kB, UID:0 pgtables:1kB\n")
    old_kernel = parse_oom_kills("[1.0] Out of memory: Killed process 9 (node) total-vm:1kB, anon-rss:1kB\n")
    assert [k.uid for k in (*only_task, *only_killed, *old_kernel)] == [33, 0, None]


async def test_kernel_log_sudo_reads_dmesg_through_sudo_and_bounds_it() -> None:
    host = Host()
    noise = "".join(f"[{i}.0] eth0: link up\n" for i in range(1000))
    host.sudo_dmesg = noise + ("[86390.0] Out of memory: Killed process 4242 (node) total-vm:1kB, UID:1000 "
                               "pgtables:1kB\n")
    plain = await host.report()
    assert check(plain, "host.memory").details["kernel_log"] == "unreadable"  # without the key: never sudo
    report = await host.report(kernel_log_sudo=True)
    memory = check(report, "host.memory")
    assert memory.details["kernel_log"] == "dmesg" and causes(report) == ["host_out_of_memory"], show(report)
    host.sudo_dmesg = None  # the key set, the sudoers line missing: unreadable, said, not a failure
    report = await host.report(kernel_log_sudo=True)
    memory = check(report, "host.memory")
    assert memory.status is Status.OK and "a password is required" in memory.details["kernel_log_unreadable"]


async def test_an_empty_journal_is_no_proof_that_the_kernel_log_is_readable() -> None:
    """`journalctl -k -q` on a host without journald (an empty /var/log/journal) prints nothing and exits 0: dmesg is
    asked then, and when that is restricted too the kernel log is unreadable, not "no OOM kill"."""
    host = Host()
    host.journal = CommandResult((), 0, "", "", 0.0)
    report = await host.report()
    memory = check(report, "host.memory")
    assert memory.details["kernel_log"] == "unreadable", show(report)
    assert "journalctl: no output (exit 0)" in memory.details["kernel_log_unreadable"]
    host.dmesg = "[86390.0] Out of memory: Killed process 4242 (node) total-vm:1kB, UID:1000 pgtables:1kB\n"
    report = await host.report()
    assert check(report, "host.memory").details["kernel_log"] == "dmesg" and causes(report) == ["host_out_of_memory"]
