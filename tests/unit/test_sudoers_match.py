"""The sudoers allow-list that deploy/target/setup-target.sh writes matches what the code runs.

Two halves, both without root or machine set-up:
- the script's input patterns (RE_*) are the patterns checks/config.py validates the same fields with;
- the script's own `generate_sudoers` (run in bash from the script's text, with the facts set by hand) allows
  exactly the sudo commands that the checks (every check, over a recording FunctionTransport) and the fixes
  (bot/remediation/actions.py `plan`) build for the target config that the script prints for those facts.
The real-sudo behaviour is tested against the sandbox in tests/integration/test_least_privilege.py.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import bot.remediation.actions as act
import checks.config as config
from checks.config import Target
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "deploy" / "target" / "setup-target.sh").read_text()
OWNER = "chatapp"

#: What `resolve_bin` finds in sudo's secure_path for the bare names the config may hold.
ABS = {"env": "/usr/bin/env", "ss": "/usr/bin/ss", "npm": "/usr/bin/npm", "systemctl": "/usr/bin/systemctl",
       "cat": "/usr/bin/cat", "dmesg": "/usr/bin/dmesg"}
NGINX_ABS = "/usr/sbin/nginx"
PM2_ABS = "/usr/local/bin/pm2"
#: The captured sandbox modes (tests/fixtures/captured/modes/*.json).
MODES = sorted(p.stem for p in (ROOT / "tests" / "fixtures" / "captured" / "modes").glob("*.json"))


def script_regexes() -> dict[str, str]:
    return dict(re.findall(r"^(RE_[A-Z_]+)='([^']*)'$", SCRIPT, re.MULTILINE))


def ere(pattern: re.Pattern[str]) -> str:
    """A Python pattern as POSIX ERE text (bash's `=~`): no non-capturing groups there."""
    return pattern.pattern.replace("(?:", "(")


def test_the_scripts_input_patterns_are_the_configs() -> None:
    bash = script_regexes()
    assert bash["RE_USER"] == ere(config._USER_RE)
    assert bash["RE_APP"] == ere(config._PM2_APP_RE)
    assert bash["RE_ABS"] == ere(config._ABS_PATH_RE)
    assert bash["RE_BIN"] == ere(config._BIN_RE)
    assert bash["RE_NAME"] == ere(config._NAME_RE)
    assert bash["RE_WORD"] == ere(config._RELOAD_WORD_RE)
    host, ip = bash["RE_HOST"].split("$|^")
    # the script groups the first label where Python does not: equal once the grouping is set aside
    assert re.sub(r"[()]", "", f"{host}$") == re.sub(r"[()]", "", ere(config._HOST_RE))
    assert f"^{ip}" == ere(config._IPV6_RE)


def python_host(value: str) -> bool:
    return bool(config._HOST_RE.fullmatch(value) or config._IPV6_RE.fullmatch(value))


@pytest.mark.parametrize(("name", "python", "samples"), [
    ("RE_USER", config._USER_RE.fullmatch, ["deploy", "_svc", "a-b_9", "Deploy", "9x", "x" * 33, "a b", "a;b", ""]),
    ("RE_APP", config._PM2_APP_RE.fullmatch, ["chat", "chat@2", "-x", "a/b", "a" * 101, "a.b_c-d"]),
    ("RE_ABS", config._ABS_PATH_RE.fullmatch, ["/srv/chat", "/", "srv", "/a b", "/a;b", "/a/../b", "/~x"]),
    ("RE_BIN", config._BIN_RE.fullmatch, ["pm2", "/usr/bin/pm2", "/", "a/b", "pm 2", "$(id)", "node+x"]),
    ("RE_WORD", config._RELOAD_WORD_RE.fullmatch, ["reload", "nginx.service", "-s", "a=b", "a b", "$(id)", "a;b", ""]),
    ("RE_HOST", python_host, ["web", "web.example.com", "-web", "web-", "a..b", "10.0.0.1", "::1", "a_b", ""]),
])
def test_bash_and_python_agree_on_samples(name: str, python: Any, samples: list[str]) -> None:
    """The same text can still mean different things to ERE and Python: ask bash itself."""
    pattern = script_regexes()[name]
    for value in samples:
        bash = subprocess.run(["bash", "-c", f"[[ $1 =~ {pattern} ]]", "_", value], check=False)
        assert (bash.returncode == 0) == bool(python(value)), (name, value)


def test_what_the_script_prints_the_config_loads() -> None:
    """The script checks --public-url, --identity-file and --known-hosts more strictly than the config does: every
    value its patterns let through must be one the printed target loads with (else the printed config fails)."""
    pattern = script_regexes()
    base = {"name": "web", "pm2_app": "chat", "app_port": 3000, "app_dir": "/srv/chat"}
    samples = {
        "RE_URL": ("public_url", ["http://chat.example.com/", "https://[::1]:8443/app", "http://a", "https://x:1/a_b~c",
                                  "ftp://x/", "http://u:p@x/", "http:///", "http://x/?q"]),
        "RE_TILDE_PATH": ("identity_file", ["~/.ssh/id_ed25519", "/etc/wscheck/key", "~x", "a b", "~/a;b"]),
    }
    for name, (key, values) in samples.items():
        test = f"[[ $1 =~ {pattern[name]} ]]"
        accepted = [v for v in values if subprocess.run(["bash", "-c", test, "_", v], check=False).returncode == 0]
        assert 0 < len(accepted) < len(values), (name, accepted)  # the samples fall on both sides of the pattern
        for value in accepted:
            Target.model_validate({**base, key: value})  # raises if the config refuses it


def generated_sudoers(facts: dict[str, str], reload_words: list[str], tls_certs: tuple[str, ...] = ()) -> str:
    """Run the script's sudoers generator (its functions and the snippet section, cut from its text)."""
    functions = SCRIPT[SCRIPT.index("sudoers_word() {"):SCRIPT.index("toml_str() {")]
    snippet = SCRIPT[SCRIPT.index("conf_args=()"):SCRIPT.index("SNIPPET=$WORK/sudoers")]
    setup = "".join(f"{k}={v!r}\n" for k, v in facts.items())
    setup += "TLS_CERTS=(" + " ".join(repr(c) for c in tls_certs) + ")\n"
    words = " ".join(repr(w) for w in reload_words)
    program = f"{setup}RELOAD_WORDS=({words})\n{functions}\n{snippet}\ngenerate_sudoers\n"
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def allowed(sudoers: str) -> dict[str, set[tuple[str, ...]]]:
    """{"ROOT": {argv, ...}, "OWNER": {...}} from the Cmnd_Alias lines (unescaping `\\ , : =`)."""
    out: dict[str, set[tuple[str, ...]]] = {}
    for alias, body in re.findall(r"^Cmnd_Alias \w+_AS_(\w+) = \\\n((?:    .*\n)+)", sudoers, re.MULTILINE):
        commands = set()
        for line in body.splitlines():
            line = line.strip().removesuffix("\\").strip().removesuffix(",")
            words = tuple(re.sub(r"\\(.)", r"\1", w) for w in line.split(" "))
            commands.add(words[:1] if words[1:] == ('""',) else words)
        out[alias] = commands
    return out


def absolute(argv: tuple[str, ...]) -> tuple[str, ...]:
    return (ABS.get(argv[0], argv[0]), *argv[1:])


async def sudo_commands(target: Target) -> dict[str, set[tuple[str, ...]]]:
    """Every command the checks and the fixes run through sudo, by whom they run as."""
    def refuse(argv: tuple[str, ...]) -> CommandResult:
        return CommandResult(argv, 1, "", "not here", 1.0)

    transport = FunctionTransport(refuse)
    await run_checks(target, transport)  # no selection: every check
    argvs = set(transport.calls)
    report = cast(Any, SimpleNamespace(result=lambda _id: SimpleNamespace(details={"side": "app"})))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(act, "_honours_port", lambda _report: (True, ""))
        for action in act.ACTIONS:
            argvs |= {step.argv for step in act.plan(action, target, report).steps}
    out: dict[str, set[tuple[str, ...]]] = {"ROOT": set(), "OWNER": set()}
    for argv in argvs:
        if argv[:3] == ("sudo", "-n", "-u"):
            assert argv[3] == OWNER, argv
            out["OWNER"].add(absolute(argv[4:]))
        elif argv[:2] == ("sudo", "-n"):
            out["ROOT"].add(absolute(argv[2:]))
        else:
            assert "sudo" not in argv, argv
    return out


#: A sudo target run as OWNER, and the facts setup-target.sh would find for it (the --tls-cert and --kernel-log tests).
WEB_TARGET = Target(name="web", host="web.example.com", user="wscheck", pm2_app="chat", app_port=3000,
                    app_dir="/srv/chat", pm2_user=OWNER, pm2_bin=PM2_ABS, nginx_bin=NGINX_ABS, sudo=True)
WEB_FACTS = {
    "SUDOERS_FILE": "/etc/sudoers.d/wscheck", "SUDOERS_HEADER_TAG": "test", "LOGIN_USER": "wscheck",
    "SECURE_PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "APP": "chat", "APP_DIR": "/srv/chat", "APP_PORT": "3000", "PM2_USER": OWNER,
    "PM2_HOME_DIR": "", "NGINX_CONF": "", "ENV_ABS": ABS["env"], "SS_ABS": ABS["ss"],
    "NGINX_ABS": NGINX_ABS, "NPM_ABS": ABS["npm"], "PM2_ABS": PM2_ABS, "RELOAD_ABS": "", "CAT_ABS": ABS["cat"],
}


@pytest.mark.parametrize(("pm2_home", "nginx_conf", "reload_words"), [
    ("/home/chatapp/.pm2", "/etc/nginx/nginx.conf", []),
    ("", "", ["systemctl", "reload", "nginx"]),
])
async def test_the_sudoers_allow_list_is_exactly_what_the_code_runs(pm2_home: str, nginx_conf: str,
                                                                     reload_words: list[str]) -> None:
    facts = {**{k: v for k, v in WEB_FACTS.items() if k != "CAT_ABS"}, "PM2_HOME_DIR": pm2_home,
             "NGINX_CONF": nginx_conf, "RELOAD_ABS": ABS.get(reload_words[0], "") if reload_words else ""}
    # the target config the script prints for these facts (its `print_target` section)
    target = WEB_TARGET.model_copy(update={"pm2_home": pm2_home, "nginx_conf": nginx_conf,
                                           "nginx_reload": tuple(reload_words)})
    code = await sudo_commands(target)
    assert code["ROOT"] and code["OWNER"], "no sudo command found: the comparison would prove nothing"
    assert allowed(generated_sudoers(facts, reload_words)) == code


async def test_tls_cert_files_are_allowed_exactly_as_the_tls_check_reads_them() -> None:
    """wt-tls: `--tls-cert FILE` allows `cat -- FILE` as root, the very argv commands.read_file builds (the check
    reads the ssl_certificate files nginx names with it); every other line stays what the code runs."""
    from checks import commands

    certs = ("/etc/letsencrypt/live/chat.example.com/fullchain.pem", "/etc/ssl/certs/chat,x=1.pem")
    facts = dict(WEB_FACTS)
    target = WEB_TARGET
    code = await sudo_commands(target)
    reads = {absolute(tuple(commands.read_file(target, c)[2:])) for c in certs}
    assert all(commands.read_file(target, c)[:2] == ["sudo", "-n"] for c in certs)
    got = allowed(generated_sudoers(facts, [], certs))
    assert got == {"ROOT": code["ROOT"] | reads, "OWNER": code["OWNER"]}


@functools.cache
def capture_rules(target: Target) -> dict[str, set[tuple[str, ...]]]:
    """The allow-list for the captured target (the same for every mode: generated once)."""
    return allowed(generated_sudoers(capture_facts(target), []))


@functools.cache
def capture_rules_kernel_log(target: Target) -> dict[str, set[tuple[str, ...]]]:
    """The same with `--kernel-log` (the kernel-oom mode's target reads dmesg through sudo)."""
    return allowed(generated_sudoers({**capture_facts(target), "DMESG_ABS": ABS["dmesg"]}, []))


def capture_facts(target: Target) -> dict[str, str]:
    """The facts setup-target.sh would find for the captured sandbox's target, run as OWNER with sudo."""
    return {
        "SUDOERS_FILE": "/etc/sudoers.d/wscheck", "SUDOERS_HEADER_TAG": "test", "LOGIN_USER": target.user,
        "SECURE_PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "APP": target.pm2_app, "APP_DIR": target.app_dir, "APP_PORT": str(target.app_port), "PM2_USER": OWNER,
        "PM2_HOME_DIR": target.pm2_home, "NGINX_CONF": target.nginx_conf, "ENV_ABS": ABS["env"], "SS_ABS": ABS["ss"],
        "NGINX_ABS": target.nginx_bin, "NPM_ABS": ABS["npm"], "PM2_ABS": target.pm2_bin, "RELOAD_ABS": "",
        "CAT_ABS": ABS["cat"],
    }


@pytest.mark.parametrize("mode", MODES)
async def test_follow_up_commands_of_every_captured_mode_are_allowed(mode: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above answers every command with a failure, so it sees only the commands that run first; the
    follow-ups that run on a real answer (the app's logs and process tree, nginx's files, certificates...) are
    seen here: each captured sandbox mode is replayed on its target made a sudo one (sudo = true, PM2 as OWNER),
    answering each command with the capture of the same command without its sudo prefix. Every sudo command the
    checks then run must be allowed by the sudoers the script writes for that target."""
    from tests.support.captured import MODE_TARGET_UPDATES, TARGET, Replay, load, route_public_probes, serve_streams

    target = TARGET.model_copy(update={"sudo": True, "pm2_user": OWNER, "probe_timeout": 0.2,
                                       **MODE_TARGET_UPDATES.get(mode, {})})
    fake = Replay(load(mode))
    sudo_argvs: list[tuple[str, ...]] = []

    def answer(argv: tuple[str, ...]) -> CommandResult:
        bare = argv[4:] if argv[:3] == ("sudo", "-n", "-u") else argv[2:] if argv[:2] == ("sudo", "-n") else argv
        if bare != argv:
            sudo_argvs.append(argv)
        # `id -u OWNER` (host.memory: whose OOM kills are the app's) is the capture's `id -u` of the sandbox's user
        # and `sudo -n dmesg` (kernel_log_sudo) was captured with its sudo: the sandbox's target reads it so too
        lookup = ("id", "-u") if bare == ("id", "-u", OWNER) else argv if bare == ("dmesg",) else bare
        result = fake.run(lookup)
        return CommandResult(argv, result.exit_status, result.stdout, result.stderr, result.duration_ms)

    transport = FunctionTransport(answer, tcp_handler=serve_streams(fake.connect))
    route_public_probes(monkeypatch, lambda: transport)
    await run_checks(target, transport)
    assert fake.uncaptured == [], "a command the capture did not see: the replay stopped short of the follow-ups"
    assert sudo_argvs, "no sudo command ran: this would prove nothing"
    rules = capture_rules_kernel_log(target) if target.kernel_log_sudo else capture_rules(target)
    for argv in set(sudo_argvs):
        if argv[:3] == ("sudo", "-n", "-u"):
            assert argv[3] == OWNER and absolute(argv[4:]) in rules["OWNER"], argv
        else:
            assert absolute(argv[2:]) in rules["ROOT"], argv


async def test_kernel_log_allows_exactly_the_dmesg_the_memory_check_runs() -> None:
    """wt-modes: `--kernel-log` allows `dmesg` with no arguments as root, the very argv host.memory sends with
    `kernel_log_sudo = true` (the `""` of sudoers: any argument, `-C` clearing the ring buffer too, is refused);
    without the flag no dmesg line, and the bot sends none."""
    facts = dict(WEB_FACTS)
    base = WEB_TARGET
    without = await sudo_commands(base)
    assert not any(argv[0].endswith("dmesg") for argv in without["ROOT"])
    assert allowed(generated_sudoers(facts, [])) == without
    code = await sudo_commands(base.model_copy(update={"kernel_log_sudo": True}))
    assert code["ROOT"] - without["ROOT"] == {("/usr/bin/dmesg",)}
    sudoers = generated_sudoers({**facts, "DMESG_ABS": "/usr/bin/dmesg"}, [])
    assert "    /usr/bin/dmesg \"\", \\\n" in sudoers
    assert allowed(sudoers) == code
